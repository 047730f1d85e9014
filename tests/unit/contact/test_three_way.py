"""An agent's three-way on its queue call: the worker rings the party from the agent's
extension and joins it in barge without a beep; party events on the CTI stream."""

from __future__ import annotations

import pytest

from appliance.contact.supervision import Held, SupervisionService
from appliance.contact.supervisors import SupervisionError
from tests.media_wire import ev
from tests.unit.contact.test_supervision import SETTINGS, FakeWorker, RecordingCti


def service() -> tuple[SupervisionService, FakeWorker, RecordingCti]:
    worker, cti = FakeWorker(), RecordingCti()
    calls = {"1003": Held("caller-1", "support", worker)}
    return SupervisionService(SETTINGS, calls.get, cti, lambda *_: None), worker, cti


def test_the_party_is_rung_from_the_agent_and_joins_everyone_hearing_everyone() -> None:
    supervision, worker, cti = service()
    session = supervision.three_way("1003", "+8613800000001")
    assert worker.sent == [{"cmd": "supervise-call", "id": session.key, "agent": "1003",
                            "to": "+8613800000001", "display": "support: 1003"}]  # fmt: skip
    supervision.on_event(
        worker, ev({"ev": "supervise", "state": "start", "id": session.key, "call_id": "leg-1"})
    )
    assert worker.sent[-1] == {"cmd": "supervise-join", "id": session.key, "mode": "barge",
                               "beep": "none"}  # fmt: skip
    supervision.on_event(
        worker, ev({"ev": "supervise", "state": "digit", "id": session.key, "digit": "4"})
    )
    assert worker.sent[-1]["cmd"] == "supervise-join", "a party's keys switch nothing"
    supervision.on_event(
        worker, ev({"ev": "supervise", "state": "ended", "id": session.key, "reason": "hangup"})
    )
    assert cti.names() == ["call.party-joined", "call.party-left"]
    joined = cti.published[0].data
    assert (joined["party"], joined["agent"], joined["call_id"]) == ("+8613800000001", "1003",
                                                                    "caller-1")  # fmt: skip
    assert supervision.snapshot() == {"sessions": []}


def test_a_call_holds_one_party_or_supervisor_and_an_agent_off_call_has_none() -> None:
    supervision, _worker, _cti = service()
    supervision.three_way("1003", "1005")
    with pytest.raises(SupervisionError) as err:
        supervision.three_way("1003", "1006")
    assert err.value.error_id == "already-supervised"
    with pytest.raises(SupervisionError) as err:
        supervision.call("1003", "1002", "monitor")
    assert err.value.error_id == "already-supervised"
    with pytest.raises(SupervisionError) as err:
        supervision.three_way("1004", "1005")
    assert err.value.error_id == "agent-not-on-call"
    with pytest.raises(SupervisionError) as err:
        supervision.switch("1003", "whisper")
    assert err.value.error_id == "not-supervised"
