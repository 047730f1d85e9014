"""The PBX's control plane is private: seen from another network namespace, only SIP, RTP and
the token-protected local API answer; a media or GSM worker refuses any INVITE that does
not come from the local Kamailio; calls through the workers still work.

Topology (names unique per run): namespace ``…-site`` runs the whole appliance (profile
sim-gateway: Kamailio, rtpengine, one media worker, one GSM worker over two simulated
modems) with ``pbx.sip_host`` on ``wan0`` 10.78.0.1; namespace ``…-lan`` (10.78.0.2, the
other end of the veth pair) holds the phone and every probe. The ports are the shipped
defaults: evapi 5065, route endpoint 5066, rtpengine ng 2223, workers 5080 and 5120.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyroute2 import NetNS, netns

from drivers.modem.simulator import ModemSimulator, SimulatorConfig
from drivers.net.component import NetworkComponent
from drivers.net.netlink import NetlinkDriver
from drivers.net.plan import Desired, Link
from tests.integration.pbx.audio import dominant, loudness, read_channels
from tests.integration.pbx.harness import Phone, require_debs, wait_for
from tests.integration.routing.sites import NsProcess, inside
from tests.procs import write_yaml

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

SITE_IP, LAN_IP = "10.78.0.1", "10.78.0.2"
SIP, API = 5060, 8080
EVAPI, ROUTE, NG, MEDIA_WORKER, GSM_WORKER = 5065, 5066, 2223, 5080, 5120
RTP_MIN, RTP_MAX = 30000, 30199
TOKEN = "control-plane-admin-token-0123"
DOMAIN = "branch-x.test"
FAR_TONE, PHONE_TONE = 700, 450


@dataclass
class Site:
    """The appliance in its namespace and the namespace that looks at it."""

    ns: str
    lan: str
    root: Path
    process: NsProcess
    simulator: ModemSimulator

    @property
    def sip_port(self) -> int:
        return SIP

    def output(self) -> str:
        text = self.process.output()
        for name in ("kamailio.log", "media-w0.log", "media-g0.log"):
            log = self.root / "pbx" / "run" / name
            if log.exists():
                text += f"\n--- {name} tail ---\n" + log.read_text(errors="replace")[-3000:]
        return text

    def get(self, path: str) -> Any:
        with inside(self.ns):
            response = httpx.get(f"http://{SITE_IP}:{API}{path}", timeout=5,
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        response.raise_for_status()
        return response.json()

    def channels_ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            channels = self.get("/api/v1/gsm/channels")["channels"]
            return bool(sum(c["worker_alive"] and c["registered"] for c in channels) == 2)
        return False


def build_network(site_ns: str, lan_ns: str) -> None:
    for name in (site_ns, lan_ns):
        netns.create(name)
    with NetNS(site_ns) as ipr:
        ipr.link("add", ifname="wan0", kind="veth", peer={"ifname": "lan0", "net_ns_fd": lan_ns})
    for name, ifname, address in ((site_ns, "wan0", SITE_IP), (lan_ns, "lan0", LAN_IP)):
        desired = Desired(links=(Link("lo"), Link(ifname, addresses=(f"{address}/24",))))
        report = NetworkComponent(desired, NetlinkDriver(name)).converge()
        assert report.ok, report.problems


def site_config(root: Path, modems: list[dict[str, Any]]) -> dict[str, Any]:
    channels = [f"gsm-{m['index']}" for m in modems]
    return {
        "site_id": "branch-x",
        "profile": "sim-gateway",
        "data_dir": str(root),
        "http": {"host": SITE_IP, "port": API},
        "api": {"tokens": [{"name": "t", "token": TOKEN, "role": "admin"}]},
        "sip": {"domain": DOMAIN, "extensions": [
            {"number": "1001", "password": "secret-1001-pw", "name": "Alice"}]},
        "pbx": {
            "enabled": True, "sip_host": SITE_IP, "kamailio_children": 2,
            "rtpengine_threads": 1, "rtp_port_min": RTP_MIN, "rtp_port_max": RTP_MAX,
            "media": {"workers": 1, "port_base": MEDIA_WORKER},
            "gsm": {"port_base": GSM_WORKER, "channels_per_worker": 2, "groups": [
                {"name": "mobile", "channels": channels, "strategy": "fixed-order"}]},
            "dialplan": {"outbound": [{"name": "mobile", "pattern": "0Z.", "trunk": "mobile",
                                       "strip": 1, "prepend": "+49"}]},
        },
        "gateway": {"ready_timeout_s": 20, "modems": [
            {"channel": f"gsm-{m['index']}", "port": m["at_by_id"], "imei": m["imei"]}
            for m in modems
        ]},
        "sim": {"unregistered_grace_s": 600},
        "recordings": {"retention_days": 0, "min_free_mb": 0},
    }  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_debs()
    root = tmp_path_factory.mktemp("control-plane")
    prefix = f"cm8-{secrets.token_hex(3)}"
    site_ns, lan_ns = f"{prefix}-site", f"{prefix}-lan"
    config = SimulatorConfig(profile="quectel-ec25", count=2, directory=str(root / "modems"),
                             reset_seconds=1.0)  # fmt: skip
    try:
        build_network(site_ns, lan_ns)
        with ModemSimulator(config) as simulator:
            simulator.wait_booted(30)
            path = write_yaml(root / "appliance.yaml", site_config(root / "site", simulator.info()))
            cli = [sys.executable, "-m", "appliance.cli.main", "appliance", "run"]
            process = NsProcess(site_ns, [*cli, "--config", str(path)], root / "appliance.log")
            instance = Site(site_ns, lan_ns, root / "site", process, simulator)
            process.start()
            try:
                wait_for(instance.channels_ready, 60, instance.output)
                yield instance
            finally:
                process.stop()
    finally:
        for name in (site_ns, lan_ns):
            with contextlib.suppress(OSError):
                netns.remove(name)


def tcp_refused(ns: str, port: int) -> bool:
    with inside(ns), socket.socket() as sock:
        sock.settimeout(3)
        try:
            sock.connect((SITE_IP, port))
        except ConnectionRefusedError:
            return True
    return False


def udp_answer(ns: str, port: int, payload: bytes, source: tuple[str, int]) -> bytes | None:
    """The first datagram answering ``payload``; None when the port is closed (ICMP)."""
    with inside(ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.bind(source)
        sock.connect((source[0] if source[0] == "127.0.0.1" else SITE_IP, port))
        sock.send(payload)
        try:
            return sock.recv(65536)
        except ConnectionRefusedError:
            return None


def sip_request(method: str, uri: str, source: tuple[str, int], call_id: str) -> bytes:
    host, port = source
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{call_id}",
        "Max-Forwards: 70",
        f"From: <sip:intruder@{host}>;tag={call_id}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:intruder@{host}:{port}>",
    ]
    body = ""
    if method == "INVITE":
        body = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
                "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")  # fmt: skip
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def final_answer(ns: str, port: int, request: bytes, source: tuple[str, int]) -> str:
    """The status line of the first final (non-1xx) answer, or "" when none came."""
    with inside(ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(source)
        sock.settimeout(5)
        sock.sendto(request, (source[0], port))
        with contextlib.suppress(TimeoutError):
            while True:
                line = sock.recv(65536).split(b"\r\n", 1)[0].decode()
                if not line.startswith("SIP/2.0 1"):
                    return line
    return ""


def free_port(ns: str, host: str) -> int:
    with inside(ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening(ns: str) -> set[tuple[str, str, int]]:
    """(protocol, address, port) of every listening TCP and bound UDP socket in ``ns``."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlntu"], capture_output=True,
                         text=True, check=True, timeout=10).stdout  # fmt: skip
    sockets = set()
    for line in out.splitlines():
        fields = line.split()
        address, _, port = fields[4].rpartition(":")
        sockets.add((fields[0], address, int(port)))
    return sockets


def public(sockets: set[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
    return {s for s in sockets if s[1] != "127.0.0.1"}


def test_only_sip_and_the_local_api_listen_beyond_loopback(site: Site) -> None:
    sockets = listening(site.ns)
    for control in (("tcp", EVAPI), ("tcp", ROUTE), ("udp", NG), ("udp", MEDIA_WORKER),
                    ("udp", GSM_WORKER)):  # fmt: skip
        assert (control[0], "127.0.0.1", control[1]) in sockets, sockets
    assert ("udp", "127.0.0.1", SIP) in sockets, "Kamailio's loopback socket for the workers"
    assert public(sockets) == {("udp", SITE_IP, SIP), ("tcp", SITE_IP, API)}


def test_control_ports_refuse_a_host_on_the_lan(site: Site) -> None:
    assert tcp_refused(site.lan, EVAPI)
    assert tcp_refused(site.lan, ROUTE)
    source = (LAN_IP, free_port(site.lan, LAN_IP))
    assert udp_answer(site.lan, NG, b"1 d7:command4:pinge", source) is None
    for worker in (MEDIA_WORKER, GSM_WORKER):
        options = sip_request("OPTIONS", f"sip:{SITE_IP}:{worker}", source, f"probe{worker}")
        assert udp_answer(site.lan, worker, options, source) is None
    options = sip_request("OPTIONS", f"sip:{SITE_IP}:{SIP}", source, "probe-sip")
    answer = udp_answer(site.lan, SIP, options, source)
    assert (answer or b"").startswith(b"SIP/2.0 200"), answer


def test_the_same_control_ports_answer_on_loopback_inside_the_site(site: Site) -> None:
    source = ("127.0.0.1", free_port(site.ns, "127.0.0.1"))
    pong = udp_answer(site.ns, NG, b"1 d7:command4:pinge", source)
    assert pong == b"1 d6:result4:ponge"


def test_workers_refuse_an_invite_from_loopback_that_does_not_come_from_kamailio(
    site: Site,
) -> None:
    source = ("127.0.0.1", free_port(site.ns, "127.0.0.1"))
    echo = sip_request("INVITE", f"sip:echo@127.0.0.1:{MEDIA_WORKER}", source, "straight-echo")
    assert final_answer(site.ns, MEDIA_WORKER, echo, source).startswith("SIP/2.0 403")
    uri = f"sip:+4930555000@127.0.0.1:{GSM_WORKER};gsm=gsm-0"
    gsm = sip_request("INVITE", uri, source, "straight-gsm")
    assert final_answer(site.ns, GSM_WORKER, gsm, source).startswith("SIP/2.0 403")
    time.sleep(1)
    assert site.simulator.calls(0) == []
    assert all(c["call"] is None for c in site.get("/api/v1/gsm/channels")["channels"])
    logs = site.root / "pbx" / "run"
    for name in ("media-w0.log", "media-g0.log"):
        assert f"INVITE from {source[0]}:{source[1]} refused" in (logs / name).read_text()


def phone(site: Site, root: Path) -> Phone:
    alice = Phone(site, "1001", PHONE_TONE, root, secret="secret-1001-pw", domain=DOMAIN,
                  host=SITE_IP, netns=site.lan, bind=LAN_IP)  # fmt: skip
    assert alice.registered() == 200, "".join(alice.log)
    return alice


def heard(path: Path) -> float:
    rate, channels = read_channels(path)
    assert loudness(channels[0]) > 100, f"{path} is silent"
    return dominant(channels[0], rate, [300.0, PHONE_TONE, 600.0, FAR_TONE, 1000.0])


def test_a_phone_on_the_lan_reaches_the_echo_worker_and_the_call_opens_only_rtp(
    site: Site, tmp_path: Path
) -> None:
    idle = public(listening(site.ns))
    alice = phone(site, tmp_path)
    try:
        alice.send("call", to="*43")
        alice.state("CONFIRMED", timeout=15)
        wait_for(lambda: alice.record.exists() and alice.record.stat().st_size > 40000, 15,
                 lambda: "the phone recorded nothing")  # fmt: skip
        opened = public(listening(site.ns)) - idle
        alice.send("hangup")
        alice.state("DISCONNECTED")
    finally:
        alice.close()
    assert heard(alice.record) == PHONE_TONE
    assert opened, "a call up opens RTP ports on the SIP address"
    assert all(proto == "udp" and address == SITE_IP for proto, address, _ in opened)
    assert not {port for _, _, port in opened} & {SIP, EVAPI, ROUTE, NG, MEDIA_WORKER, GSM_WORKER}
    assert any(RTP_MIN <= port <= RTP_MAX for _, _, port in opened), opened


def test_a_phone_on_the_lan_breaks_out_through_a_gsm_channel(site: Site, tmp_path: Path) -> None:
    site.simulator.set_far_end(0, "answer", answer_after=0.3)
    site.simulator.play_tone(0, FAR_TONE)
    alice = phone(site, tmp_path)
    try:
        alice.send("call", to="030123456")
        alice.state("CONFIRMED", timeout=20)
        assert site.simulator.calls(0)[0]["number"] == "+4930123456"
        wait_for(lambda: alice.record.exists() and alice.record.stat().st_size > 40000, 15,
                 lambda: "the phone recorded nothing")  # fmt: skip
        alice.send("hangup")
        alice.state("DISCONNECTED")
    finally:
        alice.close()
    assert heard(alice.record) == FAR_TONE
    wait_for(lambda: not site.simulator.calls(0), 10, lambda: str(site.simulator.calls(0)))
