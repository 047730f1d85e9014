"""Inter-site calls: hops from the routing table, signed peer headers, admission, peer health."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.directory.compile import compile_tables
from aggregator.directory.model import Directory
from appliance.pbx.cdr import CdrBuilder
from appliance.pbx.dialplan import Decision, DialPlan
from appliance.pbx.intersite import InterSite
from appliance.pbx.settings import DialPlanSettings, GsmSettings, PeeringSettings
from appliance.routing import peering
from appliance.routing.peers import PeerMonitor
from appliance.routing.table import RoutingTable
from drivers.sip.events import Invite

SECRET = "0123456789abcdef-company"
NOW = 1_790_000_000.0
NAMES = {"1001": "Alice", "1002": "Dave"}


def company() -> dict[str, Any]:
    return {
        "plan": {"flat": True},
        "sites": [
            {"id": "a", "name": "Branch A", "sip_address": "10.0.0.1",
             "ranges": [{"first": "1001", "last": "1009"}]},
            {"id": "b", "name": "Branch B", "sip_address": "10.0.0.2:5070",
             "ranges": [{"first": "2001", "last": "2009"}]},
            {"id": "gw", "sip_address": "10.0.0.3"},
        ],
        "trunks": [
            {"id": "a-sip", "site": "a", "numbers": ["+4930111000"]},
            {"id": "gw-sip", "site": "gw", "numbers": ["+4930777000", "+4930777001"]},
        ],
        "rules": [{"id": "national", "prefix": "0", "targets": [
            {"trunk": "gw-sip", "cost": 1, "strip": 1, "prepend": "+49",
             "caller_id": "+4930777001"},
            {"trunk": "a-sip", "cost": 5, "strip": 1, "prepend": "+49"},
        ]}],
    }  # fmt: skip


def tables() -> dict[str, RoutingTable]:
    compiled = compile_tables(Directory.model_validate(company()))
    return {site: RoutingTable(3, data) for site, data in compiled.items()}


def plan(site: str, router: InterSite | None, **dialplan: Any) -> DialPlan:
    trunks = {"a": [{"name": "a-sip", "host": "10.0.0.1", "port": 5080}],
              "gw": [{"name": "gw-sip", "host": "10.0.0.3", "port": 5080}]}  # fmt: skip
    settings = DialPlanSettings.model_validate({"trunks": trunks.get(site, []), **dialplan})
    extensions = {"a": NAMES, "b": {"2001": "Bob"}, "gw": {}}[site]
    return DialPlan(settings, extensions, router=router)


def intersite(site: str, peers: PeerMonitor | None = None, **peering_: Any) -> InterSite:
    table = tables()[site]
    settings = PeeringSettings.model_validate({"secret": SECRET, **peering_})
    names = {"a": NAMES, "b": {"2001": "Bob"}, "gw": {}}[site]
    return InterSite(site, settings, lambda: table, names, peers, clock=lambda: NOW)


def outbound(dialled: str, caller: str = "1001", **kw: Any) -> Decision:
    router = intersite("a", **kw)
    return plan("a", router).decide(caller, dialled, call_id="call-1")


def as_query(decision: Decision, index: int, source: str, **extra: str) -> dict[str, str]:
    """What Kamailio at the far site puts in the route request for hop ``index``."""
    hop = decision.hops[index]
    headers = dict(line.split(": ", 1) for line in hop.headers.strip().split("\r\n"))
    number = hop.uri.split(":")[1].split("@")[0]
    query = {"peer": "1", "source": source, "call_id": "call-1", "dialled": number,
             "caller": hop.from_user, "auth": headers["X-Callmesh-Auth"],
             "peer_caller": headers["X-Callmesh-Caller"],
             "conversation": headers["X-Callmesh-Conversation"],
             "via": headers.get("X-Callmesh-Via", ""),
             "peer_caller_id": headers.get("X-Callmesh-Caller-Id", "")}  # fmt: skip
    return {**query, **extra}


def test_local_numbers_stay_with_the_local_dial_plan() -> None:
    decision = outbound("1002")
    assert (decision.action, decision.targets) == ("extension", ("1002",))


def test_another_sites_extension_is_one_signed_hop_presenting_name_and_site() -> None:
    decision = outbound("2001")
    assert (decision.action, decision.route, decision.peer_site) == ("route", "site:b", "b")
    (hop,) = decision.hops
    assert hop.uri == "sip:2001@10.0.0.2:5070"
    assert (hop.from_user, hop.display, hop.timer_ms) == ("1001", '"Alice (Branch A)"', 1000)
    assert "X-Callmesh-Caller: 1001\r\n" in hop.headers
    assert f"X-Callmesh-Conversation: {decision.conversation}\r\n" in hop.headers
    wire = decision.wire()
    assert (wire["hops"], wire["hop_label"]) == (1, "site:b")


def test_rule_targets_become_ordered_hops_via_another_site_then_local_trunk() -> None:
    decision = outbound("0301234567")
    assert (decision.route, decision.trunk, decision.peer_site) == ("national", "gw-sip", "gw")
    via, local = decision.hops
    assert via.uri == "sip:+49301234567@10.0.0.3:5060"
    assert "X-Callmesh-Via: gw-sip\r\n" in via.headers
    assert "X-Callmesh-Caller-Id: +4930777001\r\n" in via.headers
    assert (local.kind, local.uri, local.from_user) == (
        "trunk", "sip:+49301234567@10.0.0.1:5080", "+4930111000",
    )  # fmt: skip
    assert decision.wire()["hop_label"] == "site:gw via gw-sip|trunk:a-sip"


def test_a_peer_known_down_is_skipped_up_front_and_counted() -> None:
    peers = PeerMonitor(lambda: tables()["a"], _never)
    peers._record("gw", "10.0.0.3", False, 0)
    peers._record("gw", "10.0.0.3", False, 0)
    decision = outbound("0301234567", peers=peers)
    assert [h.label for h in decision.hops] == ["trunk:a-sip"]
    assert (decision.trunk, decision.peer_site) == ("a-sip", "")
    assert peers.failovers[("national", "site:gw via gw-sip", "peer-down")] == 1
    assert peers.report()["failovers"] == {"national": 1}


def test_class_of_service_is_checked_before_any_hop() -> None:
    router = intersite("a")
    decision = plan("a", router, class_of_service={"1002": "internal"}).decide("1002", "030123")
    assert (decision.action, decision.code, decision.reason) == ("reject", 403, "class-of-service")


def test_without_a_peering_secret_no_site_hop_is_made() -> None:
    decision = outbound("2001", secret="")
    assert (decision.action, decision.code, decision.reason) == ("reject", 503, "all-routes-down")


def test_unknown_numbers_are_still_404() -> None:
    decision = outbound("7777")
    assert (decision.action, decision.code, decision.reason) == ("reject", 404, "unknown-extension")


def test_the_far_site_admits_a_signed_call_and_rings_the_extension() -> None:
    decision = outbound("2001")
    query = as_query(decision, 0, "10.0.0.1:5060")
    admitted = intersite("b").admit(plan("b", None), query)
    assert (admitted.action, admitted.targets, admitted.route) == ("extension", ("2001",), "site:a")
    assert (admitted.peer_site, admitted.caller_ext) == ("a", "1001")
    assert admitted.conversation == decision.conversation


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"source": "10.0.0.9:5060"}, 403, "untrusted-peer-source"),
        ({"source": "10.0.0.1:5099"}, 403, "untrusted-peer-source"),
        ({"dialled": "2002"}, 403, "peer-auth-failed"),
        ({"peer_caller": "1002"}, 403, "peer-auth-failed"),
        ({"call_id": "call-2"}, 403, "peer-auth-failed"),
        ({"auth": "v1;site=a;ts=1;sig=abc"}, 400, "malformed-peer-header"),
        ({"auth": "v2;site=a"}, 400, "malformed-peer-header"),
        ({"auth": ""}, 400, "malformed-peer-header"),
        ({"peer_caller": "1001<script>"}, 400, "malformed-peer-header"),
        ({"conversation": "not-a-uuid"}, 400, "malformed-peer-header"),
        ({"source": "nonsense"}, 400, "malformed-peer-header"),
    ],
)
def test_forged_or_malformed_peer_calls_are_refused(
    change: dict[str, str], code: int, reason: str
) -> None:
    query = {**as_query(outbound("2001"), 0, "10.0.0.1:5060"), **change}
    refused = intersite("b").admit(plan("b", None), query)
    assert (refused.action, refused.code, refused.reason) == ("reject", code, reason)


def test_unknown_sites_wrong_secrets_and_stale_tokens_are_refused() -> None:
    query = as_query(outbound("2001"), 0, "10.0.0.1:5060")
    forged = query["auth"].replace("site=a", "site=zz")
    b = intersite("b")
    assert b.admit(plan("b", None), {**query, "auth": forged}).reason == "unknown-peer-site"
    other = intersite("b", secret="another-secret-16chars")
    assert other.admit(plan("b", None), query).reason == "peer-auth-failed"
    later = InterSite("b", b.settings, lambda: tables()["b"], {}, clock=lambda: NOW + 120)
    assert later.admit(plan("b", None), query).reason == "peer-token-stale"
    per_pair = intersite("b", secret="", secrets={"a": SECRET})
    assert per_pair.admit(plan("b", None), query).action == "extension"


def test_break_out_via_presents_only_numbers_the_trunk_owns() -> None:
    query = as_query(outbound("0301234567"), 0, "10.0.0.1:5060")
    gw = intersite("gw")
    out = gw.admit(plan("gw", None), query)
    assert (out.action, out.uri, out.caller_id, out.route, out.trunk) == (
        "trunk", "sip:+49301234567@10.0.0.3:5080", "+4930777001", "via:gw-sip", "gw-sip",
    )  # fmt: skip
    settings = gw.settings
    forged = _resigned(query, caller_id="+4930999999")
    assert gw.admit(plan("gw", None), forged).caller_id == "+4930777000"
    unknown = _resigned(query, via="nope")
    refused = InterSite("gw", settings, lambda: tables()["gw"], {}, clock=lambda: NOW)
    assert refused.admit(plan("gw", None), unknown).reason == "unknown-trunk"


def _resigned(query: dict[str, str], **change: str) -> dict[str, str]:
    call = peering.PeerCall("a", "gw", query["call_id"], query["peer_caller"], query["dialled"],
                            query["conversation"], change.get("via", query["via"]),
                            change.get("caller_id", query["peer_caller_id"]))  # fmt: skip
    headers = dict(
        line.split(": ", 1) for line in call.headers(SECRET, int(NOW)).split("\r\n")[:-1]
    )
    return {**query, "auth": headers["X-Callmesh-Auth"], "via": call.via,
            "peer_caller_id": call.caller_id}  # fmt: skip


@given(st.text(max_size=200))
def test_any_auth_header_parses_or_is_a_header_error(value: str) -> None:
    with contextlib.suppress(peering.PeerHeaderError):
        peering.parse_auth(value)


@pytest.mark.parametrize(
    ("address", "expected"),
    [("10.0.0.1", ("10.0.0.1", 5060)), ("10.0.0.1:5070", ("10.0.0.1", 5070)),
     ("[fd00::1]:5062", ("fd00::1", 5062)), ("fd00::1", ("fd00::1", 5060))],
)  # fmt: skip
def test_site_addresses_split_into_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert peering.split_address(address) == expected


def test_a_hostname_is_not_a_peer_address() -> None:
    with pytest.raises(ValueError, match="does not appear"):
        peering.split_address("pbx.example.com")


async def _never(host: str, port: int, wait_s: float) -> bool:
    return False


def test_peers_go_down_after_missed_probes_and_up_after_one_answer() -> None:
    answers = {"gw": [False, False, True]}

    async def probe(host: str, port: int, wait_s: float) -> bool:
        return answers["gw"].pop(0) if host == "10.0.0.3" else True

    monitor = PeerMonitor(lambda: tables()["a"], probe, down_after=2)
    assert monitor.wanted() == {"gw": "10.0.0.3"}
    monitor.touch("b")
    assert monitor.wanted() == {"gw": "10.0.0.3", "b": "10.0.0.2:5070"}
    seen = []
    for _ in range(3):
        asyncio.run(monitor.probe_once())
        seen.append((monitor.peers["gw"].up, monitor.usable("gw")))
    assert seen == [(None, True), (False, False), (True, True)]
    assert monitor.report()["peers"]["b"]["up"] is True


def test_cdrs_carry_the_shared_conversation_and_the_remote_caller() -> None:
    builder = CdrBuilder("b", {"2001": "Bob"})
    event = Invite(call_id="c1", from_user="1001", ts=NOW, from_name="Alice (Branch A)",
                   dialled="2001", peer_site="a", caller_ext="1001",
                   conversation="3f1e1f4e-0c55-4c38-9a4f-8a1c1b1b1b1b", route="site:a")  # fmt: skip
    call = builder.open_call(event)
    cdr = builder.finish(call, NOW + 5, "answered", 200, "normal-clearing", "caller")
    assert cdr["conversation_id"] == "3f1e1f4e-0c55-4c38-9a4f-8a1c1b1b1b1b"
    assert cdr["caller"] == {"number": "1001", "extension": "1001", "name": "Alice (Branch A)"}
    assert (cdr["peer_site"], cdr["failovers"]) == ("a", 0)
    garbage = builder.open_call(replace(event, conversation="nope", peer_site=""))
    assert garbage["conversation_id"] != event.conversation
    assert garbage["caller"]["extension"] is None


def test_a_number_another_site_sends_here_goes_out_on_this_sites_own_trunks() -> None:
    directory = company()
    directory["rules"] = [
        {"id": "intl", "prefix": "00", "sites": ["a", "b"], "targets": [{"site": "gw"}]},
        {"id": "intl-gw", "prefix": "00", "sites": ["gw"], "targets": [
            {"trunk": "gw-sip", "strip": 2, "prepend": "+", "caller_id": "+4930777000"}]},
    ]  # fmt: skip
    compiled = compile_tables(Directory.model_validate(directory))
    table_a, table_gw = RoutingTable(3, compiled["a"]), RoutingTable(3, compiled["gw"])
    settings = PeeringSettings.model_validate({"secret": SECRET})
    at_a = InterSite("a", settings, lambda: table_a, NAMES, clock=lambda: NOW)
    sent = plan("a", at_a).decide("1001", "00442071234567", call_id="call-1")
    (hop,) = sent.hops
    assert (hop.kind, hop.uri) == ("site", "sip:00442071234567@10.0.0.3:5060")
    at_gw = InterSite("gw", settings, lambda: table_gw, {}, clock=lambda: NOW)
    decision = at_gw.admit(plan("gw", at_gw), as_query(sent, 0, "10.0.0.1:5060"))
    (out,) = decision.hops
    assert (decision.action, decision.route, decision.peer_site) == ("route", "intl-gw", "a")
    assert (out.kind, out.uri, out.from_user) == (
        "trunk", "sip:+442071234567@10.0.0.3:5080", "+4930777000",
    )  # fmt: skip


def test_break_out_via_another_sites_gsm_group_picks_a_channel_there() -> None:
    directory = company()
    directory["trunks"].append({"id": "gw-gsm", "site": "gw", "kind": "gsm",
                                "numbers": ["+15550001000"]})  # fmt: skip
    directory["rules"] = [{"id": "mobile", "prefix": "01", "sites": ["a"],
                           "targets": [{"trunk": "gw-gsm"}]}]  # fmt: skip
    compiled = compile_tables(Directory.model_validate(directory))
    table_a, table_gw = RoutingTable(3, compiled["a"]), RoutingTable(3, compiled["gw"])
    settings = PeeringSettings.model_validate({"secret": SECRET})
    at_a = InterSite("a", settings, lambda: table_a, NAMES, clock=lambda: NOW)
    sent = plan("a", at_a).decide("1001", "01701234567", call_id="call-1")
    assert "X-Callmesh-Via: gw-gsm\r\n" in sent.hops[0].headers
    at_gw = InterSite("gw", settings, lambda: table_gw, {}, clock=lambda: NOW)
    gsm = GsmSettings.model_validate({"groups": [{"name": "gw-gsm", "channels": ["gsm-1"]}]})
    gw_plan = DialPlan(DialPlanSettings(), [], None, gsm, at_gw)
    decision = at_gw.admit(gw_plan, as_query(sent, 0, "10.0.0.1:5060"))
    assert (decision.action, decision.trunk, decision.uri) == ("gsm", "gw-gsm", "01701234567")
    assert (decision.route, decision.peer_site) == ("via:gw-gsm", "a")
