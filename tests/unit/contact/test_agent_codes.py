"""Agents' feature codes: the settings checks, the parser and the decider running the
service's actions (LMDB and the CTI stream real, the clock fake)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.contact.agent_codes import AgentCodes, AgentRequest, parse
from appliance.contact.cti import CtiEvent, CtiStream
from appliance.contact.feature_codes import AgentCodeDecider
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from appliance.settings import ApplianceSettings
from appliance.store import Store

QUEUES = {"support": {"number": "700", "agents": ["1003"]}}
CODES = AgentCodes.model_validate({"prompt": "done", "reasons": {"1": "lunch", "2": "training"}})


class RecordingCti(CtiStream):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[CtiEvent] = []

    def publish(self, event: str, **data: Any) -> CtiEvent:
        item = super().publish(event, **data)
        self.published.append(item)
        return item


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ContactService]:
    store = Store.open(tmp_path / "store", 16)
    loop = asyncio.new_event_loop()
    contact = ContactService(ContactSettings.model_validate({"queues": QUEUES}), {},
                             lambda _c, _f: None, clock=lambda: 1000.0)  # fmt: skip
    contact.cti = RecordingCti()
    loop.run_until_complete(contact.start(store))
    yield contact
    loop.run_until_complete(contact.stop())
    loop.close()
    store.close()


def dial(decider: AgentCodeDecider, caller: str, dialled: str, *, from_trunk: bool = False,
         from_peer: bool = False) -> Decision | None:  # fmt: skip
    query = RouteQuery(caller, dialled, "c1", from_trunk=from_trunk, from_peer=from_peer)
    return decider.decide(query, None)


def test_codes_parse_to_actions_with_the_reason_of_the_digit() -> None:
    assert parse(CODES, "*71") == AgentRequest("login")
    assert parse(CODES, "*72") == AgentRequest("logout")
    assert parse(CODES, "*731") == AgentRequest("pause", "lunch")
    assert parse(CODES, "*739") == AgentRequest("pause", None)
    assert parse(CODES, "*74") == AgentRequest("resume")
    for other in ("*73", "*7312", "*711", "700", "*43", ""):
        assert parse(CODES, other) is None, other


def test_the_agents_phone_logs_in_pauses_resumes_and_logs_out(service: ContactService) -> None:
    decider = AgentCodeDecider(CODES, service)
    answer = dial(decider, "1003", "*71")
    assert answer == Decision("media", uri="announce-done", route="agent:login",
                              recording="never")  # fmt: skip
    assert service.acd.agents["1003"].state == "available"
    assert dial(decider, "1003", "*731") is not None
    agent = service.acd.agents["1003"]
    assert (agent.state, agent.reason) == ("paused", "lunch")
    assert dial(decider, "1003", "*74") is not None
    assert service.acd.agents["1003"].state == "available"
    assert dial(decider, "1003", "*72") is not None
    assert service.acd.agents["1003"].state == "logged-out"
    assert isinstance(service.cti, RecordingCti)
    states = [(e.data["state"], e.data["reason"]) for e in service.cti.published
              if e.event == "agent.state"]  # fmt: skip
    assert states == [("available", None), ("paused", "lunch"), ("available", None),
                      ("logged-out", None)]  # fmt: skip


def test_refusals_are_sip_errors_named_by_the_error_id(service: ContactService) -> None:
    decider = AgentCodeDecider(CODES, service)
    assert dial(decider, "1001", "*71") == Decision("reject", code=404, reason="agent-not-found")
    assert dial(decider, "1003", "*74") == Decision("reject", code=409, reason="agent-not-paused")
    assert dial(decider, "1003", "*739") == Decision("reject", code=404,
                                                     reason="pause-reason-unknown")  # fmt: skip
    assert service.acd.agents["1003"].state == "logged-out"


def test_other_calls_and_calls_from_outside_pass_unchanged(service: ContactService) -> None:
    decider = AgentCodeDecider(CODES, service)
    assert dial(decider, "1003", "700") is None
    assert dial(decider, "1003", "*71", from_trunk=True) is None
    assert dial(decider, "1003", "*71", from_peer=True) is None
    earlier = Decision("extension", uri="sip:1003@x")
    query = RouteQuery(caller="1003", dialled="*71")
    assert decider.decide(query, earlier) is earlier
    assert service.acd.agents["1003"].state == "logged-out"


def test_without_a_prompt_a_done_action_is_answered_603(service: ContactService) -> None:
    decider = AgentCodeDecider(AgentCodes(), service)
    assert dial(decider, "1003", "*71") == Decision("reject", code=603, reason="agent-login")
    assert service.acd.agents["1003"].state == "available"


def test_agent_codes_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"agent_codes overlap: \*71 and \*7, \*72 and \*7"):
        AgentCodes.model_validate({"pause": "*7"})
    with pytest.raises(ValidationError, match="reasons map one digit"):
        AgentCodes.model_validate({"reasons": {"12": "lunch"}})
    with pytest.raises(ValidationError, match=r"overlap supervision codes: \*90 and \*90"):
        ContactSettings.model_validate({"agent_codes": {"login": "*90"}})
    doc = {"site_id": "a", "profile": "branch", "data_dir": str(tmp_path),
           "sip": {"extensions": [{"number": "1003", "password": "secret-pw-1003"}]},
           "pbx": {"enabled": True, "media": {"workers": 1},
                   "dialplan": {"feature_codes": {"echo": "*74"}}},
           "contact": {"queues": QUEUES, "agent_codes": {"prompt": "nowhere"}}}  # fmt: skip
    with pytest.raises(ValidationError) as err:
        ApplianceSettings.model_validate(doc)
    assert "overlap other feature codes: *74 and *74" in str(err.value)
    assert "contact.agent_codes.prompt: 'nowhere' is not in pbx.media.prompts" in str(err.value)
