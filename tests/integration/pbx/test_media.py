"""Media workers end to end: echo, announcements, IVR, click-to-dial, three-way, hang-up.

One PBX with two pjsua2 media workers for the module; phones are pjsua2 processes that
play a tone each and record what they hear, so every check is on real audio.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.sip.evapi import NetstringDecoder, parse_event
from tests.integration.pbx.audio import dominant, loudness, power, read_channels
from tests.integration.pbx.harness import (
    Pbx,
    Phone,
    connect_call,
    media,
    no_daemons_left,
    phones,
    require_debs,
    wait_for,
    worker_pid,
)

PROMPT_HZ = 700
TONES = [300.0, 450.0, 600.0, 700.0, 1000.0]


@pytest.fixture(scope="module")
def mpbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    require_debs()
    root = tmp_path_factory.mktemp("media-pbx")
    workers = media(
        2,
        prompts={
            "closed": {"tone_hz": PROMPT_HZ, "seconds": 2.0},
            "menu": {"tone_hz": PROMPT_HZ, "seconds": 1.0},
        },
        ivr={"main": {"prompt": "menu", "options": {"1": "1003"}, "timeout_s": 5}},
    )
    dialplan = {
        "forward": {"1002": {"busy": "ivr:main", "no_answer": "announce:closed"}},
        "recording_by_extension": {"1003": "on-demand"},
    }
    instance = Pbx(root, media=workers, dialplan=dialplan)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
    assert no_daemons_left(root)


def heard(phone: Phone) -> float:
    rate, (samples,) = read_channels(phone.record)
    assert loudness(samples) > 100, f"{phone.number} heard silence"
    return dominant(samples, rate, TONES)


def test_echo_feature_code_sends_the_callers_audio_back(mpbx: Pbx, tmp_path: Path) -> None:
    with phones(mpbx, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="*43")
        alice.state("CONFIRMED")
        wait_for(lambda: alice.record.exists() and alice.record.stat().st_size > 40000, 10,
                 lambda: "no audio recorded")  # fmt: skip
        alice.send("hangup")
        alice.state("DISCONNECTED")
    assert heard(alice) == 450.0
    cdr = mpbx.cdr_for(lambda c: c["route"] == "media:echo")
    assert cdr["disposition"] == "answered"
    assert cdr["recording_id"] is None


def test_busy_forward_to_ivr_then_digit_transfers_the_caller(mpbx: Pbx, tmp_path: Path) -> None:
    specs = (("1001", 1000), ("1002", 600), ("1003", 300))
    with phones(mpbx, tmp_path, *specs) as (alice, bob, carol):
        alice.send("call", to="1002")
        bob.wait(lambda e: e["ev"] == "incoming")
        bob.send("busy")
        alice.state("CONFIRMED")
        alice.send("dtmf", digits="1")
        alice.wait(lambda e: e["ev"] == "transferring")
        carol.answer()
        wait_for(lambda: carol.record.exists() and carol.record.stat().st_size > 40000, 10,
                 lambda: "carol recorded nothing")  # fmt: skip
        carol.send("hangup")
        carol.state("DISCONNECTED")
    assert heard(carol) == 1000.0
    assert heard(alice) in (PROMPT_HZ, 300.0)
    first = mpbx.cdr_for(lambda c: c["caller"]["number"] == "1001" and c["route"] == "extension"
                         and c["callee"]["number"] == "1002")  # fmt: skip
    second = mpbx.cdr_for(lambda c: c["caller"]["number"] == "1001"
                          and c["callee"]["number"] == "1003")  # fmt: skip
    assert second["disposition"] == "answered"
    assert second["conversation_id"] == first["conversation_id"]


def test_no_answer_forwards_to_an_announcement_that_hangs_up(mpbx: Pbx, tmp_path: Path) -> None:
    with phones(mpbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        alice.send("call", to="1002")
        bob.wait(lambda e: e["ev"] == "incoming")
        alice.state("CONFIRMED", timeout=10)
        alice.state("DISCONNECTED", timeout=10)
    assert heard(alice) == PROMPT_HZ


def test_click_to_dial_rings_the_extension_then_connects_the_number(
    mpbx: Pbx, tmp_path: Path
) -> None:
    with phones(mpbx, tmp_path, ("1001", 1000), ("1003", 300)) as (alice, carol):
        status, op = mpbx.api("POST", "/calls", {"extension": "1001", "number": "1003"})
        assert status == 202, op
        alice.wait(lambda e: e["ev"] == "incoming")
        alice.send("answer")
        alice.wait(lambda e: e["ev"] == "transferring")
        carol.answer()
        wait_for(lambda: mpbx.api("GET", f"/operations/{op['id']}")[1]["state"] == "connected",
                 10, lambda: str(mpbx.api("GET", f"/operations/{op['id']}")))  # fmt: skip
        wait_for(lambda: carol.record.exists() and carol.record.stat().st_size > 40000, 10,
                 lambda: "carol recorded nothing")  # fmt: skip
        carol.send("hangup")
        carol.state("DISCONNECTED")
    assert heard(carol) == 1000.0
    legs = [c for c in mpbx.cdrs() if c["conversation_id"] == op["conversation_id"]]
    ringing = [c for c in legs if c["caller"]["number"] == "click-to-dial"]
    talking = [c for c in legs if c["caller"]["number"] == "1001"]
    assert ringing
    assert ringing[0]["callee"]["number"] == "1001"
    assert talking
    assert talking[0]["callee"]["number"] == "1003"
    assert talking[0]["disposition"] == "answered"


def test_three_way_moves_a_call_into_a_conference_with_a_third_party(
    mpbx: Pbx, tmp_path: Path
) -> None:
    specs = (("1001", 1000), ("1002", 600), ("1003", 300))
    with phones(mpbx, tmp_path, *specs) as (alice, bob, carol):
        connect_call(alice, bob)
        call = _live(mpbx, lambda c: (c["caller"]["number"], c["callee"]["number"]) == (
            "1001", "1002"))  # fmt: skip
        wait_for(lambda: _answered(mpbx, call["call_id"]), 5, lambda: "no answer event")
        status, op = mpbx.api("POST", f"/calls/{call['call_id']}/parties", {"number": "1003"})
        assert status == 202, op
        alice.wait(lambda e: e["ev"] == "replaced")
        bob.wait(lambda e: e["ev"] == "replaced")
        carol.answer()
        wait_for(lambda: carol.record.exists() and carol.record.stat().st_size > 48000, 10,
                 lambda: "carol recorded nothing")  # fmt: skip
        mpbx.api("DELETE", f"/operations/{op['id']}")
        carol.state("DISCONNECTED")
        wait_for(lambda: not mpbx.api("GET", "/calls")[1]["calls"], 10,
                 lambda: str(mpbx.api("GET", "/calls")))  # fmt: skip
    rate, (samples,) = read_channels(carol.record)
    strongest = sorted(TONES, key=lambda f: -_power(samples, rate, f))[:2]
    assert set(strongest) == {1000.0, 600.0}
    legs = [c for c in mpbx.cdrs() if c["conversation_id"] == call["conversation_id"]]
    assert {c["callee"]["number"] for c in legs} >= {"1001", "1002", "1003"}


def test_api_hangup_ends_both_ends_and_writes_the_cdr(mpbx: Pbx, tmp_path: Path) -> None:
    with phones(mpbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        call = _live(mpbx, lambda c: (c["caller"]["number"], c["callee"]["number"]) == (
            "1001", "1002"))  # fmt: skip
        wait_for(lambda: _answered(mpbx, call["call_id"]), 5, lambda: "no answer event")
        status, body = mpbx.api("DELETE", f"/calls/{call['call_id']}")
        assert status == 200, body
        alice.state("DISCONNECTED")
        bob.state("DISCONNECTED")
    assert body["cdr"]["hangup_side"] == "system"
    assert body["cdr"]["hangup_cause"]["reason"] == "api-hangup"
    assert mpbx.api("DELETE", f"/calls/{call['call_id']}")[0] == 404


def test_a_phone_cannot_make_another_phone_answer_by_itself(mpbx: Pbx, tmp_path: Path) -> None:
    """Auto-answer headers are for the media workers (answer on desk): Kamailio removes
    them from a phone's INVITE, so the callee rings instead of opening its microphone."""
    auto = {"Call-Info": "<sip:test.local>;answer-after=0",
            "Alert-Info": "<http://127.0.0.1/>;info=alert-autoanswer"}  # fmt: skip
    with phones(mpbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        alice.send("call", to="1002", headers=auto)
        assert not bob.wait(lambda e: e["ev"] == "incoming", 10)["auto_answer"]
        alice.send("hangup")
        alice.state("DISCONNECTED")
        bob.state("DISCONNECTED")


def test_api_hangup_ends_the_callee_when_the_callers_200_comes_before_its_bye(
    mpbx: Pbx, tmp_path: Path
) -> None:
    """The race of Kamailio 5.6's dlg.end_dlg, forced: the BYE counter of the call starts
    at -1, so after both BYEs it reads 1, as it does when the caller's 200 arrives before
    the callee's BYE is built. The 200s wait in their reply route, so the dialog lives on
    and both ends still get their BYE, until the counter says both went out; then the
    waiting 200s reach the dialog module, which ends the dialog."""
    with phones(mpbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        call = _live(mpbx, lambda c: (c["caller"]["number"], c["callee"]["number"]) == (
            "1001", "1002"))  # fmt: skip
        wait_for(lambda: _answered(mpbx, call["call_id"]), 5, lambda: "no answer event")
        _kamailio_rpc(mpbx, "htable.seti", "byes", call["call_id"], -1)
        assert mpbx.api("DELETE", f"/calls/{call['call_id']}")[0] == 200
        assert _dialogs(mpbx, call["call_id"]), "a 200 ended the dialog before both BYEs"
        alice.state("DISCONNECTED")
        bob.state("DISCONNECTED")
        _kamailio_rpc(mpbx, "htable.seti", "byes", call["call_id"], 2)
        wait_for(lambda: not _dialogs(mpbx, call["call_id"]), 5, lambda: "dialog never ended")


def _dialogs(pbx: Pbx, call_id: str) -> list[Any]:
    return [d for d in _kamailio_rpc(pbx, "dlg.list") or [] if d.get("call-id") == call_id]


def _kamailio_rpc(pbx: Pbx, method: str, *params: Any) -> Any:
    """Run a Kamailio RPC over the PBX's evapi socket with an id of our own (bounded)."""
    rpc_id = f"test-{uuid.uuid4().hex}"
    request = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
    payload = json.dumps({"id": rpc_id, "rpc": request}).encode()
    decoder = NetstringDecoder()
    deadline = time.monotonic() + 5
    with socket.create_connection(("127.0.0.1", int(pbx.settings["evapi_port"])), 5) as sock:
        sock.sendall(b"%d:%s," % (len(payload), payload))
        while time.monotonic() < deadline:
            for event in map(parse_event, decoder.feed(sock.recv(65536))):
                if event.get("event") == "rpc" and event.get("id") == rpc_id:
                    body = json.loads(event.get("body") or "{}")
                    assert "error" not in body, body
                    return body.get("result")
    raise AssertionError(f"Kamailio did not answer {method}")


def test_killed_media_worker_gives_interrupted_cdr_and_comes_back(
    mpbx: Pbx, tmp_path: Path
) -> None:
    with phones(mpbx, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="*43")
        alice.state("CONFIRMED")
        call = _live(mpbx, lambda c: c["route"] == "media:echo")
        wait_for(lambda: _answered(mpbx, call["call_id"]), 5, lambda: "no answer event")
        pid = worker_pid(mpbx, call["media_peer"])
        os.kill(pid, signal.SIGKILL)
        alice.state("DISCONNECTED", timeout=10)
    cdr = mpbx.cdr_for(lambda c: c["call_id"] == call["call_id"])
    assert cdr["disposition"] == "interrupted"
    assert cdr["hangup_cause"]["reason"] == "media-worker-restart"
    wait_for(lambda: worker_pid(mpbx, call["media_peer"]) not in (0, pid), 15,
             mpbx.output)  # fmt: skip
    with phones(mpbx, tmp_path, ("1001", 450)) as (alice,):
        for _ in range(2):
            alice.send("call", to="*43")
            alice.state("CONFIRMED")
            alice.send("hangup")
            alice.state("DISCONNECTED")


def _live(pbx: Pbx, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The one call in progress that ``match`` picks, waiting for it (bounded)."""
    found: list[dict[str, Any]] = []

    def one() -> bool:
        found[:] = [c for c in pbx.api("GET", "/calls")[1]["calls"] if match(c)]
        return len(found) == 1

    wait_for(one, 5, lambda: str(pbx.api("GET", "/calls")))
    return found[0]


def _answered(pbx: Pbx, call_id: str) -> bool:
    return any(
        c["call_id"] == call_id and c["answer"] for c in pbx.api("GET", "/calls")[1]["calls"]
    )


def _power(samples: array.array[int], rate: int, freq: float) -> float:
    middle = len(samples) // 2
    return power(samples[middle : middle + rate], rate, freq)


def test_on_demand_recording_starts_from_the_api(mpbx: Pbx, tmp_path: Path) -> None:
    with phones(mpbx, tmp_path, ("1003", 300), ("1001", 1000)) as (carol, alice):
        connect_call(carol, alice)
        call = _live(mpbx, lambda c: (c["caller"]["number"], c["callee"]["number"]) == (
            "1003", "1001"))  # fmt: skip
        assert call["recording"] == "on-demand"
        wait_for(lambda: _answered(mpbx, call["call_id"]), 5, lambda: "no answer event")
        status, body = mpbx.api("PUT", f"/calls/{call['call_id']}/recording", {"recording": True})
        assert status == 200, body
        wait_for(lambda: alice.record.exists() and alice.record.stat().st_size > 40000, 10,
                 lambda: "no audio")  # fmt: skip
        carol.send("hangup")
        alice.state("DISCONNECTED")
    cdr = mpbx.cdr_for(lambda c: c["call_id"] == call["call_id"])
    entry = mpbx.recording(cdr["recording_id"], timeout=20)
    rate, (left, right) = read_channels(Path(entry["path"]))
    assert dominant(left, rate, TONES) == 300.0
    assert dominant(right, rate, TONES) == 1000.0


def test_recording_is_refused_where_the_policy_says_never(mpbx: Pbx, tmp_path: Path) -> None:
    with phones(mpbx, tmp_path, ("1001", 450)) as (alice,):
        alice.send("call", to="*43")
        alice.state("CONFIRMED")
        call = _live(mpbx, lambda c: c["route"] == "media:echo")
        status, body = mpbx.api("PUT", f"/calls/{call['call_id']}/recording", {"recording": True})
        alice.send("hangup")
        alice.state("DISCONNECTED")
    assert (status, body["detail"]["error_id"]) == (403, "recording-not-allowed")
