"""A remote agent's feature codes: its own site forwards them, signed, to the queue's
site, which runs them (LMDB and the CTI stream real, the clock fake)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.contact.agent_codes import AgentCodes, AgentRequest
from appliance.contact.feature_codes import AgentCodeDecider
from appliance.contact.remote_codes import (
    ForwardedAgentCodes,
    RemoteAgentCodes,
    forwarded,
    unforwarded,
)
from appliance.contact.service import ContactService
from appliance.contact.settings import ContactSettings
from appliance.pbx.deciders import RouteQuery
from appliance.pbx.dialplan import Decision
from appliance.store import Store
from tests.unit.routing.test_intersite import as_query, intersite, plan

QUEUES = {"support": {"number": "700", "agents": ["1003", {"extension": "2001", "remote": True}]}}
AT_B = AgentCodes.model_validate({"queue_site": "a", "reasons": {"1": "lunch", "2": "training"}})
AT_A = AgentCodes.model_validate({"prompt": "done"})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ContactService]:
    store = Store.open(tmp_path / "store", 16)
    loop = asyncio.new_event_loop()
    contact = ContactService(ContactSettings.model_validate({"queues": QUEUES}), {},
                             lambda _c, _f: None, clock=lambda: 1000.0)  # fmt: skip
    loop.run_until_complete(contact.start(store))
    yield contact
    loop.run_until_complete(contact.stop())
    loop.close()
    store.close()


def at_b(
    dialled: str, caller: str = "2001", *, from_trunk: bool = False, from_peer: bool = False
) -> Decision | None:
    router = intersite("b")
    decider = ForwardedAgentCodes(AT_B, router, lambda: plan("b", router), lambda n: n == "2009")
    query = RouteQuery(caller, dialled, "call-1", from_trunk=from_trunk, from_peer=from_peer)
    return decider.decide(query, None)


def at_a(service: ContactService, forwarded_call: Decision, members: set[str]) -> Decision | None:
    router = intersite("a")
    decider = RemoteAgentCodes(AgentCodeDecider(AT_A, service), lambda: members, router)
    raw = as_query(forwarded_call, 0, "10.0.0.2:5070")
    return decider.decide(RouteQuery(raw["caller"], raw["dialled"], "call-1", from_peer=True,
                                     raw=raw), None)  # fmt: skip


@pytest.mark.parametrize(
    "request_",
    [AgentRequest("login"), AgentRequest("logout"), AgentRequest("resume"),
     AgentRequest("pause", "lunch")],
)  # fmt: skip
def test_a_request_travels_in_a_form_neither_sites_codes_shape(request_: AgentRequest) -> None:
    assert unforwarded(forwarded(request_)) == request_


@pytest.mark.parametrize("dialled", ["agent-pause-", "agent-pause-Lunch", "agent-dance", "*71"])
def test_other_numbers_carry_no_request(dialled: str) -> None:
    assert unforwarded(dialled) is None


def test_the_agents_site_sends_its_code_signed_to_the_queues_site() -> None:
    decision = at_b("*732")
    assert decision is not None
    (hop,) = decision.hops
    assert (decision.action, decision.peer_site, hop.uri) == (
        "route", "a", "sip:agent-pause-training@10.0.0.1:5060")  # fmt: skip
    assert "X-Callmesh-Caller: 2001\r\n" in hop.headers


def test_codes_of_agents_here_trunks_peers_and_strangers_are_left_alone() -> None:
    assert at_b("*71", caller="2009") is None  # an agent of this site's own queues
    assert at_b("*71", from_trunk=True) is None
    assert at_b("*71", from_peer=True) is None
    assert at_b("*71", caller="2005") is None  # no extension here
    assert at_b("2001") is None
    unknown = at_b("*739")
    assert unknown is not None
    assert (unknown.code, unknown.reason) == (404, "pause-reason-unknown")


def test_the_queues_site_runs_the_code_of_its_remote_agent(service: ContactService) -> None:
    login = at_b("*71")
    assert login is not None
    answer = at_a(service, login, {"2001"})
    assert answer is not None
    assert (answer.action, answer.uri, answer.peer_site, answer.caller_ext) == (
        "media", "announce-done", "b", "2001")  # fmt: skip
    assert service.acd.agents["2001"].state == "available"
    pause = at_b("*731")
    assert pause is not None
    at_a(service, pause, {"2001"})
    agent = service.acd.agents["2001"]
    assert (agent.state, agent.reason) == ("paused", "lunch")
    resume = at_b("*74")
    assert resume is not None
    not_paused = at_a(service, resume, {"2001"})
    assert not_paused is not None
    assert (not_paused.action, not_paused.uri) == ("media", "announce-done")
    again = at_a(service, resume, {"2001"})
    assert again is not None
    assert (again.code, again.reason) == (409, "agent-not-paused")


def test_an_extension_that_is_no_remote_agent_here_is_refused(service: ContactService) -> None:
    login = at_b("*71")
    assert login is not None
    answer = at_a(service, login, {"2003"})
    assert answer is not None
    assert (answer.action, answer.code, answer.reason) == ("reject", 404, "agent-not-found")
    assert service.acd.agents["2001"].state == "logged-out"


def test_a_forged_or_local_forwarded_code_is_left_to_the_admission(
    service: ContactService,
) -> None:
    login = at_b("*71")
    assert login is not None
    router = intersite("a")
    decider = RemoteAgentCodes(AgentCodeDecider(AT_A, service), lambda: {"2001"}, router)
    raw = as_query(login, 0, "10.0.0.2:5070", peer_caller="2002")
    forged = RouteQuery("2002", raw["dialled"], "call-1", from_peer=True, raw=raw)
    assert decider.decide(forged, None) is None
    local = RouteQuery("1003", "agent-login", "call-2")
    assert decider.decide(local, None) is None
    assert service.acd.agents["2001"].state == "logged-out"
