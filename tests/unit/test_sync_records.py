"""Sync records: golden frames pin the wire format; any input parses or is refused by id."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from appliance.pbx.cdr import CdrBuilder
from drivers.sip.events import End, Failed, Invite, Rejected
from drivers.sync.agent_states import parse_agent_state
from drivers.sync.limits import DURATION_MAX_S, TIME_MAX_S, TIME_MIN_S
from drivers.sync.protocol import (
    MESSAGES,
    VERSION,
    AgentStateBatch,
    CdrBatch,
    Command,
    Message,
    ProtocolError,
    SimStatus,
    SmsBatch,
    Snapshot,
    Update,
    decode,
    encode,
)
from drivers.sync.records import (
    SIM_COMMANDS,
    Cdr,
    RecordError,
    pack,
    parse_cdr,
    parse_refused_call,
    parse_routing_changes,
    parse_routing_table,
    parse_sim,
    parse_sim_command,
    parse_sms,
    parse_switch,
)

FRAMES = Path(__file__).parent / "sync_frames"
EXPECTED: dict[str, Any] = json.loads((FRAMES / "expected.json").read_text())
PARSERS: dict[str, Callable[[bytes], Any]] = {
    "cdr": parse_cdr,
    "sms": parse_sms,
    "refused": parse_refused_call,
    "agent": parse_agent_state,
}


def jsonable(value: Any) -> Any:
    """A record as the JSON of expected.json: maps for records, lists for tuples."""
    if hasattr(value, "_asdict"):
        return {k: jsonable(v) for k, v in value._asdict().items()}
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump())
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value.hex() if isinstance(value, bytes) else value


def message_fields(message: Message) -> Any:
    """A message's fields, with the records it carries parsed."""
    out = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if isinstance(message, CdrBatch):
        out["records"] = [[seq, parse_cdr(raw)] for seq, raw in message.records]
    if isinstance(message, SmsBatch):
        out["records"] = [[seq, parse_sms(raw)] for seq, raw in message.records]
    if isinstance(message, AgentStateBatch):
        out["records"] = [[seq, parse_agent_state(raw)] for seq, raw in message.records]
    if isinstance(message, SimStatus):
        out["sims"] = [parse_sim(s) for s in message.sims]
        out["switches"] = [parse_switch(s) for s in message.switches]
    return jsonable(out)


def carried_record(message: Message) -> Any:
    """The typed record a command, snapshot or update message carries."""
    if isinstance(message, Command):
        return parse_sim_command(message.kind, message.args)
    if isinstance(message, Snapshot):
        return dict(parse_routing_table(message.data))
    assert isinstance(message, Update)
    return parse_routing_changes(message.changes)


CARRIERS = sorted(
    n for n, e in EXPECTED.items() if n.startswith("msg-") and ("record" in e or "error_id" in e)
)


def test_every_golden_frame_has_its_expected_record() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FRAMES.glob("*.msgpack"))


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if not n.startswith("msg-")))
def test_golden_record_frame_parses_to_its_pinned_record(name: str) -> None:
    raw = (FRAMES / name).read_bytes()
    expected = EXPECTED[name]
    parse = PARSERS[name.split("-")[0]]
    if "error_id" in expected:
        with pytest.raises(RecordError) as refused:
            parse(raw)
        assert (refused.value.error_id, refused.value.message) == (
            expected["error_id"],
            expected["message"],
        )
    else:
        assert jsonable(parse(raw)) == expected["record"]


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.startswith("msg-")))
def test_golden_message_frame_decodes_and_encodes_to_the_same_bytes(name: str) -> None:
    raw = (FRAMES / name).read_bytes()
    message = decode([raw])
    assert EXPECTED[name]["type"] == message.TYPE
    assert message_fields(message) == EXPECTED[name]["fields"]
    assert encode(message) == [raw]


@pytest.mark.parametrize("name", CARRIERS)
def test_golden_command_and_routing_frames_parse_to_their_pinned_records(name: str) -> None:
    message = decode([(FRAMES / name).read_bytes()])
    expected = EXPECTED[name]
    if "error_id" in expected:
        with pytest.raises(RecordError) as refused:
            carried_record(message)
        assert (refused.value.error_id, refused.value.message) == (
            expected["error_id"],
            expected["message"],
        )
    else:
        assert jsonable(carried_record(message)) == expected["record"]


@pytest.mark.parametrize("name", [n for n in CARRIERS if "record" in EXPECTED[n]])
def test_a_command_or_routing_change_packs_back_to_what_hq_sent(name: str) -> None:
    message = decode([(FRAMES / name).read_bytes()])
    if isinstance(message, Command):
        assert parse_sim_command(message.kind, message.args).args() == message.args
    elif isinstance(message, Update):
        assert parse_routing_changes(message.changes).to_doc() == message.changes


@pytest.mark.parametrize("name", ["cdr-pbx-answered.msgpack", "cdr-pbx-busy.msgpack"])
def test_a_pbx_cdr_packs_back_to_the_bytes_it_was_parsed_from(name: str) -> None:
    raw = (FRAMES / name).read_bytes()
    assert pack(parse_cdr(raw).to_doc()) == raw


def test_every_cdr_the_pbx_builds_parses_at_hq() -> None:
    builder = CdrBuilder("berlin", {"1001": "Desk"})
    event = Invite(call_id="c1", from_user="1001", dialled="+4917012", ts=1772445600.0)
    call = builder.open_call(event)
    docs = [
        builder.from_end({**call, "answer": 1772445601.0}, End(call_id="c1", ts=1772445660.0)),
        builder.from_failed(
            call, Failed(call_id="c1", ts=1772445610.0, reason="no-answer", code=408)
        ),
        builder.from_rejected(
            Rejected(
                call_id="c1",
                from_user="1001",
                dialled="+4917012",
                ts=1772445600.0,
                reason="unknown extension",
                code=404,
            )
        ),
        builder.interrupted(call, 1772445620.0, "media worker restarted"),
    ]
    parsed = [parse_cdr(pack(doc)) for doc in docs]
    assert [c.disposition for c in parsed] == ["answered", "no-answer", "failed", "interrupted"]
    assert parsed[0] == parse_cdr(pack(parsed[0].to_doc()))


@pytest.mark.parametrize(
    ("change", "error_id"),
    [
        ({"duration_s": "65"}, "record-bad-field"),
        ({"duration_s": -1}, "record-out-of-range"),
        ({"duration_s": math.nan}, "record-out-of-range"),
        ({"billable_s": DURATION_MAX_S + 1}, "record-out-of-range"),
        ({"start": 1772445600000}, "record-out-of-range"),
        ({"end": "2026-03-02T10:00:00.000+99:00"}, "record-bad-time"),
        ({"start": "9999-12-31T23:59:59+00:00"}, "record-out-of-range"),
        ({"direction": "sideways"}, "record-bad-enum"),
        ({"disposition": ["answered"]}, "record-bad-enum"),
        ({"id": "x" * 65}, "record-bad-field"),
        ({"caller": "1001"}, "record-not-map"),
        ({"caller": {"number": 1001}}, "record-bad-field"),
        ({"hangup_cause": {"sip_code": 99999, "reason": "x"}}, "record-out-of-range"),
        ({"variables": {"trip": 7}}, "record-bad-field"),
        ({"variables": {f"v{i}": "x" for i in range(65)}}, "record-bad-field"),
    ],
)
def test_an_out_of_range_cdr_is_refused_with_its_error_id(
    change: dict[str, Any], error_id: str
) -> None:
    doc = msgpack.unpackb((FRAMES / "cdr-epoch-seconds.msgpack").read_bytes())
    with pytest.raises(RecordError) as refused:
        parse_cdr(pack({**doc, **change}))
    assert refused.value.error_id == error_id


def test_an_ivr_calls_flow_variables_travel_with_its_cdr() -> None:
    builder = CdrBuilder("berlin", {"1001": "Desk"})
    call = builder.open_call(
        Invite(call_id="c1", from_user="1001", dialled="ivr-taxi", ts=1772445600.0)
    )
    doc = builder.from_end(
        {**call, "answer": 1772445601.0, "variables": {"last_trip": "Main St 1"}},
        End(call_id="c1", ts=1772445660.0),
    )
    assert parse_cdr(pack(doc)).variables == {"last_trip": "Main St 1"}


def test_free_text_longer_than_its_cap_is_cut_not_refused() -> None:
    doc = msgpack.unpackb((FRAMES / "cdr-epoch-seconds.msgpack").read_bytes())
    cdr = parse_cdr(pack({**doc, "caller": {"number": "1", "name": "n" * 500}}))
    assert cdr.caller.name == "n" * 128


# Any msgpack value: what a site (or an attacker holding a site's key) can put in a record.
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=80)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=6)
    ),
    max_leaves=20,
)
CDR_KEYS = [*Cdr._fields, "id", "caller", "callee"]


def refused_or_valid(parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except RecordError as err:
        error_id = err.error_id
    assert error_id.startswith("record-")
    return None


def assert_in_range(cdr: Cdr) -> None:
    for ts in (cdr.start, cdr.answer, cdr.end):
        assert ts is None or TIME_MIN_S <= ts <= TIME_MAX_S
    assert 0 <= cdr.duration_s <= DURATION_MAX_S
    assert 0 <= cdr.billable_s <= DURATION_MAX_S
    assert 0 < len(cdr.cdr_id) <= 64


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_any_msgpack_value_is_a_record_or_refused_by_id(value: Any) -> None:
    raw = pack(value)
    for parse in PARSERS.values():
        refused_or_valid(parse, raw)
    refused_or_valid(parse_sim, value)
    refused_or_valid(parse_switch, value)
    refused_or_valid(parse_routing_table, value)
    refused_or_valid(parse_routing_changes, value)
    for kind in SIM_COMMANDS:
        refused_or_valid(functools.partial(parse_sim_command, kind), value)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_are_a_record_or_refused_by_id(data: bytes) -> None:
    for parse in PARSERS.values():
        refused_or_valid(parse, data)


@settings(max_examples=500, deadline=None)
@given(key=st.sampled_from(CDR_KEYS), value=values)
def test_a_cdr_with_any_field_replaced_is_valid_in_range_or_refused(key: str, value: Any) -> None:
    doc = msgpack.unpackb((FRAMES / "cdr-pbx-answered.msgpack").read_bytes())
    cdr = refused_or_valid(parse_cdr, pack({**doc, key: value}))
    if cdr is not None:
        assert_in_range(cdr)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["sms-received.msgpack", "sms-sent.msgpack", "refused-call.msgpack"]),
    key=st.text(max_size=12) | st.sampled_from(["id", "created", "at", "parts", "refs", "status"]),
    value=values,
)
def test_an_sms_or_refused_call_with_any_field_replaced_parses_or_is_refused(
    name: str, key: str, value: Any
) -> None:
    doc = msgpack.unpackb((FRAMES / name).read_bytes())
    refused_or_valid(PARSERS[name.split("-")[0]], pack({**doc, key: value}))


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["iccid", "slot", "status", "days", "signal_dbm", "at_ms"]), value=values
)
def test_a_sim_record_with_any_field_replaced_parses_or_is_refused(key: str, value: Any) -> None:
    status = decode([(FRAMES / "msg-sim-status.msgpack").read_bytes()])
    assert isinstance(status, SimStatus)
    refused_or_valid(parse_sim, {**status.sims[0], key: value})
    refused_or_valid(parse_switch, {**status.switches[0], key: value})


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([n for n in CARRIERS if n.startswith("msg-command-sim")]),
    key=st.sampled_from(["iccid", "group", "channel", "slot", "limits", "extra"]),
    value=values,
)
def test_a_command_with_any_argument_replaced_parses_or_is_refused(
    name: str, key: str, value: Any
) -> None:
    command = decode([(FRAMES / name).read_bytes()])
    assert isinstance(command, Command)
    refused_or_valid(
        lambda args: parse_sim_command(command.kind, args), {**command.args, key: value}
    )


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(MESSAGES)), data=st.data())
def test_any_message_header_decodes_or_is_refused_by_id(kind: str, data: st.DataObject) -> None:
    names = st.sampled_from([*MESSAGES[kind].SCHEMA, "v", "t", "extra"])
    fields = data.draw(st.dictionaries(names, values, max_size=6))
    frame = pack({"v": VERSION, "t": kind, **fields})
    try:
        decode([frame])
    except ProtocolError as err:
        error_id = err.error_id
    else:
        return
    assert error_id
