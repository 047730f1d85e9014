"""Flow validation: a bad flow is refused as a whole, each problem naming its node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.ivr.validate import FlowInvalidError, Known, Problem, parse_flow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ivr"
KNOWN = Known(extensions={"1001", "1003"}, ring_groups={"600"}, flows={"main", "sales"},
              prompts={"menu"})  # fmt: skip


def flow(**nodes: Any) -> dict[str, Any]:
    return {"start": "welcome", "nodes": {
        "welcome": {"type": "menu", "say": "Press 1 for sales.", "options": {"1": "sales"}},
        "sales": {"type": "extension", "number": "1001"},
        **nodes,
    }}  # fmt: skip


def problems(doc: dict[str, Any], known: Known = KNOWN) -> list[Problem]:
    with pytest.raises(FlowInvalidError) as caught:
        parse_flow("main", doc, known)
    assert caught.value.error_id == "ivr-flow-invalid"
    return caught.value.problems


def test_a_consistent_flow_is_accepted() -> None:
    parsed = parse_flow("main", flow(), KNOWN)
    assert parsed.start == "welcome"


def test_the_taxi_example_is_a_valid_flow() -> None:
    doc = yaml.safe_load((EXAMPLES / "taxi-hotline.yaml").read_text())
    assert set(parse_flow("taxi", doc, KNOWN).nodes) >= {"last-trip", "destination", "operators"}


def test_an_unknown_node_type_is_refused_naming_the_node() -> None:
    found = problems(flow(extra={"type": "dance", "next": "sales"}))
    assert [p.node for p in found] == ["extra"]


def test_a_reference_to_a_missing_node_names_the_referring_node() -> None:
    doc = flow()
    doc["nodes"]["welcome"]["options"]["2"] = "support"
    assert problems(doc) == [Problem("welcome", "option 2 goes to support, which is no node")]


def test_an_unreachable_node_is_refused() -> None:
    found = problems(flow(orphan={"type": "hangup"}))
    assert found == [Problem("orphan", "unreachable from the start node")]


def test_a_loop_that_never_waits_for_the_caller_is_refused() -> None:
    doc = flow(
        again={"type": "play", "say": "Hello", "next": "check"},
        check={"type": "time", "hours": {"mon": ["08:00-18:00"]}, "open": "again",
               "closed": "again"},
    )  # fmt: skip
    doc["nodes"]["welcome"]["options"]["2"] = "again"
    found = problems(doc)
    assert {p.node for p in found} & {"again", "check"}
    assert all("loop without an exit" in p.message for p in found)


def test_a_loop_through_a_menu_is_allowed() -> None:
    doc = flow(again={"type": "play", "say": "Once more.", "next": "welcome"})
    doc["nodes"]["welcome"]["options"]["9"] = "again"
    assert parse_flow("main", doc, KNOWN).nodes["again"]


def test_missing_prompts_and_files_are_refused(tmp_path: Path) -> None:
    doc = flow(
        a={"type": "play", "prompt": "nope", "next": "b"},
        b={"type": "play", "file": str(tmp_path / "gone.wav"), "next": "c"},
        c={"type": "play", "next": "sales"},
    )
    doc["nodes"]["welcome"]["options"]["2"] = "a"
    assert problems(doc) == [
        Problem("a", "prompt nope is not in pbx.media.prompts"),
        Problem("b", f"file {tmp_path / 'gone.wav'} is missing"),
        Problem("c", "set exactly one of say, file or prompt"),
    ]


def test_unknown_targets_are_refused() -> None:
    doc = flow(
        group={"type": "ring-group", "number": "700"},
        other={"type": "flow", "flow": "nowhere"},
    )
    doc["nodes"]["welcome"]["options"].update({"2": "group", "3": "other"})
    doc["nodes"]["sales"]["number"] = "1999"
    assert problems(doc) == [
        Problem("sales", "extension 1999 does not exist"),
        Problem("group", "ring group 700 does not exist"),
        Problem("other", "flow nowhere does not exist"),
    ]


@pytest.mark.parametrize(
    ("hours", "holidays", "message"),
    [
        ({"monday": ["08:00-18:00"]}, [], "hours: monday is not one of"),
        ({"mon": ["18:00-08:00"]}, [], "hours mon: '18:00-08:00' is not HH:MM-HH:MM"),
        ({"mon": ["8h-18h"]}, [], "hours mon: '8h-18h' is not HH:MM-HH:MM"),
        ({}, ["25/12/2026"], "holiday '25/12/2026' is not a YYYY-MM-DD date"),
    ],
)
def test_bad_hours_are_refused_naming_the_time_node(
    hours: dict[str, list[str]], holidays: list[str], message: str
) -> None:
    doc = flow(hours={"type": "time", "hours": hours, "holidays": holidays,
                      "open": "sales", "closed": "sales"})  # fmt: skip
    doc["start"] = "hours"
    doc["nodes"]["hours"]["open"] = "welcome"
    found = problems(doc)
    assert [p.node for p in found] == ["hours"]
    assert found[0].message.startswith(message)


def test_an_unknown_time_zone_is_refused() -> None:
    found = problems({**flow(), "timezone": "Mars/Olympus"})
    assert found == [Problem("", "timezone Mars/Olympus is not a known IANA zone")]


def test_a_bad_menu_digit_and_collect_lengths_are_refused() -> None:
    doc = flow(pin={"type": "collect", "say": "PIN?", "var": "pin", "min_length": 6,
                    "max_length": 4, "next": "sales"})  # fmt: skip
    doc["nodes"]["welcome"]["options"].update({"12": "sales", "2": "pin"})
    assert problems(doc) == [
        Problem("welcome", "option '12' is not one DTMF digit"),
        Problem("pin", "min_length 6 is above max_length 4"),
    ]


def test_every_problem_is_reported_at_once_in_the_message() -> None:
    doc = flow(orphan={"type": "hangup"}, lost={"type": "hangup"})
    with pytest.raises(FlowInvalidError) as caught:
        parse_flow("main", doc, KNOWN)
    assert "node orphan: unreachable" in str(caught.value)
    assert "node lost: unreachable" in str(caught.value)
