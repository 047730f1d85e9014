"""Agents' direct calls anchored on a media worker for supervision and three-way: which
open calls qualify, the Replaces values, the anchor's life, and the sessions that wait
for it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from appliance.contact.anchoring import Anchors, direct_call
from appliance.contact.settings import AgentSettings
from appliance.contact.supervision import Held, SupervisionService
from appliance.contact.supervisors import SupervisionError
from appliance.pbx.calls import CallService
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.media import MediaPool
from drivers.media.protocol import AnchorEvent, SuperviseEvent
from tests.unit.contact.test_supervision import SETTINGS, FakeWorker, RecordingCti

CALL = {
    "call_id": "c-1", "caller_tag": "ft", "to_tag": "tt", "answer": 1.0, "media_peer": None,
    "conversation_id": "conv-1",
    "caller": {"number": "1003", "extension": "1003"},
    "callee": {"number": "1001", "extension": "1001"},
}  # fmt: skip


def test_a_direct_call_names_each_ends_dialog_as_that_end_sees_it() -> None:
    as_caller = direct_call(CALL, "1003")
    assert as_caller is not None
    assert (as_caller.other, as_caller.conversation_id) == ("1001", "conv-1")
    assert as_caller.agent_replaces == "c-1;to-tag=ft;from-tag=tt"
    assert as_caller.other_replaces == "c-1;to-tag=tt;from-tag=ft"
    as_callee = direct_call(CALL, "1001")
    assert as_callee is not None
    assert (as_callee.other, as_callee.agent_replaces) == ("1003", "c-1;to-tag=tt;from-tag=ft")


@pytest.mark.parametrize(
    "change",
    [{"answer": None}, {"to_tag": None}, {"media_peer": "127.0.0.1:5090"}],
    ids=["ringing", "no-to-tag", "worker-held"],
)
def test_only_an_answered_call_between_phones_can_be_anchored(change: dict[str, Any]) -> None:
    assert direct_call({**CALL, **change}, "1003") is None
    assert direct_call(CALL, "1002") is None


class FakeDirect:
    """Anchors as supervision sees them: the agent 1003 talks directly."""

    def __init__(self, worker: FakeWorker) -> None:
        self.worker = worker
        self.anchored: list[str] = []

    def find(self, agent: str) -> object | None:
        return CALL if agent == "1003" else None

    def anchor(self, agent: str) -> Held | None:
        self.anchored.append(agent)
        return Held("an-1", "", self.worker, ready=False)


def supervision() -> tuple[SupervisionService, FakeDirect, FakeWorker, RecordingCti]:
    worker, cti = FakeWorker(), RecordingCti()
    direct = FakeDirect(worker)
    service = SupervisionService(SETTINGS, lambda _a: None, cti, lambda *_: None, direct=direct)
    return service, direct, worker, cti


def test_a_monitor_on_a_direct_call_rings_the_supervisor_once_the_call_is_anchored() -> None:
    service, direct, worker, _cti = supervision()
    session = service.call("1003", "1002", "monitor")
    assert (session.state, session.held.queue, direct.anchored) == (
        "anchoring",
        "support",
        ["1003"],
    )
    assert worker.sent == []
    service.anchored("an-1")
    assert session.state == "calling"
    assert worker.sent == [{"cmd": "supervise-call", "id": session.key, "agent": "1003",
                            "to": "1002", "display": "monitor 1003"}]  # fmt: skip


def test_rights_are_checked_before_a_direct_call_moves() -> None:
    service, direct, _worker, _cti = supervision()
    with pytest.raises(SupervisionError) as err:
        service.call("1004", "1002", "monitor")
    assert err.value.error_id == "agent-not-on-call"
    with pytest.raises(SupervisionError) as err:
        service.call("1003", "1099", "monitor")
    assert err.value.error_id == "not-a-supervisor"
    assert direct.anchored == []


def test_a_dynamic_members_direct_call_is_supervised_as_its_dynamic_queue() -> None:
    sales_only = SETTINGS.supervisors["1002"].model_copy(update={"queues": ["sales"]})
    settings = SETTINGS.model_copy(update={"supervisors": {"1006": sales_only}})
    live = dict(settings.queues)
    worker, cti = FakeWorker(), RecordingCti()
    direct = FakeDirect(worker)
    service = SupervisionService(settings, lambda _a: None, cti, lambda *_: None,
                                 direct=direct, queues=lambda: live)  # fmt: skip
    with pytest.raises(SupervisionError) as err:
        service.call("1003", "1006", "monitor")
    assert err.value.error_id == "queue-not-permitted"
    sales = live["sales"]
    live["sales"] = sales.model_copy(
        update={"agents": (*sales.agents, AgentSettings(extension="1003"))}
    )
    session = service.call("1003", "1006", "monitor")
    assert (session.state, session.held.queue, direct.anchored) == ("anchoring", "sales", ["1003"])


def test_a_feature_code_waits_on_the_worker_for_the_anchor() -> None:
    service, direct, worker, _cti = supervision()
    decision = service.route(RouteQuery("1002", "*911003", call_id="sup-1"))
    assert decision is not None
    assert decision.uri == f"sip:supervise-1003@{worker.address};anchor=an-1"
    assert direct.anchored == ["1003"]
    service.anchored("an-1")
    assert worker.sent == [], "the worker starts the waiting supervisor itself"
    service.on_event(worker, SuperviseEvent("sup-1", "start", call_id="sup-1"))
    assert worker.sent == [{"cmd": "supervise-join", "id": "sup-1", "mode": "whisper",
                            "beep": "both"}]  # fmt: skip


def test_a_failed_anchor_ends_the_waiting_sessions() -> None:
    service, _direct, worker, cti = supervision()
    service.route(RouteQuery("1002", "*901003", call_id="sup-1"))
    service.anchor_ended("an-1", "worker-full")
    assert worker.sent == [{"cmd": "supervise-hangup", "id": "sup-1"}]
    session = service.three_way("1003", "1002")
    assert session.state == "anchoring"
    service.anchor_ended("an-1", "worker-full")
    assert service.snapshot() == {"sessions": []}
    assert cti.published[-1].data["reason"] == "anchor-worker-full"


class FakeCalls:
    def __init__(self) -> None:
        self.expected: list[str] = []

    def live_calls(self) -> list[dict[str, Any]]:
        return [CALL]

    def expect_conversation(self, conversation: str) -> None:
        self.expected.append(conversation)


class FakePool:
    def __init__(self, worker: FakeWorker) -> None:
        self.worker = worker

    def pick(self, slots: int = 1) -> FakeWorker:
        assert slots == 3
        return self.worker


def test_an_anchor_marks_the_takeover_then_has_the_worker_dial_both_ends() -> None:
    worker = FakeWorker()
    worker.reserved = 0  # type: ignore[attr-defined]
    calls, marked, events = FakeCalls(), [], []

    async def takeover(call_id: str) -> None:
        marked.append(call_id)

    async def run() -> None:
        anchors = Anchors(lambda: cast(CallService, calls), cast(MediaPool, FakePool(worker)),
                          takeover)  # fmt: skip
        anchors.on_bridged = lambda key: events.append(("bridged", key))
        anchors.on_ended = lambda key, why: events.append((why, key))
        held = anchors.anchor("1003")
        assert held is not None
        assert not held.ready
        assert anchors.anchor("1003") == held, "one anchor per agent"
        await asyncio.sleep(0)
        (sent,) = worker.sent
        assert (sent["cmd"], sent["other"]) == ("anchor", "1001")
        assert sent["headers"] == {"X-Callmesh-Conversation": "conv-1"}
        anchors.on_event(worker, AnchorEvent(held.call_id, "bridged"))
        assert anchors.held("1003") == Held(held.call_id, "", worker, ready=True)
        anchors.worker_lost(worker)
        assert anchors.held("1003") is None
        assert events == [("bridged", held.call_id), ("media-worker-restart", held.call_id)]

    asyncio.run(run())
    assert (marked, calls.expected) == (["c-1"], ["conv-1"])
