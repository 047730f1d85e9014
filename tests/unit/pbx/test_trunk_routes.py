"""Trunk routes: the answers Kamailio reads for break-outs and DIDs, equal to the chain's."""

from __future__ import annotations

import json
import re

import pytest

from appliance.compliance.calls import CallCompliance, ComplianceDecider
from appliance.contact.decider import QueueDecider
from appliance.contact.settings import ContactSettings
from appliance.pbx.deciders import (
    MEDIA,
    OWN_NUMBERS,
    POLICY,
    ROUTE,
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
    GsmGroup,
    GsmSettings,
    InboundRoute,
    MediaSettings,
    OutboundRoute,
    RingGroup,
    Trunk,
    TrunkAuth,
)
from appliance.settings import ExtensionBinding
from drivers.sip.kamailio_config import LocalRoutes

EXTENSIONS = ["1001", "1002", "1003", "1004", "1005"]
OWNED = ("+4930555000", "+4930555001", "+4930555002", "+4930555003")
SETTINGS = DialPlanSettings(
    owned_numbers=OWNED,
    trunks=(
        Trunk(name="carrier", host="127.0.0.1", port=5090),
        Trunk(
            name="secure",
            host="127.0.0.2",
            port=5091,
            auth=TrunkAuth(username="u", password="trunk-secret", realm="r.example"),
        ),
    ),
    outbound=(
        OutboundRoute(
            name="national",
            pattern="0Z.",
            trunk="carrier",
            strip=1,
            prepend="+49",
            caller_id=OWNED[0],
        ),
        OutboundRoute(
            name="international",
            pattern="00.",
            trunk="carrier",
            strip=2,
            prepend="+",
            caller_id=OWNED[1],
            cos="international",
            recording="never",
        ),
        OutboundRoute(
            name="secure",
            pattern="9[1-5]XX",
            trunk="secure",
            strip=1,
            caller_id=OWNED[0],
            cos="local",
        ),
        OutboundRoute(name="back", pattern="81.", trunk="carrier", strip=1, caller_id=OWNED[0]),
        OutboundRoute(name="mobile", pattern="7.", trunk="sims"),
    ),
    ring_groups=(RingGroup(number="600", members=("1001", "1002")),),
    inbound=(
        InboundRoute(did=OWNED[0], target="600"),
        InboundRoute(did=OWNED[1], target="1002", recording="always"),
        InboundRoute(did=OWNED[2], target="ivr:menu"),
        InboundRoute(did=OWNED[3], target="1004"),
    ),
    class_of_service={"1003": "internal", "1005": "international"},
    recording="on-demand",
    recording_by_extension={"1002": "never", "1004": "always"},
)
GSM = GsmSettings(groups=(GsmGroup(name="sims", channels=("c1",)),))
PLAN = DialPlan(SETTINGS, EXTENSIONS, MediaSettings(workers=1), GSM, flows=lambda: {"menu"})
DIALLED = ["0301234567", "00441234567", "9123", "9623", "81004", "81", "7123", "0800", "+4930"]
EXTRA = ("strip", "prepend", "host", "cos", "rec_fixed")


def _chain(plan: DialPlan, recorded: bool = True) -> DecisionChain:
    chain = DecisionChain()
    chain.add(DialPlanDecider(lambda: plan), ROUTE)
    chain.add(UnservedGsm(), UNSERVED)
    chain.add(RecordingPolicy(lambda: plan, recorded), MEDIA)
    return chain


def _inbound(routes: LocalRoutes, dialled: str, to: str) -> dict[str, object] | None:
    """What route[INBOUND] in kamailio.cfg.tmpl makes of the tables, or None (ask)."""
    trunk = dict(routes.trunk)
    key = f"in:{to}" if f"via:{dialled}" in trunk and to else f"in:{dialled}"
    return json.loads(trunk[key]) if key in trunk else None


def _outbound(routes: LocalRoutes, caller: str, dialled: str) -> dict[str, object] | None:
    """What route[OUTBOUND] makes of the tables, or None (ask the chain)."""
    trunk, callers, recpol = dict(routes.trunk), dict(routes.callers), dict(routes.recording)
    if caller not in callers or f"ask:{dialled}" in trunk:
        return None
    i = 0
    while f"re:{i}" not in trunk or not re.search(trunk[f"re:{i}"], dialled):
        if f"re:{i}" not in trunk:
            return None
        i += 1
    answer: dict[str, object] = json.loads(trunk[f"out:{i}"])
    if int(callers[caller]) < int(str(answer["cos"])):
        return None
    number = f"{answer['prepend']}{dialled[int(str(answer['strip'])) :]}"
    answer["uri"] = f"sip:{number}@{answer['host']}"
    if not answer["rec_fixed"]:
        answer["recording"] = recpol.get(caller) or recpol.get(number) or answer["recording"]
        answer["record"] = "yes" if answer["recording"] == "always" else "no"
    return {k: v for k, v in answer.items() if k not in EXTRA}


@pytest.mark.parametrize("recorded", [True, False])
def test_every_break_out_kamailio_answers_is_what_the_chain_answers(recorded: bool) -> None:
    routes = local_routes(PLAN, _chain(PLAN, recorded), recorded)
    answered = set()
    for caller in EXTENSIONS:
        for dialled in DIALLED:
            answer = _outbound(routes, caller, dialled)
            if answer is not None:
                expected = _chain(PLAN, recorded).decide(RouteQuery(caller, dialled)).wire()
                assert answer == expected, (caller, dialled)
                answered.add((caller, dialled))
    assert ("1001", "0301234567") in answered
    assert ("1005", "00441234567") in answered
    assert ("1004", "81004") in answered
    # Refusals (class of service), GSM groups and numbers no route matches ask the chain.
    for asked in (("1003", "0301234567"), ("1001", "00441234567"), ("1001", "7123"),
                  ("1001", "9623"), ("1001", "+4930"), ("1001", "81")):  # fmt: skip
        assert asked not in answered


@pytest.mark.parametrize("recorded", [True, False])
def test_every_did_kamailio_answers_is_what_the_chain_answers(recorded: bool) -> None:
    routes = local_routes(PLAN, _chain(PLAN, recorded), recorded)
    for dialled, to in [(did, "") for did in OWNED] + [("carrier", did) for did in OWNED]:
        expected = _chain(PLAN, recorded).decide(
            RouteQuery("+4917012345", dialled, to=to, from_trunk=True)
        )
        assert _inbound(routes, dialled, to) == expected.wire(), (dialled, to)
    assert _inbound(routes, "+4930555999", "") is None
    assert _inbound(routes, "carrier", "") is None


def test_break_outs_and_dids_carry_the_routes_fields() -> None:
    routes = local_routes(PLAN, _chain(PLAN), True)
    national = _outbound(routes, "1001", "0301234567") or {}
    assert (national["uri"], national["caller_id"], national["trunk"]) == (
        "sip:+49301234567@127.0.0.1:5090", OWNED[0], "carrier",
    )  # fmt: skip
    secure = _outbound(routes, "1001", "9123") or {}
    assert (secure["uri"], secure["trunk_auth"]) == ("sip:123@127.0.0.2:5091", 1)
    ivr = _inbound(routes, OWNED[2], "") or {}
    assert (ivr["action"], ivr["uri"], ivr["route"]) == ("media", "ivr-menu", f"inbound:{OWNED[2]}")


def _contact_and_compliance(chain: DecisionChain) -> DecisionChain:
    queues = ContactSettings.model_validate(
        {"queues": {"sales": {"number": "0800", "agents": ["1001"]}}}
    )
    chain.add(QueueDecider(queues), OWN_NUMBERS)
    bound = CallCompliance(None, {"1004": ExtensionBinding()})  # type: ignore[arg-type]
    chain.add(ComplianceDecider(bound), POLICY)
    return chain


def test_bound_callers_and_numbers_a_decider_owns_are_asked_of_the_chain() -> None:
    chain = _contact_and_compliance(_chain(PLAN))
    assert chain.keeps_trunk_calls
    routes = local_routes(PLAN, chain, True)
    assert "1004" not in dict(routes.callers)
    assert _outbound(routes, "1004", "81004") is None
    assert _outbound(routes, "1001", "0800") is None
    assert _outbound(routes, "1001", "0301234567") is not None


class Anything:
    """A decider that declares nothing (a hotel's class of service, say)."""

    name = "anything"
    keeps_local_calls = True

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        return decision


def test_a_decider_without_the_declaration_leaves_break_outs_and_dids_to_the_chain() -> None:
    chain = _chain(PLAN)
    chain.add(Anything(), POLICY)
    routes = local_routes(PLAN, chain, True)
    assert (routes.trunk, routes.callers) == ((), ())
    assert routes.answers != ()


def test_the_shipped_deciders_declare_they_keep_trunk_calls() -> None:
    from appliance.contact.feature_codes import AgentCodeDecider
    from appliance.contact.remote_agents import RemoteAgentDecider
    from appliance.contact.supervision import SupervisionDecider
    from appliance.hotel.calls import RoomCallDecider
    from appliance.hotel.codes import RoomCodeDecider
    from appliance.pbx.gsm import GsmDecider
    from appliance.pbx.intersite import PeerAdmission
    from appliance.pbx.rooms import RoomPlacement

    for decider in (ComplianceDecider, GsmDecider, PeerAdmission, RoomPlacement, QueueDecider,
                    AgentCodeDecider, SupervisionDecider, RemoteAgentDecider):  # fmt: skip
        assert decider.keeps_trunk_calls is True
    for hotel in (RoomCallDecider, RoomCodeDecider):
        assert getattr(hotel, "keeps_trunk_calls", False) is False
