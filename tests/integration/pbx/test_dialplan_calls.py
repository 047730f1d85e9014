"""The dial plan executed by Kamailio for every call: ring groups, trunks, CoS, inbound DIDs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pbx.harness import (
    Pbx,
    free_udp_tcp_port,
    no_daemons_left,
    phones,
    require_debs,
    sipp_media_port,
    wait_for,
)

OWNED = "+4930555000"
TRUNK_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunk">
<recv request="INVITE" crlf="true" rrs="true"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]t[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:trunk@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv request="ACK"/>
<recv request="BYE"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


TRUNK_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunk caller">
<send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+4917012345@carrier.example>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:carrier@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="180" optional="true"/>
<recv response="200" rrs="true"/>
<send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:+4917012345@carrier.example>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<pause milliseconds="1000"/>
<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:+4917012345@carrier.example>;tag=[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200" crlf="true"/>
</scenario>
"""


def _challenging(method: str, after: str, answer: str) -> str:
    """A sipp scenario: 401 to the first ``method``, then ``answer`` if the credentials
    on the second one are right, else 403. ``after`` runs between the two (an ACK)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="{method} asking for credentials">
<recv request="{method}" crlf="true"/>
<send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]c[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="carrier.example", nonce="[pid]n[call_number]", algorithm=MD5
Content-Length: 0

]]></send>
{after}
<recv request="{method}" crlf="true" rrs="true">
  <action><verifyauth assign_to="authvalid" username="branch-7" password="trunk-secret"/></action>
</recv>
<nop hide="true" test="authvalid" next="good"/>
<send next="end"><![CDATA[
SIP/2.0 403 Wrong Credentials
[last_Via:]
[last_From:]
[last_To:];tag=[pid]d[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<label id="good"/>
{answer}
<label id="end"/>
</scenario>
"""


AUTH_TRUNK_UAS = _challenging(
    "INVITE",
    '<recv request="ACK"/>',
    TRUNK_UAS.split('<recv request="INVITE" crlf="true" rrs="true"/>', 1)[1].replace(
        "</scenario>", ""
    ),
)
REGISTRAR = _challenging(
    "REGISTER",
    "",
    """<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]r[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=300
Content-Length: 0

]]></send>""",
)


@pytest.fixture(scope="module")
def trunk_ports() -> tuple[int, int, int]:
    # Held for the whole module: from a range no other test allocates from.
    out, inbound, secure = (free_udp_tcp_port(15000, 17999) for _ in range(3))
    return out, inbound, secure


@pytest.fixture(scope="module")
def plan_pbx(
    tmp_path_factory: pytest.TempPathFactory, trunk_ports: tuple[int, int, int]
) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("dialplan")
    out_port, in_port, auth_port = trunk_ports
    dialplan = {
        "owned_numbers": [OWNED],
        "trunks": [
            {"name": "carrier", "host": "127.0.0.1", "port": out_port},
            {"name": "carrier-in", "host": "127.0.0.1", "port": in_port},
            {"name": "secure", "host": "127.0.0.1", "port": auth_port,
             "auth": {"username": "branch-7", "password": "trunk-secret",
                      "realm": "carrier.example"}},
        ],
        "outbound": [{"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
                      "prepend": "+49", "caller_id": OWNED},
                     {"name": "secure", "pattern": "9.", "trunk": "secure", "strip": 1,
                      "caller_id": OWNED}],
        "ring_groups": [
            {"number": "600", "members": ["1002", "1003"]},
            {"number": "601", "members": ["1002", "1003"], "strategy": "sequential",
             "ring_s": 2},
        ],
        "inbound": [{"did": OWNED, "target": "600"}],
        "class_of_service": {"1003": "internal"},
    }  # fmt: skip
    instance = Pbx(root, dialplan=dialplan, no_answer_s=10)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def _sipp(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / f"sipp-{len(list(cwd.glob('sipp-*.out')))}.out").open("wb") as out:
        return subprocess.Popen(
            ["sipp", "-i", "127.0.0.1", "-nostdin", "-timeout", "20s", "-m", "1",
             "-cp", str(free_udp_tcp_port()), "-mp", str(sipp_media_port()), *args],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _reap(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=25)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_simultaneous_ring_group_rings_all_and_first_answer_wins(
    plan_pbx: Pbx, tmp_path: Path
) -> None:
    with phones(plan_pbx, tmp_path, ("1001", 1000), ("1002", 600), ("1003", 300)) as (a, b, c):
        a.send("call", to="600")
        b.wait(lambda e: e["ev"] == "incoming")
        c.wait(lambda e: e["ev"] == "incoming")
        c.send("answer")
        a.state("CONFIRMED")
        b.state("DISCONNECTED")
        a.send("hangup")
        c.state("DISCONNECTED")
    cdr = plan_pbx.cdr_for(lambda x: x["callee"]["number"] == "600")
    assert (cdr["disposition"], cdr["route"]) == ("answered", "group:600")


def test_sequential_ring_group_moves_on_after_ring_time(plan_pbx: Pbx, tmp_path: Path) -> None:
    with phones(plan_pbx, tmp_path, ("1001", 1000), ("1002", 600), ("1003", 300)) as (a, b, c):
        a.send("call", to="601")
        b.wait(lambda e: e["ev"] == "incoming")
        c.wait(lambda e: e["ev"] == "incoming", timeout=6)
        b.state("DISCONNECTED")
        c.send("answer")
        a.state("CONFIRMED")
        a.send("hangup")
        c.state("DISCONNECTED")
    cdr = plan_pbx.cdr_for(lambda x: x["callee"]["number"] == "601")
    assert (cdr["disposition"], cdr["route"]) == ("answered", "group:601")


def test_outbound_call_uses_trunk_with_rewritten_number_and_owned_caller_id(
    plan_pbx: Pbx, tmp_path: Path, trunk_ports: tuple[int, int, int]
) -> None:
    log = tmp_path / "trunk.log"
    scenario = tmp_path / "trunk.xml"
    scenario.write_text(TRUNK_UAS)
    trunk = _sipp(["-sf", str(scenario), "-p", str(trunk_ports[0]), "-trace_msg",
                   "-message_file", str(log)], tmp_path)  # fmt: skip
    try:
        with phones(plan_pbx, tmp_path, ("1001", 1000), ("1003", 300)) as (alice, carol):
            carol.send("call", to="0301234567")
            assert carol.state("DISCONNECTED")["code"] == 403
            alice.send("call", to="0301234567")
            alice.state("CONFIRMED")
            alice.send("hangup")
            alice.state("DISCONNECTED")
        assert _reap(trunk) == 0
    finally:
        _reap(trunk)
    messages = log.read_text()
    assert messages.count("INVITE sip:") == 1
    assert "BYE sip:trunk@" in messages
    assert f"INVITE sip:+49301234567@127.0.0.1:{trunk_ports[0]}" in messages
    from_lines = [line for line in messages.splitlines() if line.startswith("From:")]
    assert from_lines
    assert all(f"sip:{OWNED}@test.local" in line for line in from_lines)
    assert f"P-Asserted-Identity: <sip:{OWNED}@test.local>" in messages
    refused = plan_pbx.cdr_for(lambda x: x["caller"]["number"] == "1003")
    assert refused["hangup_cause"] == {"sip_code": 403, "reason": "class-of-service"}
    sent = plan_pbx.cdr_for(lambda x: x["trunk"] == "carrier")
    assert (sent["direction"], sent["route"], sent["disposition"]) == (
        "outbound", "national", "answered",
    )  # fmt: skip


def test_outbound_call_answers_the_trunks_digest_challenge(
    plan_pbx: Pbx, tmp_path: Path, trunk_ports: tuple[int, int, int]
) -> None:
    scenario = tmp_path / "auth-trunk.xml"
    scenario.write_text(AUTH_TRUNK_UAS)
    log = tmp_path / "auth-trunk.log"
    trunk = _sipp(["-sf", str(scenario), "-p", str(trunk_ports[2]), "-trace_msg",
                   "-message_file", str(log)], tmp_path)  # fmt: skip
    try:
        with phones(plan_pbx, tmp_path, ("1001", 1000)) as (alice,):
            alice.send("call", to="955501")
            alice.state("CONFIRMED")
            alice.send("hangup")
            alice.state("DISCONNECTED")
        assert _reap(trunk) == 0
    finally:
        _reap(trunk)
    messages = log.read_text()
    assert 'Authorization: Digest username="branch-7"' in messages
    sent = plan_pbx.cdr_for(lambda x: x["trunk"] == "secure")
    assert sent["disposition"] == "answered"


def test_inbound_did_from_trunk_rings_its_ring_group(
    plan_pbx: Pbx, tmp_path: Path, trunk_ports: tuple[int, int, int]
) -> None:
    with phones(plan_pbx, tmp_path, ("1002", 600), ("1003", 300)) as (bob, carol):
        scenario = tmp_path / "caller.xml"
        scenario.write_text(TRUNK_UAC)
        caller = _sipp(["-sf", str(scenario), "-s", OWNED, "-p", str(trunk_ports[1]),
                        f"127.0.0.1:{plan_pbx.sip_port}"], tmp_path)  # fmt: skip
        try:
            bob.wait(lambda e: e["ev"] == "incoming")
            carol.wait(lambda e: e["ev"] == "incoming")
            bob.send("answer")
            assert _reap(caller) == 0
        finally:
            _reap(caller)
    cdr = plan_pbx.cdr_for(lambda x: x["direction"] == "inbound")
    assert (cdr["callee"]["number"], cdr["route"], cdr["disposition"]) == (
        OWNED, f"inbound:{OWNED}", "answered",
    )  # fmt: skip
    assert cdr["caller"] == {"number": "+4917012345", "extension": None, "name": ""}


def test_trunk_registration_with_digest_is_kept_up(tmp_path: Path) -> None:
    require_debs()
    port = free_udp_tcp_port()
    scenario = tmp_path / "registrar.xml"
    scenario.write_text(REGISTRAR)
    registrar = _sipp(["-sf", str(scenario), "-p", str(port)], tmp_path)
    auth = {"username": "branch-7", "password": "trunk-secret", "realm": "carrier.example",
            "registration": True, "expires_s": 300}  # fmt: skip
    pbx = Pbx(tmp_path, dialplan={"trunks": [{"name": "carrier", "host": "127.0.0.1",
                                              "port": port, "auth": auth}]})  # fmt: skip
    try:
        pbx.start()
        assert _reap(registrar) == 0
        wait_for(lambda: pbx.api("GET", "/trunks")[1]["trunks"][0].get("registered") is True,
                 10, lambda: str(pbx.api("GET", "/trunks")))  # fmt: skip
        trunk = pbx.api("GET", "/trunks")[1]["trunks"][0]
    finally:
        _reap(registrar)
        pbx.stop()
    assert 0 < trunk["expires_in_s"] <= 300
    assert "password" not in str(trunk)
