"""Meet-me rooms end to end: every participant hears every other, across cascaded workers.

One PBX with five media workers (four calls each) for the module. Audio-checked
participants are pjsua2 phones, each playing its own tone and recording what it hears;
the bulk of the 20-participant room is one sipp process placing authenticated calls that
stream a tone of their own. A phone "hears" a tone when, in a window of its recording,
the tone's power is within 30 dB of the loudest tone there (and not silence); no tone is
a harmonic of another, so G.711 distortion is not mistaken for a participant, and every
tone is a multiple of 50 Hz (whole cycles in a 20 ms frame), so a frame that a jitter
buffer drops or conceals under load leaves no phase jump to cancel the tone.
"""

from __future__ import annotations

import array
import math
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.sip.recording import ULAW
from tests.integration.pbx.audio import power, read_channels
from tests.integration.pbx.harness import (
    DOMAIN,
    Pbx,
    Phone,
    free_udp_tcp_port,
    media,
    no_daemons_left,
    password,
    phones,
    require_debs,
    sipp_media_port,
    wait_for,
    worker_pid,
)

TONE = {"1001": 350, "1002": 450, "1003": 550, "1004": 650, "1005": 750, "1006": 1150}
BULK = "1009"
BULK_HZ = 950.0
BELOW_LOUDEST = 1000.0
SILENCE = 1e4
WAV_HEADER = 44
EXTENSIONS = {**{n: f"Person {n}" for n in TONE}, BULK: "Bulk"}


@pytest.fixture(scope="module")
def rpbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("rooms-pbx")
    instance = Pbx(root, extensions=EXTENSIONS, media=media(5), pike_exempt=["127.0.0.1"])
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def _specs(*numbers: str) -> list[tuple[str, int]]:
    return [(n, TONE[n]) for n in numbers]


def _join(phone: Phone, room: str) -> None:
    phone.send("call", to=f"*3{room}")
    phone.state("CONFIRMED", timeout=15)


def _room_calls(pbx: Pbx, room: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = pbx.api("GET", "/calls")[1]["calls"]
    return [c for c in calls if c["route"] == f"media:room-{room}" and c["answer"]]


def _wait_members(pbx: Pbx, room: str, count: int, timeout: float = 20) -> None:
    def why() -> str:
        return f"{len(_room_calls(pbx, room))} in room {room}\n{pbx.output()[-3000:]}"

    wait_for(lambda: len(_room_calls(pbx, room)) == count, timeout, why)


def _peer_of(pbx: Pbx, room: str, number: str) -> str:
    return next(str(c["media_peer"]) for c in _room_calls(pbx, room)
                if c["caller"]["number"] == number)  # fmt: skip


def _recorded(phone: Phone) -> int:
    """Samples the phone has recorded so far."""
    return (phone.record.stat().st_size - WAV_HEADER) // 2 if phone.record.exists() else 0


def _listen(*group: Phone, seconds: float = 2.5) -> None:
    """Let everyone record ``seconds`` more of the room."""
    start = {p.number: _recorded(p) for p in group}
    wanted = int(seconds * 8000)
    wait_for(lambda: all(_recorded(p) - start[p.number] >= wanted for p in group),
             seconds * 4 + 10, lambda: "a phone stopped recording")  # fmt: skip


def heard(phone: Phone, since: int = 0) -> list[set[float]]:
    """The tones this phone heard in each 0.6 s window (every 0.2 s) from sample ``since``.

    Phones leave one after the other at the end, so the test asks whether some window
    holds exactly the expected tones (everyone heard at once), not whether the last does.
    """
    rate, (samples,) = read_channels(phone.record)
    size, step = rate * 3 // 5, rate // 5
    return [_tones(samples[i : i + size], rate)
            for i in range(since, len(samples) - size + 1, step)]  # fmt: skip


def _tones(window: array.array[int], rate: int) -> set[float]:
    powers = {f: power(window, rate, f) for f in [float(t) for t in TONE.values()] + [BULK_HZ]}
    floor = max(max(powers.values()) / BELOW_LOUDEST, SILENCE)
    return {f for f, level in powers.items() if level > floor}


def _others(phone: Phone, group: list[Phone]) -> set[float]:
    """The tones of everyone in ``group`` but ``phone``."""
    return {float(TONE[p.number]) for p in group if p is not phone}


def test_two_phones_alone_in_a_room_hear_each_other(rpbx: Pbx, tmp_path: Path) -> None:
    with phones(rpbx, tmp_path, *_specs("1001", "1002")) as group:
        for phone in group:
            _join(phone, "1")
        _wait_members(rpbx, "1", 2)
        assert _peer_of(rpbx, "1", "1001") == _peer_of(rpbx, "1", "1002")
        _listen(*group)
    assert {450.0} in heard(group[0])
    assert {350.0} in heard(group[1])


def test_a_room_of_three_everyone_hears_the_other_two(rpbx: Pbx, tmp_path: Path) -> None:
    with phones(rpbx, tmp_path, *_specs("1001", "1002", "1003")) as group:
        for phone in group:
            _join(phone, "2")
        _wait_members(rpbx, "2", 3)
        assert len({_peer_of(rpbx, "2", p.number) for p in group}) == 1
        _listen(*group)
    for phone in group:
        assert _others(phone, group) in heard(phone), phone.number


def test_a_room_larger_than_a_worker_cascades_and_both_sides_hear_each_other(
    rpbx: Pbx, tmp_path: Path
) -> None:
    numbers = ("1001", "1002", "1003", "1004", "1005")
    with phones(rpbx, tmp_path, *_specs(*numbers)) as group:
        for phone in group:
            _join(phone, "3")
        _wait_members(rpbx, "3", 5)
        first, last = _peer_of(rpbx, "3", "1001"), _peer_of(rpbx, "3", "1005")
        assert first != last
        assert {_peer_of(rpbx, "3", n) for n in numbers[:4]} == {first}
        _listen(*group)
    for phone in group:
        assert _others(phone, group) in heard(phone), phone.number


def test_when_a_rooms_hub_worker_dies_the_participants_left_still_hear_each_other(
    rpbx: Pbx, tmp_path: Path
) -> None:
    scenario = _bulk_scenario(tmp_path, room="4")
    bulk: list[subprocess.Popen[bytes]] = []
    try:
        with phones(rpbx, tmp_path, *_specs("1001", "1002")) as group:
            alice, bob = group
            bulk.append(_sipp(rpbx, scenario, tmp_path, calls=4))
            _wait_members(rpbx, "4", 4)
            hub = _peer_of(rpbx, "4", BULK)
            _join(alice, "4")
            bulk.append(_sipp(rpbx, scenario, tmp_path, calls=3))
            _wait_members(rpbx, "4", 8)
            _join(bob, "4")
            _wait_members(rpbx, "4", 9)
            assert len({hub, _peer_of(rpbx, "4", "1001"), _peer_of(rpbx, "4", "1002")}) == 3
            pid = worker_pid(rpbx, hub)
            os.kill(pid, signal.SIGKILL)
            _wait_members(rpbx, "4", 5)
            since = {p.number: _recorded(p) + 8000 for p in group}
            _listen(alice, bob)
    finally:
        _end_room(rpbx, "4", bulk)
    assert {float(TONE["1002"]), BULK_HZ} in heard(alice, since["1001"])
    assert {float(TONE["1001"]), BULK_HZ} in heard(bob, since["1002"])
    wait_for(lambda: worker_pid(rpbx, hub) not in (0, pid), 20, rpbx.output)


def test_a_room_holds_twenty_participants_over_five_workers(rpbx: Pbx, tmp_path: Path) -> None:
    scenario = _bulk_scenario(tmp_path, room="9")
    bulk: list[subprocess.Popen[bytes]] = []
    try:
        with phones(rpbx, tmp_path, *_specs("1001", "1002", "1003", "1004", "1005")) as group:
            alice, bob, carol, dave, eve = group
            _join(alice, "9")
            bulk.append(_sipp(rpbx, scenario, tmp_path, calls=3))
            _wait_members(rpbx, "9", 4)
            _join(bob, "9")
            bulk.append(_sipp(rpbx, scenario, tmp_path, calls=13))
            _wait_members(rpbx, "9", 18, timeout=40)
            _join(carol, "9")
            _join(dave, "9")
            _wait_members(rpbx, "9", 20)
            eve.send("call", to="*39")
            refused = eve.state("DISCONNECTED", timeout=15)
            peers = {_peer_of(rpbx, "9", p.number) for p in (alice, bob, carol)}
            workers = {c["media_peer"] for c in _room_calls(rpbx, "9")}
            _listen(alice, bob, carol, dave)
    finally:
        _end_room(rpbx, "9", bulk)
    assert refused["code"] in (486, 503)
    assert len(peers) == 3
    assert len(workers) == 5
    checked = [alice, bob, carol, dave]
    for phone in checked:
        assert _others(phone, checked) | {BULK_HZ} in heard(phone), phone.number


def _end_room(pbx: Pbx, room: str, bulk: list[subprocess.Popen[bytes]]) -> None:
    """Hang up every call of the room through the API (BYE to both ends), so the workers
    are free for the next test, then stop the sipp processes."""
    for call in _room_calls(pbx, room):
        pbx.api("DELETE", f"/calls/{call['call_id']}")
    for proc in bulk:
        _stop(proc)


def _ulaw_code(value: int) -> int:
    return min(range(256), key=lambda code: abs(ULAW[code] - value))


def _bulk_scenario(folder: Path, room: str) -> Path:
    """sipp calls from the bulk extension into ``room``, streaming a tone until the BYE."""
    tone = folder / "bulk.ulaw"
    samples = (round(1500 * math.sin(2 * math.pi * BULK_HZ * n / 8000)) for n in range(8000))
    tone.write_bytes(bytes(_ulaw_code(v) for v in samples))
    path = folder / "bulk.xml"
    path.write_text(BULK_UAC.replace("ROOM", f"*3{room}").replace("TONE", str(tone))
                    .replace("PASSWORD", password(BULK)))  # fmt: skip
    return path


def _sipp(pbx: Pbx, scenario: Path, folder: Path, calls: int) -> subprocess.Popen[bytes]:
    with (folder / f"sipp-{calls}.out").open("wb") as out:
        return subprocess.Popen(
            ["sipp", f"127.0.0.1:{pbx.sip_port}", "-sf", str(scenario), "-i", "127.0.0.1",
             "-p", str(free_udp_tcp_port()), "-mp", str(sipp_media_port()),
             "-cp", str(free_udp_tcp_port()), "-m", str(calls), "-l", str(calls), "-r", "10",
             "-nostdin", "-timeout", "80s"],
            cwd=folder, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


BULK_UAC = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="room participant">
<send retrans="500"><![CDATA[
INVITE sip:ROOM@{DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{BULK}@{DOMAIN}>;tag=[call_number]
To: <sip:ROOM@{DOMAIN}>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{BULK}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="407" auth="true"/>
<send><![CDATA[
ACK sip:ROOM@{DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-1]
From: <sip:{BULK}@{DOMAIN}>;tag=[call_number]
To: <sip:ROOM@{DOMAIN}>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<send retrans="500"><![CDATA[
INVITE sip:ROOM@{DOMAIN} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{BULK}@{DOMAIN}>;tag=[call_number]
To: <sip:ROOM@{DOMAIN}>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:{BULK}@[local_ip]:[local_port]>
[authentication username={BULK} password=PASSWORD]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="200" rrs="true"/>
<send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:{BULK}@{DOMAIN}>;tag=[call_number]
To: <sip:ROOM@{DOMAIN}>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
<nop><action><exec rtp_stream="TONE,-1,0"/></action></nop>
<pause milliseconds="120000"/>
</scenario>
"""
