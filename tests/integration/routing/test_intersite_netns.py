"""Calls between sites, each site in its own network namespace with real Kamailio + rtpengine.

Three sites on one bridge, HQ on the bridge too: branch-a (trunk a-sip), branch-b, and gw
(trunk c-sip). Rule ``national`` (numbers starting with 0) breaks out through gw's trunk
first and branch-a's trunk second; the far ends of both trunks are sipp UASs in their
sites' namespaces. The tests run in file order: the last ones stop HQ and a site.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.pbx.audio import dominant, read_channels
from tests.integration.pbx.harness import Phone, connect_call, require_debs
from tests.integration.pbx.test_dialplan_calls import TRUNK_UAS
from tests.integration.routing.sites import (
    TRUNK_PORT,
    Company,
    Site,
    get_json,
    inside,
    routing_version,
    wait_until,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

A_NUMBER, C_NUMBER, C_ASKED = "+4930111000", "+4930777000", "+4930777001"


def directory() -> dict[str, Any]:
    return {
        "plan": {"flat": True, "site_prefix": ""},
        "sites": [
            {"id": "branch-a", "name": "Branch A", "sip_address": "10.77.0.1",
             "ranges": [{"first": "1001", "last": "1009"}]},
            {"id": "branch-b", "name": "Branch B", "sip_address": "10.77.0.2",
             "ranges": [{"first": "2001", "last": "2009"}]},
            {"id": "gw", "name": "Gateway", "sip_address": "10.77.0.3",
             "ranges": [{"first": "3001", "last": "3009"}]},
        ],
        "trunks": [
            {"id": "a-sip", "site": "branch-a", "numbers": [A_NUMBER]},
            {"id": "c-sip", "site": "gw", "numbers": [C_NUMBER, C_ASKED]},
        ],
        "rules": [{"id": "national", "prefix": "0", "min_length": 6, "targets": [
            {"trunk": "c-sip", "cost": 1, "strip": 1, "prepend": "+49", "caller_id": C_ASKED},
            {"trunk": "a-sip", "cost": 5, "strip": 1, "prepend": "+49"},
        ]}],
    }  # fmt: skip


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Company]:
    require_debs()
    root = tmp_path_factory.mktemp("company")
    sites = [
        Site("branch-a", 1, "", root / "branch-a", {"1001": "Alice", "1002": "Dave"}, "a-sip"),
        Site("branch-b", 2, "", root / "branch-b", {"2001": "Bob", "2002": "Erin"}),
        Site("gw", 3, "", root / "gw", {"3001": "Carol"}, "c-sip"),
    ]
    world = Company(root, sites)
    for site in sites:
        site.ns = f"{world.prefix}-{site.id}"
    try:
        world.build_network()
        doc = directory()
        world.write_configs(doc)
        world.start_hq()
        world.put_directory(doc)
        for site in sites:
            world.start_site(site)
        for site in sites:
            wait_until(lambda s=site: routing_version(s) > 0, 20, site.output)  # type: ignore[misc]
        yield world
    finally:
        world.close()
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert world.prefix not in leftover


def phone(site: Site, number: str, tone: int, root: Path) -> Phone:
    p = Phone(site, number, tone, root, secret=f"secret-{number}-pw", domain=site.domain,
              host=site.ip, netns=site.ns)  # fmt: skip
    assert p.registered() == 200, "".join(p.log)
    return p


class Trunk:
    """A sipp UAS answering on a site's trunk address; its messages are kept."""

    def __init__(self, site: Site, root: Path, calls: int = 1) -> None:
        self.log = root / f"trunk-{site.id}.log"
        scenario = root / "uas.xml"
        scenario.write_text(TRUNK_UAS)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", site.ns, "sipp", "-i", site.ip, "-p", str(TRUNK_PORT),
             "-sf", str(scenario), "-m", str(calls), "-nostdin", "-timeout", "30s",
             "-trace_msg", "-message_file", str(self.log)],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)

    def messages(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)


def test_extension_calls_an_extension_at_another_site_with_audio_both_ways(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    alice, bob = phone(a, "1001", 1000, tmp_path), phone(b, "2001", 600, tmp_path)
    try:
        alice.send("call", to="2001")
        incoming = bob.wait(lambda e: e["ev"] == "incoming")
        assert incoming["remote"].startswith('"Alice (Branch A)" <sip:1001@')
        bob.send("answer")
        alice.state("CONFIRMED")
        bob.state("CONFIRMED")
        time.sleep(2.5)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    finally:
        alice.close()
        bob.close()
    for heard, tone in ((alice.record, 600), (bob.record, 1000)):
        rate, (samples,) = read_channels(heard)
        assert dominant(samples, rate, [300, 600, 1000]) == tone
    sent = a.cdr(lambda c: c["callee"]["number"] == "2001")
    received = b.cdr(lambda c: c["caller"]["extension"] == "1001")
    assert sent["conversation_id"] == received["conversation_id"]
    assert (sent["route"], sent["peer_site"], sent["disposition"]) == (
        "site:branch-b", "branch-b", "answered",
    )  # fmt: skip
    assert (received["peer_site"], received["route"], received["disposition"]) == (
        "branch-a", "site:branch-a", "answered",
    )  # fmt: skip
    assert received["caller"]["name"] == "Alice (Branch A)"
    assert received["callee"]["extension"] == "2001"


def test_blind_transfer_hands_the_caller_to_a_third_site(company: Company, tmp_path: Path) -> None:
    a, b, c = (company.sites[s] for s in ("branch-a", "branch-b", "gw"))
    alice, bob = phone(a, "1001", 1000, tmp_path), phone(b, "2001", 600, tmp_path)
    carol = phone(c, "3001", 300, tmp_path)
    try:
        connect_call(alice, bob)
        bob.send("xfer", to="3001")
        assert carol.answer()["remote"].startswith('"Alice (Branch A)"')
        bob.send("hangup")
        bob.state("DISCONNECTED")
        carol.send("hangup")
        carol.state("DISCONNECTED")
    finally:
        for p in (alice, bob, carol):
            p.close()
    leg = c.cdr(lambda x: x["caller"]["extension"] == "1001" and x["peer_site"] == "branch-a")
    assert leg["disposition"] == "answered"
    origin = a.cdr(lambda x: x["callee"]["number"] == "3001")
    assert origin["conversation_id"] == leg["conversation_id"]


def test_attended_transfer_across_sites_replaces_the_consultation_call(
    company: Company, tmp_path: Path
) -> None:
    a, b, c = (company.sites[s] for s in ("branch-a", "branch-b", "gw"))
    alice, bob = phone(a, "1001", 1000, tmp_path), phone(b, "2001", 600, tmp_path)
    carol = phone(c, "3001", 300, tmp_path)
    try:
        connect_call(alice, bob)
        alice.send("consult", to="3001")
        carol.answer()
        alice.send("xfer_attended")
        bob.wait(lambda e: e["ev"] == "transferring")
        carol.wait(lambda e: e["ev"] == "replaced")
        carol.state("CONFIRMED")
        carol.send("hangup")
        bob.state("DISCONNECTED")
    finally:
        for p in (alice, bob, carol):
            p.close()
    leg = c.cdr(lambda x: x["caller"]["extension"] == "2001" and x["peer_site"] == "branch-b")
    assert leg["disposition"] == "answered"


def test_break_out_through_another_sites_trunk_presents_a_number_it_owns(
    company: Company, tmp_path: Path
) -> None:
    b, gw = company.sites["branch-b"], company.sites["gw"]
    trunk = Trunk(gw, tmp_path)
    bob = phone(b, "2001", 600, tmp_path)
    try:
        direct = _timed_breakout(bob)
        assert trunk.proc.wait(timeout=15) == 0, trunk.messages()
    finally:
        bob.close()
        trunk.close()
    print(f"\nbreak-out via gw, no failover: {direct:.2f}s")
    messages = trunk.messages()
    assert f"INVITE sip:+49301234567@{gw.ip}:{TRUNK_PORT}" in messages
    froms = [line for line in messages.splitlines() if line.startswith("From:")]
    assert froms
    assert all(f"sip:{C_ASKED}@" in line for line in froms), froms
    assert "X-Callmesh" not in messages
    out = gw.cdr(lambda x: x["trunk"] == "c-sip")
    assert (out["route"], out["peer_site"], out["caller"]["extension"]) == (
        "via:c-sip", "branch-b", "2001",
    )  # fmt: skip
    assert out["direction"] == "outbound"
    origin = b.cdr(lambda x: x["callee"]["number"] == "0301234567")
    assert (origin["route"], origin["trunk"], origin["peer_site"]) == ("national", "c-sip", "gw")
    assert origin["conversation_id"] == out["conversation_id"]


def test_forged_and_malformed_peer_invites_get_clear_refusals(company: Company) -> None:
    import socket

    b = company.sites["branch-b"]
    a = company.sites["branch-a"]
    cases = {
        "v1;site=branch-a;ts=1;sig=zz": "400 malformed-peer-header",
        f"v1;site=branch-a;ts={int(time.time())};sig={'0' * 64}": "403 untrusted-peer-source",
        f"v1;site=nowhere;ts={int(time.time())};sig={'0' * 64}": "403 unknown-peer-site",
    }
    with inside(a.ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((a.ip, 0))
        sock.settimeout(3)
        port = sock.getsockname()[1]
        for n, (auth, expected) in enumerate(cases.items()):
            sock.sendto(_invite(b, a.ip, port, auth, n), (b.ip, 5060))
            replies: list[str] = []
            while not any(r.startswith("SIP/2.0 4") for r in replies):
                replies.append(sock.recv(65535).decode(errors="replace"))
            final = next(r for r in replies if r.startswith("SIP/2.0 4"))
            assert final.startswith(f"SIP/2.0 {expected}"), final
    assert "inter-site call refused" in b.output()


def _invite(to: Site, ip: str, port: int, auth: str, n: int) -> bytes:
    return (
        f"INVITE sip:2001@{to.ip}:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {ip}:{port};branch=z9hG4bK-forged-{n}-{time.time_ns()}\r\n"
        f"From: <sip:1001@{ip}>;tag=f{n}\r\nTo: <sip:2001@{to.ip}>\r\n"
        f"Call-ID: forged-{n}-{time.time_ns()}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:1001@{ip}:{port}>\r\nMax-Forwards: 70\r\n"
        f"X-Callmesh-Auth: {auth}\r\nX-Callmesh-Caller: 1001\r\n"
        "X-Callmesh-Conversation: 3f1e1f4e-0c55-4c38-9a4f-8a1c1b1b1b1b\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _failovers(site: Site) -> dict[tuple[str, str], float]:
    """(target, reason) -> count from ``callmesh_route_failovers_total`` (route national)."""
    found = {}
    for line in site.metrics().splitlines():
        m = re.match(r"callmesh_route_failovers_total\{(.*)\} ([0-9.e+]+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels["route"] == "national":
                found[(labels["target"], labels["reason"])] = float(m.group(2))
    return found


def _peer_up(site: Site, peer: str) -> float | None:
    m = re.search(rf'^callmesh_peer_up\{{peer_site="{peer}"\}} (-?[0-9.]+)', site.metrics(), re.M)
    return float(m.group(1)) if m else None


def _timed_breakout(caller: Phone) -> float:
    started = time.monotonic()
    caller.send("call", to="0301234567")
    caller.state("CONFIRMED", timeout=10)
    elapsed = time.monotonic() - started
    caller.send("hangup")
    caller.state("DISCONNECTED")
    return elapsed


def test_a_cut_link_fails_over_to_the_next_target_within_two_seconds(
    company: Company, tmp_path: Path
) -> None:
    a = company.sites["branch-a"]
    wait_until(lambda: _peer_up(a, "gw") == 1, 10, a.output)
    trunk = Trunk(a, tmp_path, calls=2)
    alice = phone(a, "1001", 1000, tmp_path)
    company.set_link("gw", up=False)
    cut = time.monotonic()
    try:
        first = _timed_breakout(alice)
        wait_until(lambda: _peer_up(a, "gw") == 0, 10, a.output)
        detected = time.monotonic() - cut
        second = _timed_breakout(alice)
        assert trunk.proc.wait(timeout=15) == 0
        health = get_json(company.hub, f"{company.hq_url}/api/v1/sites/branch-a")["health"]
        wait_until(
            lambda: get_json(company.hub, f"{company.hq_url}/api/v1/reports/routing")["sites"][
                "branch-a"]["failovers"].get("national", 0) >= 2,
            10, lambda: str(health),
        )  # fmt: skip
    finally:
        alice.close()
        trunk.close()
        company.set_link("gw", up=True)
    print(f"\nfailover: first call after the cut {first:.2f}s, after detection {second:.2f}s")
    print(f"gw marked down {detected:.2f}s after the cut")
    assert first < 2.5, f"failover took {first:.2f}s"
    assert second < 1.0, f"a peer known to be down still cost {second:.2f}s"
    counts = _failovers(a)
    assert counts[("site:gw via c-sip", "sip-408")] >= 1
    assert counts[("site:gw via c-sip", "peer-down")] >= 1
    froms = [x for x in trunk.messages().splitlines() if x.startswith("From:")]
    assert froms
    assert all(f"sip:{A_NUMBER}@" in x for x in froms)
    report = get_json(company.hub, f"{company.hq_url}/api/v1/reports/routing")["sites"]
    assert report["branch-a"]["peers"]["gw"]["up"] is False
    cdr = a.cdr(lambda x: x["callee"]["number"] == "0301234567" and x["failovers"] == 1)
    assert (cdr["trunk"], cdr["peer_site"]) == ("a-sip", None)


def test_sites_keep_routing_on_their_snapshots_while_hq_is_down(
    company: Company, tmp_path: Path
) -> None:
    a, b = company.sites["branch-a"], company.sites["branch-b"]
    company.hq.stop()
    assert a.process is not None
    a.process.stop()
    company.start_site(a)
    assert routing_version(a) > 0
    alice, bob = phone(a, "1002", 1000, tmp_path), phone(b, "2002", 600, tmp_path)
    try:
        connect_call(alice, bob)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    finally:
        alice.close()
        bob.close()


def test_a_stopped_site_is_skipped_for_the_next_sites_trunk(
    company: Company, tmp_path: Path
) -> None:
    a, b, gw = (company.sites[s] for s in ("branch-a", "branch-b", "gw"))
    assert gw.process is not None
    gw.process.stop()
    trunk = Trunk(a, tmp_path)
    erin = phone(b, "2002", 600, tmp_path)
    try:
        elapsed = _timed_breakout(erin)
        assert trunk.proc.wait(timeout=15) == 0
    finally:
        erin.close()
        trunk.close()
    print(f"\nstopped site: break-out reached the next site's trunk in {elapsed:.2f}s")
    assert elapsed < 2.5
    froms = [x for x in trunk.messages().splitlines() if x.startswith("From:")]
    assert froms
    assert all(f"sip:{A_NUMBER}@" in x for x in froms)
    out = a.cdr(lambda x: x["route"] == "via:a-sip" and x["caller"]["extension"] == "2002")
    assert out["peer_site"] == "branch-b"
