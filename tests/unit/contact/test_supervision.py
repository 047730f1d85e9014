"""Supervisors: the permission checks, the settings, the conference wiring and the
service between the routing chain, the API and a fake media worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.contact.cti import CtiEvent, CtiStream
from appliance.contact.settings import ContactSettings
from appliance.contact.supervision import (
    ROUTED_S,
    Held,
    SupervisionDecider,
    SupervisionService,
)
from appliance.contact.supervisors import SupervisionError, permit
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from appliance.settings import ApplianceSettings
from drivers.media.protocol import Command
from drivers.media.supervise import links, rewire
from tests.media_wire import ev, wire

QUEUES = {"support": {"number": "700", "agents": ["1003"]},
          "sales": {"number": "701", "agents": ["1004"]}}  # fmt: skip
SETTINGS = ContactSettings.model_validate({
    "queues": QUEUES,
    "supervisors": {"1002": {"queues": ["support"]},
                    "1005": {"queues": ["sales", "support"], "beep": "none"}},
    "supervision": {"beep": "both"},
})  # fmt: skip


class FakeWorker:
    address = "127.0.0.1:5090"

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, command: Command) -> bool:
        self.sent.append(wire(command))
        return True


class RecordingCti(CtiStream):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[CtiEvent] = []

    def publish(self, event: str, **data: Any) -> CtiEvent:
        item = super().publish(event, **data)
        self.published.append(item)
        return item

    def names(self) -> list[str]:
        return [e.event for e in self.published]


class Rig:
    def __init__(self) -> None:
        self.worker = FakeWorker()
        self.calls: dict[str, Held] = {}
        self.cti = RecordingCti()
        self.fields: dict[str, dict[str, str]] = {}
        self.now = 100.0
        self.service = SupervisionService(SETTINGS, self.calls.get, self.cti, self.annotate,
                                          lambda: self.now)  # fmt: skip
        self.decider = SupervisionDecider(self.service)

    def annotate(self, call_id: str, fields: dict[str, str]) -> None:
        self.fields.setdefault(call_id, {}).update(fields)

    def on_call(self, agent: str, queue: str = "support", call_id: str = "caller-1") -> None:
        self.calls[agent] = Held(call_id, queue, self.worker)

    def dial(self, caller: str, dialled: str, call_id: str = "sup-1") -> Decision | None:
        return self.decider.decide(RouteQuery(caller, dialled, call_id=call_id), None)

    def event(self, state: str, key: str, **extra: Any) -> None:
        self.service.on_event(self.worker, ev({"ev": "supervise", "state": state, "id": key,
                                            **extra}))  # fmt: skip


def test_a_supervisor_may_join_only_calls_of_its_queues() -> None:
    supervisors = SETTINGS.supervisors
    assert permit(supervisors, "1002", "1003", "support") is supervisors["1002"]
    refusals = [("1001", "1003", "support", "not-a-supervisor"),
                ("1002", "1002", "support", "supervising-self"),
                ("1002", "1003", None, "agent-not-on-call"),
                ("1002", "1004", "sales", "queue-not-permitted")]  # fmt: skip
    for supervisor, agent, queue, error_id in refusals:
        with pytest.raises(SupervisionError) as err:
            permit(supervisors, supervisor, agent, queue)
        assert err.value.error_id == error_id


def test_feature_codes_name_a_mode_and_an_agent_and_the_beep_policy_is_per_supervisor() -> None:
    supervision = SETTINGS.supervision
    assert supervision.parse_code("*901003") == ("monitor", "1003")
    assert supervision.parse_code("*911003") == ("whisper", "1003")
    assert supervision.parse_code("*921003") == ("barge", "1003")
    assert supervision.parse_code("*91") is None
    assert supervision.parse_code("*93100") is None
    assert supervision.parse_code("1003") is None
    assert supervision.beep_for(SETTINGS.supervisors["1002"]) == "both"
    assert supervision.beep_for(SETTINGS.supervisors["1005"]) == "none"


def test_supervisor_settings_are_checked_at_load(tmp_path: Path) -> None:
    supervisors = {"1002": {"queues": ["billing"]}}
    with pytest.raises(ValidationError, match=r"contact.supervisors.1002.queues: billing not"):
        ContactSettings.model_validate({"queues": QUEUES, "supervisors": supervisors})
    with pytest.raises(ValidationError, match="codes overlap: \\*9 and \\*91"):
        ContactSettings.model_validate({"supervision": {"codes": {"monitor": "*9"}}})
    with pytest.raises(ValidationError, match="beep"):
        ContactSettings.model_validate({"supervision": {"beep": "loud"}})
    doc = {"site_id": "a", "profile": "branch", "data_dir": str(tmp_path),
           "sip": {"extensions": [{"number": "1003", "password": "secret-pw-1003"}]},
           "pbx": {"enabled": True, "media": {"workers": 1}},
           "contact": {"queues": {"support": {"number": "700", "agents": ["1003"]}},
                       "supervisors": {"1009": {"queues": ["support"]}},
                       "supervision": {"codes": {"barge": "*3"}}}}  # fmt: skip
    with pytest.raises(ValidationError) as err:
        ApplianceSettings.model_validate(doc)
    assert "contact.supervisors: 1009 are not in sip.extensions" in str(err.value)
    assert "contact.supervision.codes.barge: *3 overlaps the feature code *3" in str(err.value)


def test_each_mode_wires_who_hears_the_supervisor() -> None:
    hear_both = {("caller", "supervisor"), ("agent", "supervisor")}
    assert links("monitor") == hear_both
    assert links("whisper") == hear_both | {("supervisor", "agent")}
    assert links("barge") == hear_both | {("supervisor", "agent"), ("supervisor", "caller")}
    assert ("supervisor", "caller") not in links("whisper")
    assert links("") == set()
    with pytest.raises(ValueError, match="spy"):
        links("spy")


def test_a_mode_switch_starts_and_stops_only_the_difference() -> None:
    assert rewire("", "monitor") == (set(), {("caller", "supervisor"), ("agent", "supervisor")})
    assert rewire("whisper", "barge") == (set(), {("supervisor", "caller")})
    assert rewire("barge", "monitor") == ({("supervisor", "agent"), ("supervisor", "caller")},
                                          set())  # fmt: skip
    assert rewire("monitor", "monitor") == (set(), set())


def test_a_feature_code_lands_on_the_worker_bridging_the_agents_call() -> None:
    rig = Rig()
    rig.on_call("1003")
    decision = rig.dial("1002", "*911003")
    assert decision == Decision("media", uri="sip:supervise-1003@127.0.0.1:5090",
                                route="supervise:1003", recording="never")  # fmt: skip
    assert rig.dial("1002", "1003") is None
    assert rig.decider.decide(RouteQuery("1002", "*911003", from_trunk=True), None) is None
    rig.event("start", "sup-1", call_id="sup-1", agent="1003", supervisor="1002")
    assert rig.worker.sent[-1] == {"cmd": "supervise-join", "id": "sup-1", "mode": "whisper",
                                   "beep": "both"}  # fmt: skip
    rig.event("digit", "sup-1", digit="6")
    assert rig.worker.sent[-1] == {"cmd": "supervise-mode", "id": "sup-1", "mode": "barge"}
    rig.event("digit", "sup-1", digit="9")
    rig.event("ended", "sup-1", code=200, reason="")
    assert rig.cti.names() == ["supervisor.joined", "supervisor.mode", "supervisor.left"]
    assert rig.cti.published[-1].data["modes"] == ["whisper", "barge"]
    assert rig.fields["sup-1"] == {"supervised_agent": "1003", "supervised_queue": "support",
                                   "supervised_call": "caller-1",
                                   "supervision_modes": "whisper,barge"}  # fmt: skip
    assert rig.service.sessions == {}


def test_refused_feature_codes_get_a_sip_error_and_a_cti_event() -> None:
    rig = Rig()
    assert rig.dial("1002", "*901003") == Decision("reject", code=480, reason="agent-not-on-call")
    rig.on_call("1003")
    rig.on_call("1004", queue="sales", call_id="caller-2")
    assert rig.dial("1001", "*901003") == Decision("reject", code=403, reason="not-a-supervisor")
    assert rig.dial("1002", "*901004") == Decision("reject", code=403,
                                                   reason="queue-not-permitted")  # fmt: skip
    assert rig.dial("1002", "*901009") == Decision("reject", code=404, reason="agent-not-found")
    assert rig.dial("1002", "*901003", "sup-1") is not None
    busy = Decision("reject", code=486, reason="already-supervised")
    assert rig.dial("1005", "*921003", "sup-2") == busy
    refused = [e.data["error_id"] for e in rig.cti.published if e.event == "supervisor.refused"]
    assert refused == ["agent-not-on-call", "not-a-supervisor", "queue-not-permitted",
                       "agent-not-found", "already-supervised"]  # fmt: skip


def test_the_api_rings_the_supervisor_and_switches_mode_once_joined() -> None:
    rig = Rig()
    rig.on_call("1003")
    session = rig.service.call("1003", "1005", "monitor")
    assert rig.worker.sent[-1] == {"cmd": "supervise-call", "id": session.key, "agent": "1003",
                                   "to": "1005", "display": "monitor 1003"}  # fmt: skip
    with pytest.raises(SupervisionError, match="has not joined"):
        rig.service.switch("1003", "barge")
    rig.event("start", session.key, call_id="out-1", agent="1003", supervisor="1005")
    assert rig.worker.sent[-1]["beep"] == "none"
    assert rig.service.switch("1003", "whisper").mode == "whisper"
    assert rig.fields["out-1"]["supervision_modes"] == "monitor,whisper"
    with pytest.raises(SupervisionError) as err:
        rig.service.switch("1004", "barge")
    assert err.value.error_id == "not-supervised"


def test_an_unanswered_session_lapses_and_a_lost_worker_ends_the_joined_ones() -> None:
    rig = Rig()
    rig.on_call("1003")
    rig.dial("1002", "*901003", "sup-1")
    rig.now += ROUTED_S
    assert rig.service.snapshot() == {"sessions": []}
    assert rig.cti.published[-1].data["reason"] == "not-answered"
    rig.dial("1002", "*901003", "sup-2")
    rig.event("start", "sup-2", call_id="sup-2")
    rig.service.worker_lost(rig.worker)
    assert rig.cti.published[-1].data["reason"] == "media-worker-restart"
    assert rig.service.sessions == {}


def test_a_supervisor_leg_nobody_routed_is_hung_up() -> None:
    rig = Rig()
    rig.event("start", "stray", call_id="stray")
    assert rig.worker.sent == [{"cmd": "supervise-hangup", "id": "stray"}]
    assert rig.cti.published == []
