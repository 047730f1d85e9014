"""The routing decision as a chain of deciders, and compliance as one link of it."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from appliance.compliance.calls import CallCompliance, ComplianceDecider
from appliance.compliance.service import ComplianceService
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
    outside_number,
)
from appliance.pbx.dialplan import Decision, DialPlan, Hop
from appliance.pbx.settings import DialPlanSettings, GsmGroup, GsmSettings, OutboundRoute
from appliance.settings import ComplianceSettings, ExtensionBinding
from appliance.store import Outbox, Store

DNC = "+4930999"
MOBILE = OutboundRoute(name="mobile", pattern="0Z.", trunk="mobile", strip=1, prepend="+49")
PLAN = DialPlan(
    DialPlanSettings(outbound=(MOBILE,), recording="always"),
    ["1001", "1002"],
    gsm=GsmSettings(groups=(GsmGroup(name="mobile", channels=("gsm-0",)),)),
)


class Seen:
    """A decider that records what it was given and passes it on."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self._log = name, log

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        self._log.append(self.name)
        return decision


class Channel:
    """Stands in for the GSM link: counts the channels it would seize."""

    name = "gsm"

    def __init__(self) -> None:
        self.seized = 0

    def decide(self, query: RouteQuery, decision: Decision | None) -> Decision | None:
        if decision is not None and decision.action == "gsm":
            self.seized += 1
            uri = f"sip:{decision.uri}@127.0.0.1:5080;gsm=gsm-0"
            return Decision("gsm", uri=uri, trunk="gsm-0", route=decision.route)
        return decision


def query(caller: str, dialled: str, call_id: str = "c1") -> RouteQuery:
    return RouteQuery.parse({"caller": caller, "dialled": dialled, "call_id": call_id})


@pytest.fixture
async def compliance(tmp_path: Path) -> AsyncIterator[ComplianceService]:
    store = Store.open(tmp_path / "s", map_size_mb=16)
    settings = ComplianceSettings(dnc=(DNC,), max_attempts_per_day=2)
    service = ComplianceService(settings, "UTC", lambda: store)
    await service.start()
    yield service
    store.close()


def chain_with(compliance: ComplianceService) -> tuple[DecisionChain, Channel, CallCompliance]:
    calls = CallCompliance(compliance, {"1001": ExtensionBinding()})
    channel = Channel()
    chain = DecisionChain()
    chain.add(RecordingPolicy(lambda: PLAN, True), MEDIA)
    chain.add(channel, TRUNK)
    chain.add(DialPlanDecider(lambda: PLAN), ROUTE)
    chain.add(ComplianceDecider(calls), POLICY)
    chain.add(UnservedGsm(), UNSERVED)
    return chain, channel, calls


def test_deciders_run_in_stage_order_then_in_the_order_they_joined() -> None:
    ran: list[str] = []
    chain = DecisionChain()
    for name, stage in (("late", MEDIA), ("first", ROUTE), ("trunk", TRUNK), ("second", ROUTE)):
        chain.add(Seen(name, ran), stage)
    assert chain.names == ["first", "second", "trunk", "late"]
    assert chain.decide(query("1001", "1002")).reason == "no-route"
    assert ran == ["first", "second", "trunk", "late"]


def test_the_dial_plan_chain_answers_as_the_dial_plan_did() -> None:
    chain = DecisionChain()
    chain.add(DialPlanDecider(lambda: PLAN), ROUTE)
    chain.add(UnservedGsm(), UNSERVED)
    chain.add(RecordingPolicy(lambda: PLAN, True), MEDIA)
    local = chain.decide(query("1001", "1002"))
    assert (local.action, local.targets, local.recording) == ("extension", ("1002",), "always")
    unserved = chain.decide(query("1001", "0301234"))
    assert (unserved.code, unserved.reason) == (503, "no-gsm-trunk")
    unknown = chain.decide(query("1001", "1009"))
    assert (unknown.code, unknown.reason, unknown.recording) == (404, "unknown-extension", None)


def test_recording_off_answers_never_for_every_call() -> None:
    chain = DecisionChain()
    chain.add(DialPlanDecider(lambda: PLAN), ROUTE)
    chain.add(RecordingPolicy(lambda: PLAN, False), MEDIA)
    assert chain.decide(query("1001", "1002")).wire()["recording"] == "never"


def test_outside_numbers_are_those_of_trunks_gsm_and_routed_trunks() -> None:
    assert outside_number(Decision("gsm", uri="+49301"), "0301") == "+49301"
    assert outside_number(Decision("trunk", uri="sip:0301@10.0.0.1:5060"), "0301") == "0301"
    hop = Hop("site", "sip:+49301@10.0.0.2:5060", "1001", "site:gw via mobile")
    assert outside_number(Decision("route", trunk="mobile", hops=(hop,)), "0301") == "+49301"
    assert outside_number(Decision("route", peer_site="b"), "2001") is None
    assert outside_number(Decision("extension", ("1002",)), "1002") is None


def test_a_bound_extension_breaking_out_to_a_dnc_number_is_refused_before_a_channel(
    compliance: ComplianceService,
) -> None:
    chain, channel, _ = chain_with(compliance)
    refused = chain.decide(query("1001", "030999"))
    assert (refused.action, refused.code, refused.reason) == ("reject", 403, "dnc-site")
    assert refused.wire()["refusal"] == "+4930999 is on this site's do-not-call list"
    assert channel.seized == 0
    outbox = Outbox(compliance._store(), "compliance")
    [(_, raw)] = outbox.read_batch()
    record = msgpack.unpackb(raw)
    assert (record["source"], record["caller"], record["call_id"]) == ("break-out", "1001", "c1")


def test_an_unbound_extension_and_internal_calls_are_not_checked(
    compliance: ComplianceService,
) -> None:
    chain, channel, _ = chain_with(compliance)
    assert chain.decide(query("1002", "030999")).action == "gsm"
    assert chain.decide(query("1001", "1002")).action == "extension"
    assert channel.seized == 1


def test_a_call_asked_about_again_counts_one_attempt(compliance: ComplianceService) -> None:
    chain, channel, _ = chain_with(compliance)
    for _ in range(3):
        assert chain.decide(query("1001", "030555", "same-call")).action == "gsm"
    assert chain.decide(query("1001", "030555", "second-call")).action == "gsm"
    third = chain.decide(query("1001", "030555", "third-call"))
    assert (third.code, third.reason) == (403, "attempt-limit")
    assert channel.seized == 4


def test_the_leg_of_a_checked_origination_passes_without_counting_again(
    compliance: ComplianceService,
) -> None:
    chain, _, calls = chain_with(compliance)
    assert calls.originate("1001", "+4930555", "click-to-dial") is None
    assert chain.decide(query("1001", "030555", "phone-leg")).action == "gsm"
    assert chain.decide(query("1001", "030555", "next")).action == "gsm"
    refused = calls.originate("1001", "+4930555", "click-to-dial")
    assert refused is not None
    assert refused[0] == "attempt-limit"
    assert calls.originate("1002", DNC, "conference") == (
        "dnc-site",
        "+4930999 is on this site's do-not-call list",
    )


def test_every_decider_that_keeps_local_calls_says_whether_it_keeps_trunk_calls() -> None:
    """A decider that declares ``keeps_local_calls`` but forgets ``keeps_trunk_calls`` turns
    Kamailio's trunk tables off for the whole site; saying False on purpose is fine."""
    undecided = []
    for path in sorted((Path(__file__).resolve().parents[3] / "appliance").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            names = {target.id for stmt in node.body if isinstance(stmt, ast.Assign)
                     for target in stmt.targets if isinstance(target, ast.Name)}  # fmt: skip
            if "keeps_local_calls" in names and "keeps_trunk_calls" not in names:
                undecided.append(f"{path}: {node.name}")
    assert undecided == []
