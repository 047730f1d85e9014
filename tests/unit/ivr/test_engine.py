"""The flow engine with a fake clock: events in, actions out, no pjsua2, no network."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from appliance.ivr.actions import (
    AskWebhook,
    Deliver,
    HangUp,
    PlayAudio,
    Publish,
    StartRecording,
    StopAudio,
    StopRecording,
    Transfer,
)
from appliance.ivr.engine import Session
from appliance.ivr.model import Flow
from appliance.ivr.validate import Known, parse_flow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ivr"
MONDAY_NOON_BERLIN = datetime.datetime(2026, 12, 7, 11, 0, tzinfo=datetime.UTC).timestamp()


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, now: float = MONDAY_NOON_BERLIN) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def session(
    doc: dict[str, Any], clock: Clock, others: dict[str, Flow] | None = None, zone: str = "UTC"
) -> Session:
    flow = parse_flow("main", doc, Known(check_files=False))
    return Session("main", flow, 1, "1001", clock, (others or {}).get, zone)


def menu(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"start": "welcome", "nodes": {
        "welcome": {"type": "menu", "say": "Press 1 for sales.", "options": {"1": "sales"},
                    "timeout_s": 5, "retries": 1, **extra},
        "sales": {"type": "extension", "number": "1002"},
    }}  # fmt: skip
    if "operator" in extra.values():
        doc["nodes"]["operator"] = {"type": "queue", "queue": "front-desk", "fallback": "1003"}
    return doc


def test_a_menu_speaks_its_prompt_and_a_digit_transfers_at_once() -> None:
    call = session(menu(timeout="operator"), Clock())
    assert call.start() == [PlayAudio(say="Press 1 for sales.")]
    assert call.digit("1") == [StopAudio(), Transfer("1002")]
    assert call.phase == "done"


def test_a_silent_caller_hears_the_menu_again_then_takes_the_timeout_branch() -> None:
    clock = Clock()
    call = session(menu(timeout="operator"), clock)
    call.start()
    assert call.played() == []
    clock.advance(4.9)
    assert call.tick() == []
    clock.advance(0.2)
    assert call.tick() == [PlayAudio(say="Press 1 for sales.")]
    call.played()
    clock.advance(5.1)
    assert call.tick() == [Transfer("1003")]


def test_a_wrong_digit_asks_again_then_hangs_up_without_an_invalid_branch() -> None:
    call = session(menu(), Clock())
    call.start()
    assert call.digit("7") == [StopAudio(), PlayAudio(say="Press 1 for sales.")]
    assert call.digit("8") == [StopAudio(), HangUp()]


def collect_flow() -> dict[str, Any]:
    return {"start": "account", "nodes": {
        "account": {"type": "collect", "say": "Your account number, then hash.", "var": "acct",
                    "min_length": 3, "max_length": 6, "first_digit_s": 4, "inter_digit_s": 2,
                    "retries": 1, "next": "thanks", "invalid": "bye"},
        "thanks": {"type": "play", "say": "Account {acct}, thank you.", "next": "bye"},
        "bye": {"type": "hangup"},
    }}  # fmt: skip


def test_collect_ends_on_the_terminator_and_the_digits_fill_templates() -> None:
    call = session(collect_flow(), Clock())
    call.start()
    assert call.digit("4") == [StopAudio()]
    assert call.digit("2") == []
    assert call.digit("7") == []
    assert call.digit("#") == [PlayAudio(say="Account 427, thank you.")]
    assert call.variables["acct"] == "427"
    assert call.played() == [HangUp()]


def test_collect_ends_after_the_inter_digit_timeout_or_at_max_length() -> None:
    clock = Clock()
    call = session(collect_flow(), clock)
    call.start()
    call.played()
    for digit in "1234":
        call.digit(digit)
    clock.advance(2.1)
    assert call.tick() == [PlayAudio(say="Account 1234, thank you.")]
    again = session(collect_flow(), clock)
    again.start()
    actions = [a for d in "123456" for a in again.digit(d)]
    assert actions[-1] == PlayAudio(say="Account 123456, thank you.")


def test_too_few_digits_retry_then_take_the_invalid_branch() -> None:
    clock = Clock()
    call = session(collect_flow(), clock)
    call.start()
    call.digit("1")
    assert call.digit("#") == [PlayAudio(say="Your account number, then hash.")]
    call.played()
    clock.advance(4.1)
    assert call.tick() == [HangUp()]
    assert "acct" not in call.variables


def hours_flow() -> dict[str, Any]:
    return {"start": "hours", "timezone": "Europe/Berlin", "nodes": {
        "hours": {"type": "time", "hours": {"mon": ["08:00-12:30", "13:30-18:00"]},
                  "holidays": ["2026-12-25"], "open": "desk", "closed": "closed",
                  "holiday": "xmas"},
        "desk": {"type": "extension", "number": "1001"},
        "closed": {"type": "play", "say": "We are closed.", "next": "bye"},
        "xmas": {"type": "play", "say": "Merry Christmas.", "next": "bye"},
        "bye": {"type": "hangup"},
    }}  # fmt: skip


def test_time_conditions_read_the_sites_time_zone_and_holidays() -> None:
    clock = Clock()
    assert session(hours_flow(), clock).start() == [Transfer("1001")]
    clock.advance(0.75 * 3600)
    assert session(hours_flow(), clock).start() == [PlayAudio(say="We are closed.")]
    clock.advance(3600)
    assert session(hours_flow(), clock).start() == [Transfer("1001")]
    clock.now = datetime.datetime(2026, 12, 25, 10, 0, tzinfo=datetime.UTC).timestamp()
    assert session(hours_flow(), clock).start() == [PlayAudio(say="Merry Christmas.")]
    clock.now = datetime.datetime(2026, 12, 8, 10, 0, tzinfo=datetime.UTC).timestamp()
    assert session(hours_flow(), clock).start() == [PlayAudio(say="We are closed.")]


def test_a_flow_without_a_time_zone_reads_the_sites() -> None:
    doc = hours_flow()
    del doc["timezone"]
    clock = Clock(datetime.datetime(2026, 12, 7, 7, 30, tzinfo=datetime.UTC).timestamp())
    assert session(doc, clock, zone="Europe/Berlin").start() == [Transfer("1001")]
    assert session(doc, clock, zone="UTC").start() == [PlayAudio(say="We are closed.")]


def lookup_flow() -> dict[str, Any]:
    return {"start": "crm", "nodes": {
        "crm": {"type": "lookup", "url": "http://crm.test/route", "timeout_s": 2,
                "field": "consultant", "branches": {"anna": "anna"}, "next": "desk",
                "fallback": "desk"},
        "anna": {"type": "extension", "number": "1002"},
        "desk": {"type": "extension", "number": "1001"},
    }}  # fmt: skip


def test_a_lookup_posts_the_caller_and_branches_on_the_answer() -> None:
    call = session(lookup_flow(), Clock())
    assert call.start() == [AskWebhook("http://crm.test/route", {"flow": "main",
                            "caller": "1001", "node": "crm",
                            "variables": {"caller": "1001"}}, 2.0)]  # fmt: skip
    actions = call.answered({"consultant": "anna", "vip": True, "nested": {"x": 1}})
    assert actions == [Publish({"caller": "1001", "consultant": "anna", "vip": "true"}),
                       Transfer("1002")]  # fmt: skip


def test_a_lookup_without_an_answer_or_past_its_timeout_takes_the_fallback() -> None:
    clock = Clock()
    call = session(lookup_flow(), clock)
    call.start()
    assert call.answered(None) == [Transfer("1001")]
    late = session(lookup_flow(), clock)
    late.start()
    clock.advance(2.01)
    assert late.tick() == [Transfer("1001")]
    assert late.answered({"consultant": "anna"}) == []


def test_record_speaks_records_until_hash_and_hands_the_recording_over() -> None:
    doc = {"start": "msg", "nodes": {
        "msg": {"type": "record", "say": "Speak now.", "url": "http://dispatch.test/voice",
                "max_s": 20, "silence_s": 2, "next": "bye"},
        "bye": {"type": "hangup"},
    }}  # fmt: skip
    call = session(doc, Clock())
    assert call.start() == [PlayAudio(say="Speak now.")]
    assert call.digit("#") == []
    assert call.played() == [StartRecording(20.0, 2.0)]
    assert call.digit("#") == [StopRecording()]
    delivered, hangup = call.recorded(3.5)
    assert isinstance(delivered, Deliver)
    assert delivered.url == "http://dispatch.test/voice"
    assert delivered.body["seconds"] == 3.5
    assert delivered.body["caller"] == "1001"
    assert hangup == HangUp()


def test_a_recording_stops_at_its_maximum_length() -> None:
    clock = Clock()
    doc = {"start": "msg", "nodes": {
        "msg": {"type": "record", "url": "http://d.test/v", "max_s": 10, "next": "bye"},
        "bye": {"type": "hangup"},
    }}  # fmt: skip
    call = session(doc, clock)
    assert call.start() == [StartRecording(10.0, 3.0)]
    clock.advance(10)
    assert call.tick() == [StopRecording()]


def test_set_variables_are_published_and_queue_goes_to_its_fallback() -> None:
    doc = {"start": "tag", "nodes": {
        "tag": {"type": "set", "vars": {"line": "sales hotline", "who": "{caller}"},
                "next": "q"},
        "q": {"type": "queue", "queue": "sales", "fallback": "1003"},
    }}  # fmt: skip
    actions = session(doc, Clock()).start()
    assert actions == [Publish({"caller": "1001", "line": "sales hotline", "who": "1001"}),
                       Transfer("1003")]  # fmt: skip


def test_a_queue_node_goes_to_the_acd_queue_when_the_site_has_it() -> None:
    doc = {"start": "q", "nodes": {"q": {"type": "queue", "queue": "sales", "fallback": "1003"}}}
    flow = parse_flow("main", doc, Known(check_files=False))
    call = Session("main", flow, 1, "1001", Clock(), lambda _name: None, queues=("sales",))
    assert call.start() == [Transfer("queue-sales")]


def test_an_external_number_is_transferred_as_dialled_for_the_routing_chain() -> None:
    doc = {"start": "out", "nodes": {"out": {"type": "number", "number": "+4930555999"}}}
    assert session(doc, Clock()).start() == [Transfer("+4930555999")]


def test_a_flow_target_continues_in_the_other_flow() -> None:
    other = parse_flow("sales", {"start": "hi", "nodes": {
        "hi": {"type": "play", "say": "Sales here.", "next": "ext"},
        "ext": {"type": "ring-group", "number": "600"},
    }}, Known(check_files=False))  # fmt: skip
    doc = {"start": "go", "nodes": {"go": {"type": "flow", "flow": "sales"}}}
    call = session(doc, Clock(), {"sales": other})
    assert call.start() == [PlayAudio(say="Sales here.")]
    assert call.played() == [Transfer("600")]
    missing = session(doc, Clock())
    assert missing.start() == [HangUp()]


def test_the_taxi_hotline_repeats_the_last_trip_and_orders_it() -> None:
    doc = yaml.safe_load((EXAMPLES / "taxi-hotline.yaml").read_text())
    call = session(doc, Clock())
    (ask,) = call.start()
    assert isinstance(ask, AskWebhook)
    assert ask.url.endswith("/last-trip")
    actions = call.answered({"known": True, "address": "12 Harbour Road", "name": "Ms Li"})
    assert actions[-1] == PlayAudio(
        say="Welcome back. Press 1 to repeat your last trip to 12 Harbour Road. "
        "Press 2 to speak your destination.",
        language="en",
    )
    assert isinstance(actions[-2], Publish)
    assert actions[-2].variables["last_address"] == "12 Harbour Road"
    confirm = call.digit("1")
    assert confirm[-1] == PlayAudio(say="Your taxi goes to 12 Harbour Road. Press 1 to confirm.")
    (order,) = call.digit("1")[1:]
    assert isinstance(order, AskWebhook)
    assert order.url.endswith("/order")
    assert order.body["caller"] == "1001"
    assert order.body["variables"]["address"] == "12 Harbour Road"
    booked = call.answered({"accepted": True})
    assert booked[-1] == PlayAudio(say="Thank you. Your taxi is on its way.")
    assert call.played() == [HangUp()]


def test_the_taxi_hotline_sends_unknown_callers_to_the_queue_fallback_on_silence() -> None:
    clock = Clock()
    doc = yaml.safe_load((EXAMPLES / "taxi-hotline.yaml").read_text())
    call = session(doc, clock)
    call.start()
    clock.advance(2.5)
    (menu_prompt,) = call.tick()
    assert isinstance(menu_prompt, PlayAudio)
    assert menu_prompt.say is not None
    assert menu_prompt.say.startswith("Welcome to the taxi hotline.")
    call.played()
    clock.advance(5.1)
    assert call.tick() == [Transfer("1003")]
