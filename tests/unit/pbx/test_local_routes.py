"""Local routes: the answers Kamailio reads for calls between local phones."""

from __future__ import annotations

import json

import pytest

from appliance.pbx.deciders import (
    MEDIA,
    POLICY,
    ROUTE,
    TRUNK,
    UNSERVED,
    DecisionChain,
    DialPlanDecider,
    RecordingPolicy,
    RouteQuery,
    UnservedGsm,
)
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.local_routes import local_routes
from appliance.pbx.settings import (
    DialPlanSettings,
    Forward,
    MediaSettings,
    OutboundRoute,
    RingGroup,
    Trunk,
)
from drivers.sip.kamailio_config import LocalRoutes

EXTENSIONS = ["1001", "1002", "1003", "1004"]
SETTINGS = DialPlanSettings(
    owned_numbers=("+4930555000",),
    trunks=(Trunk(name="carrier", host="127.0.0.1", port=5090),),
    outbound=(OutboundRoute(name="out", pattern="0Z.", trunk="carrier", caller_id="+4930555000"),),
    ring_groups=(
        RingGroup(number="600", members=("1001", "1002")),
        RingGroup(number="601", members=("1003", "1004"), strategy="sequential", ring_s=9),
    ),
    forward={"1002": Forward(busy="600", no_answer="ivr:menu")},
    recording="on-demand",
    recording_by_extension={"1003": "never", "1004": "always"},
)
PLAN = DialPlan(SETTINGS, EXTENSIONS, MediaSettings(workers=1), flows=lambda: {"menu"})


def _chain(plan: DialPlan, recorded: bool = True) -> DecisionChain:
    chain = DecisionChain()
    chain.add(DialPlanDecider(lambda: plan), ROUTE)
    chain.add(UnservedGsm(), UNSERVED)
    chain.add(RecordingPolicy(lambda: plan, recorded), MEDIA)
    return chain


def _kamailio_answer(routes: LocalRoutes, caller: str, dialled: str) -> dict[str, object] | None:
    """What route[LOCAL] in kamailio.cfg.tmpl makes of the tables, or None (ask the chain)."""
    answers, callers = dict(routes.answers), dict(routes.recording)
    if dialled not in answers:
        return None
    answer: dict[str, object] = json.loads(answers[dialled])
    if caller in callers:
        answer["recording"] = callers[caller]
        answer["record"] = "yes" if callers[caller] == "always" else "no"
    return answer


@pytest.mark.parametrize("recorded", [True, False])
def test_every_local_answer_is_what_the_chain_answers_for_every_caller(recorded: bool) -> None:
    routes = local_routes(PLAN, _chain(PLAN, recorded), recorded)
    assert [number for number, _ in routes.answers] == [*EXTENSIONS, "600", "601"]
    for caller in EXTENSIONS:
        for dialled in [*EXTENSIONS, "600", "601"]:
            expected = _chain(PLAN, recorded).decide(RouteQuery(caller, dialled)).wire()
            assert _kamailio_answer(routes, caller, dialled) == expected, (caller, dialled)


def test_numbers_that_leave_the_company_or_need_a_worker_are_never_local() -> None:
    numbers = dict(local_routes(PLAN, _chain(PLAN), True).answers)
    for dialled in ("0301234567", "+4930999", "*43", "echo", "ivr-menu", "999"):
        assert dialled not in numbers


def test_answers_carry_forwards_groups_and_the_callee_policy() -> None:
    answers = {n: json.loads(a) for n, a in local_routes(PLAN, _chain(PLAN), True).answers}
    assert answers["1002"]["fwd_busy"] == "600"
    assert answers["1002"]["fwd_no_answer"] == "ivr-menu"
    assert (answers["601"]["serial"], answers["601"]["ring_ms"]) == (1, 9000)
    assert answers["600"]["members"] == "1001,1002"
    assert (answers["1003"]["recording"], answers["1004"]["record"]) == ("never", "yes")
    assert answers["1001"]["recording"] == "on-demand"


def test_without_recording_no_caller_policy_is_rendered() -> None:
    routes = local_routes(PLAN, _chain(PLAN, False), False)
    assert routes.recording == ()
    assert {json.loads(a)["recording"] for _, a in routes.answers} == {"never"}


class Takeover:
    """A decider that did not declare it keeps local calls (as a queue taking an agent's)."""

    name = "takeover"

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        return decision


def test_a_decider_without_the_declaration_leaves_every_call_to_the_chain() -> None:
    chain = _chain(PLAN)
    before = chain.keeps_local_calls
    chain.add(Takeover(), POLICY)
    assert (before, chain.keeps_local_calls) == (True, False)
    assert local_routes(PLAN, chain, True) == LocalRoutes()


def test_the_shipped_deciders_declare_they_keep_local_calls() -> None:
    from appliance.compliance.calls import ComplianceDecider
    from appliance.pbx.gsm import GsmDecider
    from appliance.pbx.intersite import PeerAdmission
    from appliance.pbx.rooms import RoomPlacement

    for decider in (ComplianceDecider, GsmDecider, PeerAdmission, RoomPlacement):
        assert decider.keeps_local_calls is True
    chain = _chain(PLAN)
    chain.add(RoomPlacement(lambda: None), TRUNK)  # type: ignore[arg-type, return-value]
    assert chain.keeps_local_calls
