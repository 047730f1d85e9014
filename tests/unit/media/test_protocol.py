"""The media worker's control lines: golden lines from the senders of the dict era still
parse, every record round-trips, and bad lines raise ProtocolError with their error_id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drivers.media.protocol import (
    COMMANDS,
    EVENTS,
    GsmIncoming,
    IvrEvent,
    IvrPlay,
    LegEvent,
    Prompt,
    ProtocolError,
    QueueCallback,
    QueueCancel,
    RoomLinkOpen,
    pack_command,
    pack_event,
    parse_command,
    parse_event,
)

GOLDEN = Path(__file__).parents[2] / "golden" / "media_worker"
COMMAND_LINES = (GOLDEN / "commands.jsonl").read_text().splitlines()
EVENT_LINES = (GOLDEN / "events.jsonl").read_text().splitlines()
INVALID = [json.loads(line) for line in (GOLDEN / "invalid.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_a_golden_command_parses_and_round_trips(line: str) -> None:
    command = parse_command(line)
    assert json.loads(line)["cmd"] == command.TYPE
    assert parse_command(pack_command(command).decode()) == command


@pytest.mark.parametrize("line", EVENT_LINES)
def test_a_golden_event_parses_and_round_trips(line: str) -> None:
    event = parse_event(line)
    assert event is not None
    assert parse_event(pack_event(event)) == event


def test_the_golden_lines_cover_every_command_and_event() -> None:
    assert {json.loads(line)["cmd"] for line in COMMAND_LINES} == set(COMMANDS)
    assert {json.loads(line[4:])["ev"] for line in EVENT_LINES} == set(EVENTS)


def test_old_lines_parse_to_the_records_their_senders_meant() -> None:
    incoming, callback, cancel, play, hub = (
        parse_command(line) for line in (COMMAND_LINES[10], COMMAND_LINES[31],
                                         COMMAND_LINES[27], COMMAND_LINES[17], COMMAND_LINES[13])
    )  # fmt: skip
    assert incoming == GsmIncoming("gsm0", "+4930123456", "1001", "/dev/ttyUSB4", 8000)
    assert isinstance(callback, QueueCallback)
    assert callback.ring_s == 25.0
    assert callback.release == Prompt(None, 480, 500, 500, 3.0)
    assert cancel == QueueCancel("q1@10.0.0.2", agent=None)
    assert play == IvrPlay("a84b@10.0.0.2", Prompt(file="/var/lib/callmesh/tts/wake.wav"))
    assert hub == RoomLinkOpen("1", "1-1")
    assert json.loads(pack_command(hub)) == {"cmd": "room-link", "room": "1", "link": "1-1"}
    assert json.loads(pack_command(incoming))["from"] == "+4930123456"


def test_old_events_parse_to_the_records_their_worker_meant() -> None:
    assert parse_event(EVENT_LINES[7]) == IvrEvent("a84b@10.0.0.2", "start", flow="desk",
                                                   caller="2001")  # fmt: skip
    assert parse_event(EVENT_LINES[4]) == LegEvent("op-5f2c/1002", "ended", code=486,
                                                   reason="worker-full")  # fmt: skip


def test_a_line_without_the_event_prefix_is_no_event() -> None:
    assert parse_event("pjsua_core.c  ....TX 1024 bytes Request msg") is None
    assert parse_event('{"ev":"load","calls":0,"capacity":4}') is None


@pytest.mark.parametrize("case", INVALID, ids=lambda c: str(c["error_id"]))
def test_a_bad_command_raises_its_error_id(case: dict[str, str]) -> None:
    with pytest.raises(ProtocolError, match=re.escape(case["message"])) as raised:
        parse_command(case["line"])
    assert raised.value.error_id == case["error_id"]


def test_a_bad_event_raises_its_error_id() -> None:
    with pytest.raises(ProtocolError, match=r"leg\.state: 'parked'") as raised:
        parse_event('@ev {"ev":"leg","id":"op-1","state":"parked"}')
    assert raised.value.error_id == "media-field-type"
    with pytest.raises(ProtocolError, match="unknown event 'hello'"):
        parse_event('@ev {"ev":"hello"}')


@pytest.mark.parametrize("line", COMMAND_LINES + [e[4:] for e in EVENT_LINES])
def test_any_prefix_of_a_line_parses_or_raises_protocol_error(line: str) -> None:
    for end in range(len(line)):
        for parse in (parse_command, lambda text: parse_event("@ev " + text)):
            try:
                parse(line[:end])
            except ProtocolError:
                continue
