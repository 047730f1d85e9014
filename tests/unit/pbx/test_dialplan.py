"""Dial plan: patterns, validation naming the offending entries, decisions per call."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.pbx.dialplan import DialPlan, DialPlanError, compile_pattern
from appliance.pbx.settings import DialPlanSettings, InboundRoute, MediaSettings

EXTENSIONS = ["1001", "1002", "1003"]


def plan(**changes: Any) -> DialPlan:
    base: dict[str, Any] = {
        "owned_numbers": ["+4930555000", "+4930555001"],
        "trunks": [{"name": "carrier", "host": "192.0.2.10", "port": 5060}],
        "outbound": [
            {"name": "national", "pattern": "0Z.", "trunk": "carrier", "strip": 1,
             "prepend": "+49", "caller_id": "+4930555000", "cos": "national"},
            {"name": "international", "pattern": "00.", "trunk": "carrier", "strip": 2,
             "prepend": "+", "caller_id": "+4930555000", "cos": "international"},
            {"name": "local", "pattern": "[2-9]XXXXXX", "trunk": "carrier",
             "prepend": "+4930", "caller_id": "+4930555001", "cos": "local"},
        ],
        "ring_groups": [
            {"number": "600", "members": ["1002", "1003"]},
            {"number": "601", "members": ["1002", "1003"], "strategy": "sequential",
             "ring_s": 5},
        ],
        "inbound": [{"did": "+4930555000", "target": "600"}],
        "class_of_service": {"1003": "internal", "1002": "international"},
    }  # fmt: skip
    return DialPlan(DialPlanSettings.model_validate({**base, **changes}), EXTENSIONS)


@pytest.mark.parametrize(
    ("pattern", "number", "matches"),
    [
        ("0Z.", "0301234", True),
        ("0Z.", "0", False),
        ("0Z.", "01", False),
        ("0Z.", "00441", False),
        ("[2-9]XXXXXX", "5550000", True),
        ("[2-9]XXXXXX", "55500001", False),
        ("[13]N", "12", True),
        ("[13]N", "21", False),
    ],
)
def test_patterns_match_as_documented(pattern: str, number: str, matches: bool) -> None:
    assert compile_pattern(pattern).matches(number) is matches


def test_overlap_and_cover_between_patterns() -> None:
    wide, narrow, other = compile_pattern("0."), compile_pattern("0Z."), compile_pattern("00.")
    assert wide.covers(narrow)
    assert not narrow.covers(wide)
    assert not narrow.overlaps(other)
    assert compile_pattern("1XX").overlaps(compile_pattern("[1-2]2X"))
    assert not compile_pattern("1XX").overlaps(compile_pattern("1XX."))


def test_decisions_for_local_numbers() -> None:
    dp = plan()
    assert dp.decide("1001", "1002").wire()["action"] == "extension"
    group = dp.decide("1001", "601")
    assert (group.action, group.targets, group.serial, group.ring_s) == (
        "group", ("1002", "1003"), True, 5,
    )  # fmt: skip
    assert dp.decide("1001", "1999").reason == "unknown-extension"
    assert dp.decide("1001", "99").reason == "no-route"


def test_outbound_call_gets_digit_manipulation_and_an_owned_caller_id() -> None:
    decision = plan().decide("1001", "0301234567")
    assert decision.action == "trunk"
    assert decision.uri == "sip:+49301234567@192.0.2.10:5060"
    assert (decision.caller_id, decision.route, decision.trunk) == (
        "+4930555000", "national", "carrier",
    )  # fmt: skip


def test_class_of_service_is_enforced_before_any_trunk() -> None:
    dp = plan()
    refused = dp.decide("1001", "00441234567")
    assert (refused.action, refused.code, refused.reason) == ("reject", 403, "class-of-service")
    assert dp.decide("1002", "00441234567").uri == "sip:+441234567@192.0.2.10:5060"
    assert dp.decide("1003", "5550000").reason == "class-of-service"


def test_inbound_routes_only_reach_configured_targets() -> None:
    dp = plan()
    inbound = dp.decide("+4917012345", "+4930555000", from_trunk=True)
    assert (inbound.action, inbound.targets, inbound.route) == (
        "group", ("1002", "1003"), "inbound:+4930555000",
    )  # fmt: skip
    assert dp.decide("+4917012345", "1001", from_trunk=True).reason == "no-inbound-route"


def test_validation_names_every_offending_entry() -> None:
    with pytest.raises(DialPlanError) as caught:
        plan(
            outbound=[
                {"name": "all", "pattern": "0.", "trunk": "carrier", "caller_id": "+4930555000"},
                {"name": "shadowed", "pattern": "0Z.", "trunk": "carrier",
                 "caller_id": "+4930555000"},
                {"name": "ghost", "pattern": "9XX.", "trunk": "nope", "caller_id": "+111111"},
                {"name": "clash", "pattern": "1XXX", "trunk": "carrier",
                 "caller_id": "+4930555000"},
                {"name": "bad", "pattern": "0?", "trunk": "carrier", "caller_id": "+4930555000"},
            ],
            ring_groups=[{"number": "1001", "members": ["1002", "1777"]}],
            inbound=[{"did": "+4930999999", "target": "555"}],
            class_of_service={"1888": "local"},
        )  # fmt: skip
    problems = "\n".join(caught.value.problems)
    for expected in (
        "outbound route 'shadowed' is unreachable",
        "taken by 'all' (0.)",
        "outbound route 'ghost': unknown trunk 'nope'",
        "outbound route 'ghost': caller ID +111111 is not one of owned_numbers",
        "outbound route 'clash': pattern 1XXX overlaps local numbers 1001, 1002, 1003",
        "outbound route 'bad': pattern '0?': unexpected '?'",
        "ring group 1001: same number as an extension",
        "ring group 1001: member 1777 is not an extension",
        "inbound route +4930999999: not one of owned_numbers",
        "inbound route +4930999999: target 555 is unreachable",
        "class_of_service: 1888 is not an extension",
    ):
        assert expected in problems


def test_partially_overlapping_routes_are_refused() -> None:
    with pytest.raises(DialPlanError, match="outbound routes 'a' \\(0\\[1-5\\]X\\) and 'b'"):
        plan(
            outbound=[
                {"name": "a", "pattern": "0[1-5]X", "trunk": "carrier", "caller_id": "+4930555000"},
                {"name": "b", "pattern": "0[4-9]X", "trunk": "carrier", "caller_id": "+4930555000"},
            ]
        )


def media_plan(**changes: Any) -> DialPlan:
    media = MediaSettings.model_validate({
        "workers": 1,
        "prompts": {"closed": {"tone_hz": 425}, "menu": {"tone_hz": 700}},
        "ivr": {"main": {"prompt": "menu", "options": {"1": "600", "2": "1003"}}},
    })  # fmt: skip
    base = plan().settings.model_dump()
    return DialPlan(DialPlanSettings.model_validate({**base, **changes}), EXTENSIONS, media)


def test_feature_codes_and_media_users_go_to_the_workers() -> None:
    dp = media_plan()
    assert (dp.decide("1001", "*43").action, dp.decide("1001", "*43").uri) == ("media", "echo")
    assert dp.decide("1001", "*312").uri == "room-12"
    assert dp.decide("1001", "ivr-main").route == "media:ivr-main"
    assert dp.decide("1001", "announce-nope").reason == "unknown-service"
    assert plan().decide("1001", "*43").reason == "unknown-service"


def test_inbound_routes_forwards_and_recording_policy() -> None:
    dp = media_plan(
        inbound=[{"did": "+4930555000", "target": "ivr:main"},
                 {"did": "+4930555001", "target": "1001", "recording": "never"}],
        forward={"1002": {"busy": "announce:closed", "no_answer": "1003"}},
        recording="on-demand",
        recording_by_extension={"1003": "always"},
    )  # fmt: skip
    ivr = dp.decide("carrier", "+4930555000", from_trunk=True)
    assert (ivr.action, ivr.uri, ivr.recording) == ("media", "ivr-main", "never")
    assert dp.decide("carrier", "+4930555001", from_trunk=True).recording == "never"
    bob = dp.decide("1001", "1002").wire()
    assert (bob["fwd_busy"], bob["fwd_no_answer"], bob["fwd_unavailable"]) == (
        "announce-closed", "1003", "",
    )  # fmt: skip
    assert (bob["recording"], bob["record"]) == ("on-demand", "no")
    assert dp.decide("1001", "1003").wire()["record"] == "yes"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"inbound": [{"did": "+4930555000", "target": "ivr:nope"}]}, "ivr:nope is unreachable"),
        ({"forward": {"1002": {"busy": "1002"}}}, "forwards to itself"),
        ({"forward": {"1009": {"busy": "1001"}}}, "forward: 1009 is not an extension"),
        ({"recording_by_extension": {"77": "never"}}, "77 is not an extension"),
        ({"feature_codes": {"echo": "*3", "room": "*3"}}, "overlap"),
    ],
)
def test_media_targets_are_validated(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(DialPlanError) as err:
        media_plan(**changes)
    assert any(problem in p for p in err.value.problems), err.value.problems


def test_ivr_options_must_resolve() -> None:
    media = MediaSettings.model_validate({
        "workers": 1, "prompts": {"menu": {"tone_hz": 700}},
        "ivr": {"main": {"prompt": "menu", "options": {"1": "4444"}}},
    })  # fmt: skip
    with pytest.raises(DialPlanError, match="ivr main option 1"):
        DialPlan(plan().settings, EXTENSIONS, media)


def test_calls_a_registered_trunk_sends_to_our_contact_use_the_to_number() -> None:
    dp = plan()
    assert dp.decide("x", "carrier", from_trunk=True, to="+4930555000").route == (
        "inbound:+4930555000"
    )
    assert dp.decide("x", "carrier", from_trunk=True).reason == "no-inbound-route"


def test_ivr_flows_are_targets_as_soon_as_they_exist() -> None:
    flows = {"taxi"}
    media = MediaSettings.model_validate({"workers": 1})
    settings = plan().settings.model_copy(update={"inbound": (
        InboundRoute(did="+4930555001", target="ivr:taxi"),
    )})  # fmt: skip
    dp = DialPlan(settings, EXTENSIONS, media, flows=lambda: flows)
    assert dp.decide("carrier", "+4930555001", from_trunk=True).uri == "ivr-taxi"
    assert dp.decide("1001", "ivr-later").reason == "unknown-service"
    flows.add("later")
    assert dp.decide("1001", "ivr-later").uri == "ivr-later"
