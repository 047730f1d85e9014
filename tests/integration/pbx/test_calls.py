"""Calls between real pjsua2 phones through Kamailio and rtpengine, with their CDRs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from appliance.pbx.webhooks import signature
from tests.integration.pbx.audio import dominant, read_channels
from tests.integration.pbx.harness import (
    WEBHOOK_SECRET,
    Pbx,
    Phone,
    WebhookReceiver,
    connect_call,
    phones,
    wait_for,
)

TONES = [300.0, 600.0, 1000.0, 1500.0]


def test_answered_call_is_recorded_per_side_and_relays_dtmf(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        alice.send("dtmf", digits="42")
        assert bob.wait(lambda e: e["ev"] == "dtmf")["digit"] == "4"
        assert bob.wait(lambda e: e["ev"] == "dtmf")["digit"] == "2"
        time.sleep(2)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    cdr = pbx.cdr_for(lambda c: c["caller"]["number"] == "1001" and c["answer"] is not None)
    assert cdr["disposition"] == "answered"
    assert cdr["hangup_side"] == "caller"
    assert cdr["caller"] == {"number": "1001", "extension": "1001", "name": "Alice"}
    assert cdr["callee"]["number"] == "1002"
    assert cdr["direction"] == "internal"
    assert cdr["billable_s"] >= 1
    entry = pbx.recording(cdr["recording_id"])
    assert entry["cdr_id"] == cdr["cdr_id"]
    rate, (left, right) = read_channels(Path(entry["path"]))
    assert dominant(left, rate, TONES) == 1000.0
    assert dominant(right, rate, TONES) == 600.0
    for phone, heard in ((alice, 600.0), (bob, 1000.0)):
        rate, (mono,) = read_channels(phone.record)
        assert dominant(mono, rate, TONES) == heard


def test_webhooks_report_the_call_signed(
    pbx: Pbx, webhook_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        connect_call(alice, bob)
        alice.send("hangup")
        bob.state("DISCONNECTED")
    cdr = pbx.cdr_for(lambda c: c["caller"]["number"] == "1001" and c["answer"] is not None)
    wait_for(lambda: len(webhook_receiver.events_for(cdr["call_id"])) == 3, 10, str)
    events = webhook_receiver.events_for(cdr["call_id"])
    assert [json.loads(body)["event"] for _, body in events] == [
        "call.started", "call.answered", "call.ended",
    ]  # fmt: skip
    for headers, body in events:
        expected = signature(WEBHOOK_SECRET, headers["X-Callmesh-Timestamp"], body)
        assert headers["X-Callmesh-Signature"] == expected
    assert json.loads(events[-1][1])["data"]["cdr_id"] == cdr["cdr_id"]


def _last_cdr_from(pbx: Pbx, callee: str, disposition: str) -> dict[str, Any]:
    cdr = pbx.cdr_for(lambda c: c["callee"]["number"] == callee and c["disposition"] == disposition)
    assert cdr["recording_id"] is None
    assert cdr["answer"] is None
    assert cdr["billable_s"] == 0
    return cdr


def test_busy_callee_gives_busy_cdr_and_no_recording(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1003", 600)) as (alice, carol):
        alice.send("call", to="1003")
        carol.wait(lambda e: e["ev"] == "incoming")
        carol.send("busy")
        assert alice.state("DISCONNECTED")["code"] == 486
    cdr = _last_cdr_from(pbx, "1003", "busy")
    assert cdr["hangup_cause"] == {"sip_code": 486, "reason": "busy"}


def test_unanswered_call_ends_as_no_answer_within_timer(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000), ("1002", 600)) as (alice, bob):
        started = time.monotonic()
        alice.send("call", to="1002")
        bob.wait(lambda e: e["ev"] == "incoming")
        assert alice.state("DISCONNECTED", timeout=8)["code"] == 480
        assert time.monotonic() - started < 6
    cdr = _last_cdr_from(pbx, "1002", "no-answer")
    assert cdr["hangup_side"] == "system"


def test_caller_hanging_up_while_ringing_gives_cancelled_cdr(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1002", 1000), ("1003", 600)) as (bob, carol):
        bob.send("call", to="1003")
        carol.wait(lambda e: e["ev"] == "incoming")
        bob.send("hangup")
        carol.state("DISCONNECTED")
    cdr = _last_cdr_from(pbx, "1003", "cancelled")
    assert cdr["caller"]["number"] == "1002"
    assert cdr["hangup_side"] == "caller"


def test_unknown_extension_is_rejected_with_404(pbx: Pbx, tmp_path: Path) -> None:
    with phones(pbx, tmp_path, ("1001", 1000)) as (alice,):
        alice.send("call", to="1999")
        assert alice.state("DISCONNECTED")["code"] == 404
    cdr = pbx.cdr_for(lambda c: c["callee"]["number"] == "1999")
    assert cdr["disposition"] == "failed"
    assert cdr["hangup_cause"] == {"sip_code": 404, "reason": "unknown-extension"}


def test_wrong_password_cannot_register(pbx: Pbx, tmp_path: Path) -> None:
    phone = Phone(pbx, "1002", 600, tmp_path, secret="not-the-password")
    try:
        assert phone.registered() in (401, 403, 407)
    finally:
        phone.close()
