"""The records carried inside sync messages: typed, range-checked, packed and parsed here.

HQ parses every record it ingests with the types below, and the PBX builds its CDRs as
``Cdr``, so a CDR's shape is written down once, here. ``parse_*`` takes the msgpack
bytes of one record (or, inside ``sim-status``, the decoded value) and returns the
record or raises ``RecordError``; no other exception escapes, whatever the input.
``pack`` writes the wire form, which golden frames under ``tests/unit/sync_frames/`` pin.

Records are NamedTuples: HQ parses tens of thousands of CDRs a second, and a tuple is
the cheapest immutable typed value Python builds. Unknown keys are ignored, so a newer
site can add fields; free text longer than its cap is cut to the cap, while ids,
numbers, times and enums out of range refuse the record.

Exceptions::

    ProtocolError
     └── RecordError(error_id, message)   one record is not valid; its batch goes on
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, NamedTuple

import msgpack

from drivers.sync.limits import (
    COMMAND_DETAIL_MAX,
    DISPOSITIONS,
    DURATION_MAX_S,
    HANGUP_SIDES,
    ID_MAX,
    ROUTING_ENTRIES_MAX,
    ROUTING_KEY_MAX,
    SIM_STATUSES,
    SLOT_MAX,
    SMS_DIRECTIONS,
    SMS_PARTS_MAX,
    SMS_STATUSES,
    TIME_MAX_S,
    TIME_MIN_S,
    VARIABLES_MAX,
)
from drivers.sync.protocol import MSGPACK_ERRORS, ProtocolError

CDR_SCHEMA = 1


class RecordError(ProtocolError):
    """One record is not valid (``error_id`` is stable); the others are unaffected."""


def _unpack(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = msgpack.unpackb(raw, raw=False)
    except MSGPACK_ERRORS as err:
        raise RecordError("record-not-msgpack", f"not msgpack: {err}") from None
    if type(doc) is not dict:
        raise RecordError("record-not-map", f"{what} is a msgpack map")
    return doc


def _map(value: Any, name: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise RecordError("record-not-map", f"{name} must be a msgpack map")
    return value


def _bad(key: str, what: str) -> RecordError:
    return RecordError("record-bad-field", f"{key} must be {what}")


def ident(doc: Mapping[str, Any], key: str) -> str:
    """A required id: text of 1 to ``ID_MAX`` characters."""
    value = doc.get(key)
    if type(value) is not str or not 0 < len(value) <= ID_MAX:
        raise _bad(key, f"a string of 1 to {ID_MAX} characters")
    return value


def text(doc: Mapping[str, Any], key: str, cap: int, default: str = "") -> str:
    """Optional free text, cut to ``cap`` characters."""
    value = doc.get(key)
    if type(value) is str:
        return value if len(value) <= cap else value[:cap]
    if value is None:
        return default
    raise _bad(key, "text")


def optional_id(doc: Mapping[str, Any], key: str) -> str | None:
    """An optional id (empty counts as absent)."""
    value = doc.get(key)
    if value is None or value == "":
        return None
    return ident(doc, key)


def number(doc: Mapping[str, Any], key: str, low: float, high: float) -> float:
    """An optional number (absent is 0) within [low, high]; NaN is refused.

    An integer stays an integer, so a record packs back to the bytes it came from.
    """
    value = doc.get(key)
    if (type(value) is float or type(value) is int) and low <= value <= high:
        return value
    if value is None:
        return 0.0
    if type(value) is not float and type(value) is not int:
        raise _bad(key, "a number")
    raise RecordError("record-out-of-range", f"{key} must be within {low}..{high}")


def integer(doc: Mapping[str, Any], key: str, low: int, high: int, default: int = 0) -> int:
    """An optional integer within [low, high]."""
    value = doc.get(key)
    if value is None:
        return default
    if type(value) is not int:
        raise _bad(key, "an integer")
    if not low <= value <= high:
        raise RecordError("record-out-of-range", f"{key} must be within {low}..{high}")
    return value


def choice(doc: Mapping[str, Any], key: str, allowed: frozenset[str], default: str = "") -> str:
    """An optional enum value."""
    value = doc.get(key)
    if type(value) is str and value in allowed:
        return value
    if value is None and default in allowed:
        return default
    raise RecordError("record-bad-enum", f"{key} must be one of {sorted(allowed)}")


def epoch_s(doc: Mapping[str, Any], key: str) -> float | None:
    """An optional time: epoch seconds or ISO-8601 text (UTC unless it says otherwise).

    Only times from 2000 to 2100 pass, so a time sent in milliseconds is refused.
    """
    value = doc.get(key)
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        seconds = float(value)
    elif type(value) is str:
        seconds = _iso_seconds(value[:64], key)
    else:
        raise _bad(key, "epoch seconds or ISO-8601 text")
    if not TIME_MIN_S <= seconds <= TIME_MAX_S:
        raise RecordError("record-out-of-range", f"{key} must be epoch seconds (2000-2100)")
    return seconds


def _iso_seconds(value: str, key: str) -> float:
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise RecordError("record-bad-time", f"{key} is not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        raise RecordError("record-out-of-range", f"{key} is out of range") from None


def iso(ts: float | None) -> str | None:
    """Epoch seconds as UTC ISO-8601 with milliseconds (the wire form of CDR times)."""
    if ts is None:
        return None
    when = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def submap(doc: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """An optional nested map, kept as it is."""
    value = doc.get(key)
    if value is None:
        return None
    return _map(value, key)


def pack(doc: Mapping[str, Any]) -> bytes:
    """The msgpack bytes of a record document."""
    return bytes(msgpack.packb(doc, use_bin_type=True))


class Party(NamedTuple):
    """One end of a call."""

    number: str = ""
    extension: str | None = None
    name: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"number": self.number, "extension": self.extension, "name": self.name}


def parse_party(doc: Mapping[str, Any], key: str) -> Party:
    """A caller or callee map (absent is an empty party)."""
    value = doc.get(key)
    if value is None:
        return _NO_PARTY
    if type(value) is not dict:
        raise RecordError("record-not-map", f"{key} must be a map of number, extension, name")
    number, extension, name = value.get("number"), value.get("extension"), value.get("name")
    # The usual party, every field absent or text within its cap, in one test; anything
    # else (text to cut, a wrong type) takes the field-by-field path.
    if (
        (number is None or (type(number) is str and len(number) <= 64))
        and (name is None or (type(name) is str and len(name) <= 128))
        and (extension is None or (type(extension) is str and len(extension) <= 32))
    ):
        return Party(number or "", extension or None, name or "")
    return Party(
        text(value, "number", 64), text(value, "extension", 32) or None, text(value, "name", 128)
    )


_NO_PARTY = Party()


class HangupCause(NamedTuple):
    """Why a call ended, as the PBX reports it."""

    sip_code: int
    reason: str

    def to_doc(self) -> dict[str, Any]:
        return {"sip_code": self.sip_code, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.sip_code} {self.reason}".strip()


def parse_cause(doc: Mapping[str, Any]) -> HangupCause | str:
    """The PBX's map ``{sip_code, reason}``, or plain text from other sources."""
    value = doc.get("hangup_cause")
    if type(value) is dict:
        return HangupCause(integer(value, "sip_code", 0, 699), text(value, "reason", 60))
    return text(doc, "hangup_cause", 64)


class Cdr(NamedTuple):
    """A finished call (docs/sync.md, "CDR document"); times are epoch seconds."""

    cdr_id: str
    start: float
    disposition: str
    conversation_id: str | None = None
    direction: str = ""
    caller: Party = Party()
    callee: Party = Party()
    trunk: str | None = None
    answer: float | None = None
    end: float | None = None
    duration_s: float = 0.0
    billable_s: float = 0.0
    hangup_cause: HangupCause | str = ""
    hangup_side: str = ""
    recording_id: str | None = None
    site_id: str = ""
    peer_site: str | None = None
    call_id: str = ""
    route: str = ""
    failovers: int = 0
    gsm: dict[str, Any] | None = None
    variables: dict[str, str] = {}
    schema: int = CDR_SCHEMA

    def to_doc(self) -> dict[str, Any]:
        """The document as the PBX writes it (ISO times, ``cdr_id``)."""
        cause = self.hangup_cause
        return {
            "schema": self.schema,
            "cdr_id": self.cdr_id,
            "conversation_id": self.conversation_id,
            "site_id": self.site_id,
            "peer_site": self.peer_site,
            "failovers": self.failovers,
            "call_id": self.call_id,
            "caller": self.caller.to_doc(),
            "callee": self.callee.to_doc(),
            "direction": self.direction,
            "route": self.route,
            "trunk": self.trunk,
            "start": iso(self.start),
            "answer": iso(self.answer),
            "end": iso(self.end),
            "duration_s": self.duration_s,
            "billable_s": self.billable_s,
            "disposition": self.disposition,
            "hangup_cause": cause.to_doc() if isinstance(cause, HangupCause) else cause,
            "hangup_side": self.hangup_side,
            "recording_id": self.recording_id,
            "gsm": self.gsm,
        } | ({"variables": dict(self.variables)} if self.variables else {})


def parse_cdr(raw: bytes) -> Cdr:
    """The CDR in ``raw`` (msgpack), or RecordError."""
    doc = _unpack(raw, "a CDR")
    cdr_id = _cdr_id(doc)
    start = epoch_s(doc, "start")
    if start is None:
        raise RecordError("record-missing-field", "start is required")
    return Cdr(
        cdr_id,
        start,
        choice(doc, "disposition", DISPOSITIONS),
        optional_id(doc, "conversation_id"),
        choice(doc, "direction", _DIRECTIONS, ""),
        parse_party(doc, "caller"),
        parse_party(doc, "callee"),
        text(doc, "trunk", 64) or None,
        epoch_s(doc, "answer"),
        epoch_s(doc, "end"),
        number(doc, "duration_s", 0, DURATION_MAX_S),
        number(doc, "billable_s", 0, DURATION_MAX_S),
        parse_cause(doc),
        choice(doc, "hangup_side", HANGUP_SIDES, ""),
        optional_id(doc, "recording_id"),
        text(doc, "site_id", ID_MAX),
        text(doc, "peer_site", ID_MAX) or None,
        text(doc, "call_id", 256),
        text(doc, "route", 64),
        integer(doc, "failovers", 0, 1000),
        submap(doc, "gsm"),
        _variables(doc),
        integer(doc, "schema", 1, 1000, CDR_SCHEMA),
    )


def _variables(doc: Mapping[str, Any]) -> dict[str, str]:
    """The flow variables a call carried (screen-pop data): text names to text values."""
    found = submap(doc, "variables")
    if not found:
        return {}
    if len(found) > VARIABLES_MAX or not all(
        type(k) is str and type(v) is str and len(k) <= 64 and len(v) <= 1024
        for k, v in found.items()
    ):
        raise _bad("variables", f"at most {VARIABLES_MAX} text names (64) to text values (1024)")
    return found


def _cdr_id(doc: Mapping[str, Any]) -> str:
    value = doc.get("id") or doc.get("cdr_id")
    if type(value) is not str or not 0 < len(value) <= ID_MAX:
        raise _bad("id (or cdr_id)", f"a string of 1 to {ID_MAX} characters")
    return value


_DIRECTIONS = frozenset({"inbound", "outbound", "internal", ""})


class Sms(NamedTuple):
    """A received SMS, or an outgoing one that ended (sent or failed)."""

    sms_id: str
    direction: str
    created: float | None
    number: str
    text: str
    channel: str = ""
    iccid: str = ""
    sim_number: str = ""
    parts: int = 1
    status: str = "unknown"
    reason: str = ""
    refs: tuple[int, ...] | None = None
    attempts: int = 0


def parse_sms(raw: bytes) -> Sms:
    """The SMS record in ``raw`` (msgpack), or RecordError."""
    doc = _unpack(raw, "an SMS record")
    direction = choice(doc, "direction", SMS_DIRECTIONS)
    return Sms(
        ident(doc, "id"),
        direction,
        epoch_s(doc, "created"),
        text(doc, "from" if direction == "in" else "to", 64),
        text(doc, "text", 4000),
        text(doc, "channel", 64),
        text(doc, "iccid", 32),
        text(doc, "sim_number", 32),
        integer(doc, "parts", 1, SMS_PARTS_MAX, 1),
        choice(doc, "status", SMS_STATUSES, "unknown"),
        text(doc, "reason", 512),
        _refs(doc.get("refs")),
        integer(doc, "attempts", 0, 1000),
    )


def _refs(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) > SMS_PARTS_MAX:
        raise _bad("refs", f"a list of at most {SMS_PARTS_MAX} message references")
    if any(type(r) is not int or not 0 <= r <= 255 for r in value):
        raise RecordError("record-out-of-range", "refs are message references 0..255")
    return tuple(value)


class RefusedCall(NamedTuple):
    """An outbound call the site refused (do-not-call list, calling hours, caps)."""

    event_id: str
    at: float | None
    destination: str
    campaign: str | None
    error_id: str
    message: str

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "at": self.at,
            "destination": self.destination,
            "campaign": self.campaign,
            "error_id": self.error_id,
            "message": self.message,
        }


def parse_refused_call(raw: bytes) -> RefusedCall:
    """The refused-call record in ``raw`` (msgpack), or RecordError."""
    doc = _unpack(raw, "a refused-call record")
    return RefusedCall(
        ident(doc, "id"),
        epoch_s(doc, "at"),
        text(doc, "destination", 64),
        text(doc, "campaign", 64) or None,
        text(doc, "error_id", 64),
        text(doc, "message", 512),
    )


class SimRecord(NamedTuple):
    """One SIM of a site as ``sim-status`` carries it (full state, sent on change)."""

    iccid: str
    channel: str
    slot: int
    status: str
    doc: dict[str, Any]


def parse_sim(value: Any) -> SimRecord:
    """One entry of ``sim-status.sims`` (already decoded), or RecordError."""
    doc = _map(value, "a SIM record")
    for key, cap in (("modem", 64), ("number", 32), ("operator", 64), ("imsi", 32)):
        text(doc, key, cap)
    integer(doc, "signal_dbm", -200, 0, 0)
    for key in ("limits", "usage", "last_switch"):
        submap(doc, key)
    _days(doc.get("days"))
    return SimRecord(
        ident(doc, "iccid"),
        text(doc, "channel", 64),
        integer(doc, "slot", 0, SLOT_MAX),
        choice(doc, "status", SIM_STATUSES, "unknown"),
        doc,
    )


def _days(value: Any) -> None:
    if value is None:
        return
    for day, figures in _map(value, "days").items():
        if type(day) is not str or type(figures) is not list or len(figures) != 4:
            raise _bad("days", "a map of day to [calls, answered, connected_s, effective]")
        if any(type(f) not in (int, float) or not 0 <= f <= 1e9 for f in figures):
            raise RecordError("record-out-of-range", "days figures must be within 0..1e9")


class SimSwitch(NamedTuple):
    """A SIM slot switch on a dual-SIM modem; ``at_ms`` is epoch milliseconds."""

    switch_id: str
    at_ms: int
    channel: str
    from_slot: int
    to_slot: int
    doc: dict[str, Any]


def parse_switch(value: Any) -> SimSwitch:
    """One entry of ``sim-status.switches`` (already decoded), or RecordError."""
    doc = _map(value, "a switch record")
    for key, cap in (("modem", 64), ("from_iccid", 32), ("to_iccid", 32), ("reason", 64)):
        text(doc, key, cap)
    at_ms = integer(doc, "at_ms", int(TIME_MIN_S * 1000), int(TIME_MAX_S * 1000))
    return SimSwitch(
        ident(doc, "id"),
        at_ms,
        text(doc, "channel", 64),
        integer(doc, "from_slot", 0, SLOT_MAX),
        integer(doc, "to_slot", 0, SLOT_MAX),
        doc,
    )


class RoutingChanges(NamedTuple):
    """Entry-by-entry changes between two routing tables (``update.changes``, Clone pattern).

    On the wire: ``{"set": {key: value}, "delete": [key]}``; HQ computes them
    (``routing_changes.between``) and a site applies them (``routing_changes.apply``).
    """

    changed: dict[str, Any]
    deleted: tuple[str, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"set": dict(self.changed), "delete": list(self.deleted)}

    @property
    def size(self) -> int:
        """How many entries the changes touch."""
        return len(self.changed) + len(self.deleted)

    def over(self, earlier: RoutingChanges) -> RoutingChanges:
        """These changes merged over ``earlier`` ones (ours win on a key both set)."""
        return RoutingChanges({**earlier.changed, **self.changed}, earlier.deleted + self.deleted)


def parse_routing_table(value: Any) -> Mapping[str, Any]:
    """The entries of a routing table (``snapshot.data``, decoded), or RecordError.

    Only the shape is checked here (a map of text keys); ``appliance/routing/table.py``
    checks what each entry means when it builds the table. HQ's compiled tables are
    mappings layered over the entries every site shares, so any mapping passes.
    """
    if not isinstance(value, Mapping):
        raise RecordError("record-not-map", "a routing table must be a msgpack map")
    _routing_keys(list(value), "a routing table")
    return value


def parse_routing_changes(value: Any) -> RoutingChanges:
    """The changes of an ``update`` (decoded), or RecordError."""
    if type(value) is not dict or set(value) - {"set", "delete"}:
        raise RecordError("record-not-map", "changes must be a map with only 'set' and 'delete'")
    changed, deleted = value.get("set", {}), value.get("delete", [])
    if type(changed) is not dict or type(deleted) is not list:
        raise _bad("changes.set and changes.delete", "a map and a list")
    _routing_keys(list(changed), "changes.set")
    _routing_keys(deleted, "changes.delete")
    return RoutingChanges(changed, tuple(deleted))


def _routing_keys(keys: list[Any], what: str) -> None:
    if len(keys) > ROUTING_ENTRIES_MAX:
        raise RecordError("record-out-of-range", f"{what} has more than {ROUTING_ENTRIES_MAX}")
    if not all(type(k) is str and len(k) <= ROUTING_KEY_MAX for k in keys):
        raise _bad(f"keys of {what}", f"text of at most {ROUTING_KEY_MAX} characters")


# The arguments of each SIM command HQ sends, in the order they are written.
SIM_COMMANDS: dict[str, tuple[str, ...]] = {
    "sim-set-limits": ("iccid", "limits"),
    "sim-set-group-limits": ("group", "limits"),
    "sim-set-group": ("iccid", "group"),
    "sim-select-slot": ("iccid", "channel", "slot"),
    "sim-disable": ("iccid",),
    "sim-enable": ("iccid",),
    "sim-retire": ("iccid",),
    "sim-clear-review": ("iccid",),
}


class SimCommand(NamedTuple):
    """An operator's action on a SIM, a group or a channel (``command`` kind and args).

    ``limits`` is kept as a map: the site's SIM policy (``appliance/sim/limits.py``)
    says which limits exist. A slot selection names its channel; the ICCID beside it
    is for the operator's record.
    """

    kind: str
    iccid: str = ""
    group: str = ""
    channel: str = ""
    slot: int = 0
    limits: dict[str, Any] = {}

    def args(self) -> dict[str, Any]:
        """The command's ``args`` on the wire (only the fields its kind carries)."""
        fields = self._asdict()
        return {k: fields[k] for k in SIM_COMMANDS[self.kind] if k != "iccid" or self.iccid}


def parse_sim_command(kind: str, args: Any) -> SimCommand:
    """The SIM command ``kind`` with ``args`` (a command's fields), or RecordError."""
    if kind not in SIM_COMMANDS:
        raise RecordError("record-bad-enum", f"kind {kind[:ID_MAX]!r} is not a SIM command")
    doc = _map(args, "args")
    wanted = SIM_COMMANDS[kind]
    return SimCommand(
        kind,
        _command_iccid(doc, kind),
        ident(doc, "group") if "group" in wanted else "",
        ident(doc, "channel") if "channel" in wanted else "",
        _slot(doc) if "slot" in wanted else 0,
        _command_limits(doc) if "limits" in wanted else {},
    )


def _command_iccid(doc: Mapping[str, Any], kind: str) -> str:
    if "iccid" not in SIM_COMMANDS[kind]:
        return ""
    if kind == "sim-select-slot":
        return optional_id(doc, "iccid") or ""
    return ident(doc, "iccid")


def _command_limits(doc: Mapping[str, Any]) -> dict[str, Any]:
    found = submap(doc, "limits")
    if found is None:
        raise RecordError("record-missing-field", "limits is required")
    return found


def _slot(doc: Mapping[str, Any]) -> int:
    if doc.get("slot") is None:
        raise RecordError("record-missing-field", "slot is required")
    return integer(doc, "slot", 0, SLOT_MAX)


def command_detail(text: str) -> str:
    """What a site answers to a command, cut to what HQ keeps."""
    return text[:COMMAND_DETAIL_MAX]
