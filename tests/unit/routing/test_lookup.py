"""Route lookup: local and flat extensions, site prefix, rules by time and priority."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from aggregator.directory.compile import compile_tables
from appliance.routing.table import RoutingTable, RoutingTableError, Target
from tests.unit.routing.samples import company, directory

WEDNESDAY_NOON = datetime.datetime(2026, 11, 25, 11, 0, tzinfo=datetime.UTC)  # 12:00 Paris
SATURDAY = datetime.datetime(2026, 11, 28, 11, 0, tzinfo=datetime.UTC)
BERLIN_SIP = frozenset({"+49301234500", "+49301234501"})


def table(site: str, **changes: Any) -> RoutingTable:
    return RoutingTable(7, compile_tables(directory(**changes))[site])


def test_own_extension_rings_locally() -> None:
    decision = table("berlin").lookup("1042", WEDNESDAY_NOON)
    assert decision.targets == (Target("extension", "1042"),)
    assert (decision.reason, decision.version) == ("local extension", 7)


def test_flat_plan_sends_other_sites_extensions_to_their_pbx() -> None:
    decision = table("berlin").lookup("2042", WEDNESDAY_NOON)
    assert decision.targets == (
        Target("site", "2042", site="paris", address="10.2.0.10:5060", caller_prefix=""),
    )


def test_site_prefix_plus_code_reaches_the_other_site() -> None:
    berlin = table("berlin", plan={"flat": False, "site_prefix": "8"})
    decision = berlin.lookup("8202042", WEDNESDAY_NOON)
    assert decision.reason == "site prefix"
    assert decision.targets == (
        Target("site", "2042", site="paris", address="10.2.0.10:5060", caller_prefix="810"),
    )
    assert berlin.lookup("8101042", WEDNESDAY_NOON).targets == (Target("extension", "1042"),)


def test_prefix_dialling_an_extension_the_site_lacks_has_no_route() -> None:
    decision = table("berlin").lookup("8202999", WEDNESDAY_NOON)
    assert not decision.routed
    assert decision.reason == "site paris has no extension 2999"


def test_without_flat_plan_bare_remote_extensions_are_not_routed() -> None:
    berlin = table("berlin", plan={"flat": False, "site_prefix": "8"})
    assert not berlin.lookup("2042", WEDNESDAY_NOON).routed


def test_rule_rewrites_the_number_and_presents_an_owned_caller_id() -> None:
    decision = table("berlin").lookup("00493012345", WEDNESDAY_NOON)
    first = decision.targets[0]
    assert first == Target(
        "trunk", "+493012345", trunk="berlin-sip", caller_id="+49301234501", owned=BERLIN_SIP
    )


def test_rules_by_priority_then_cheapest_target() -> None:
    decision = table("berlin").lookup("00493012345", WEDNESDAY_NOON)
    assert [(t.kind, t.site or t.trunk, t.number, t.caller_id) for t in decision.targets] == [
        ("trunk", "berlin-sip", "+493012345", "+49301234501"),
        ("site", "paris", "00493012345", None),
        ("trunk", "berlin-sip", "+493012345", "+49301234500"),
    ]


def test_time_window_opens_a_rule_in_the_sites_time_zone() -> None:
    open_ = table("lyon").lookup("0033140000000", WEDNESDAY_NOON)
    assert open_.targets[0].trunk == "lyon-gsm"
    assert open_.targets[0].number == "+33140000000"
    closed = table("lyon").lookup("0033140000000", SATURDAY)
    assert [t.kind for t in closed.targets] == ["site", "site"]
    evening = datetime.datetime(2026, 11, 25, 17, 30, tzinfo=datetime.UTC)  # 18:30 Paris
    assert table("lyon").lookup("0033140000000", evening).targets[0].kind == "site"


def test_overnight_window_wraps_past_midnight() -> None:
    doc = company()
    doc["rules"][1]["windows"] = [{"days": ["fri"], "start": "22:00", "end": "06:00"}]
    lyon = table("lyon", rules=doc["rules"])
    saturday_3am_paris = datetime.datetime(2026, 11, 28, 2, 0, tzinfo=datetime.UTC)
    friday_23_paris = datetime.datetime(2026, 11, 27, 22, 0, tzinfo=datetime.UTC)
    assert lyon.lookup("0033140000000", saturday_3am_paris).targets[0].trunk == "lyon-gsm"
    assert lyon.lookup("0033140000000", friday_23_paris).targets[0].trunk == "lyon-gsm"
    assert lyon.lookup("0033140000000", WEDNESDAY_NOON).targets[0].kind == "site"


def test_length_bounds_limit_a_rule() -> None:
    doc = company()
    doc["rules"][0]["max_length"] = 8
    assert table("berlin", rules=doc["rules"]).lookup("00493012345").targets[0].kind == "site"


def test_unknown_number_has_no_route() -> None:
    decision = table("paris").lookup("555", WEDNESDAY_NOON)
    assert (decision.routed, decision.reason) == (False, "no route")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t.pop("meta"), "no 'meta'"),
        (lambda t: t.update({"rule:germany": {"prefix": "00"}}), "rule:germany: malformed rule"),
        (lambda t: t.update({"ext:rome:5000": "5099"}), "unknown site 'rome'"),
        (lambda t: t.update({"ext:paris:5000": "499"}), "bad extension range"),
        (lambda t: t.pop("trunk:berlin-sip"), "unknown trunk 'berlin-sip'"),
        (lambda t: t.update({"meta": {**t["meta"], "timezone": "Nowhere/Else"}}), "time zone"),
        (lambda t: t.update({"route:x": 1}), "unknown entry kind"),
        (lambda t: t.update({"ext:paris:1050": "1060"}), "overlaps ext:berlin:1000"),
    ],
)
def test_broken_tables_are_refused_naming_the_entry(mutate: Any, reason: str) -> None:
    data = compile_tables(directory())["berlin"]
    mutate(data)
    with pytest.raises(RoutingTableError, match=reason):
        RoutingTable(1, data)


def test_caller_id_not_owned_by_the_trunk_is_refused() -> None:
    data = compile_tables(directory())["berlin"]
    data["rule:germany"]["targets"][0]["caller_id"] = "+1555"
    with pytest.raises(RoutingTableError, match="does not own"):
        RoutingTable(1, data)
