"""CDR documents turned into ``cdrs`` rows and hourly rollup totals.

This is the CPU side of ingest; it touches no database, so the ingest service runs it
on its own thread while the previous batch commits. A row is a flat tuple in column
order (``CdrRow``), which the SQLite driver takes as is. A batch's rollup totals are
computed here too, on the assumption that every row is new; the store recomputes them
only when some rows turn out to be duplicates.
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

DISPOSITIONS = frozenset(
    {"answered", "busy", "no-answer", "failed", "cancelled", "interrupted", "refused"}
)
HOUR_MS = 3_600_000


class BadCdr(ValueError):
    """A CDR document that cannot be stored as a CDR."""


class CdrRow(NamedTuple):
    """One ``cdrs`` row, fields in the table's column order (without ``id``)."""

    site_id: str
    cdr_id: str
    conversation_id: str | None
    direction: str
    caller_number: str
    caller_extension: str
    caller_name: str
    callee_number: str
    callee_extension: str
    callee_name: str
    trunk: str
    started_ms: int
    answered_ms: int | None
    ended_ms: int | None
    duration_s: float
    billable_s: float
    disposition: str
    hangup_cause: str
    hangup_side: str
    recording_id: str | None
    doc: bytes
    received_ms: int


# (site, hour, dimension, key) -> [calls, answered, duration_s, billable_s]
Totals = dict[tuple[str, int, str, str], list[float]]


@dataclass(frozen=True)
class ParsedBatch:
    """A batch turned into rows (by CDR id, first copy wins) and records kept aside."""

    site_id: str
    count: int
    rows: dict[str, CdrRow]
    rejected: list[dict[str, Any]]
    received_ms: int
    totals: Totals


def to_epoch_ms(value: Any, field: str) -> int | None:
    """Epoch seconds (int/float) or ISO-8601 text as UTC epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadCdr(f"{field} is not a time")
    if isinstance(value, int | float):
        return int(value * 1000)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            raise BadCdr(f"{field} is not an ISO-8601 time: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return int(parsed.timestamp() * 1000)
    raise BadCdr(f"{field} is not a time")


def _party(doc: dict[str, Any], key: str) -> dict[str, Any]:
    party = doc.get(key) or {}
    if type(party) is not dict:
        raise BadCdr(f"{key} must be a map of number, extension, name")
    return party


def _text(value: Any, limit: int) -> str:
    if type(value) is str:
        return value[:limit]
    return "" if value is None else str(value)[:limit]


def _time(value: Any, field: str) -> int | None:
    # Epoch seconds are the common case; everything else takes the careful path.
    if type(value) is float or type(value) is int:
        return int(value * 1000)
    return to_epoch_ms(value, field)


def _cause(value: Any) -> str:
    # The PBX reports {"sip_code": 486, "reason": "busy"}; other sources plain text.
    if type(value) is dict:
        return _text(f"{value.get('sip_code', '')} {value.get('reason', '')}".strip(), 64)
    return _text(value, 64)


def cdr_row(site_id: str, raw: bytes, now_ms: int) -> CdrRow:
    """The ``cdrs`` row for one msgpack CDR document, or BadCdr."""
    try:
        doc = msgpack.unpackb(raw, raw=False)
    except Exception as err:
        raise BadCdr(f"not msgpack: {err}") from None
    if type(doc) is not dict:
        raise BadCdr("a CDR is a msgpack map")
    get = doc.get
    cdr_id = get("id") or get("cdr_id")
    if type(cdr_id) is not str or not 0 < len(cdr_id) <= 64:
        raise BadCdr("id (or cdr_id) must be a string of 1 to 64 characters")
    disposition = get("disposition")
    if disposition not in DISPOSITIONS:
        raise BadCdr(f"disposition must be one of {sorted(DISPOSITIONS)}")
    started = _time(get("start"), "start")
    if started is None:
        raise BadCdr("start is required")
    caller, callee = _party(doc, "caller"), _party(doc, "callee")
    return CdrRow(
        site_id,
        cdr_id,
        _text(get("conversation_id"), 64) or None,
        _text(get("direction"), 16),
        _text(caller.get("number"), 64),
        _text(caller.get("extension"), 32),
        _text(caller.get("name"), 128),
        _text(callee.get("number"), 64),
        _text(callee.get("extension"), 32),
        _text(callee.get("name"), 128),
        _text(get("trunk"), 64),
        started,
        _time(get("answer"), "answer"),
        _time(get("end"), "end"),
        float(get("duration_s") or 0),
        float(get("billable_s") or 0),
        disposition,
        _cause(get("hangup_cause")),
        _text(get("hangup_side"), 16),
        _text(get("recording_id"), 64) or None,
        raw,
        now_ms,
    )


def parse_batch(site_id: str, records: Sequence[tuple[int, bytes]]) -> ParsedBatch:
    """Decode a batch; pure CPU work that can run beside the previous batch's commit."""
    now_ms = int(time.time() * 1000)
    rows: dict[str, CdrRow] = {}
    rejected = []
    for seq, raw in records:
        try:
            row = cdr_row(site_id, raw, now_ms)
        except BadCdr as err:
            rejected.append(
                {
                    "site_id": site_id,
                    "seq": seq,
                    "reason": str(err)[:256],
                    "raw": raw,
                    "received_ms": now_ms,
                }
            )
            continue
        rows.setdefault(row.cdr_id, row)
    return ParsedBatch(site_id, len(records), rows, rejected, now_ms, hourly_totals(rows.values()))


def hourly_totals(rows: Iterable[CdrRow]) -> Totals:
    """What ``rows`` add to the hourly rollups, per site, hour and dimension."""
    totals: Totals = defaultdict(lambda: [0, 0, 0.0, 0.0])
    for row in rows:
        hour = row.started_ms - row.started_ms % HOUR_MS
        answered = row.disposition == "answered"
        for dim, key in _dimensions(row):
            t = totals[(row.site_id, hour, dim, key)]
            t[0] += 1
            t[1] += answered
            t[2] += row.duration_s
            t[3] += row.billable_s
    return totals


def _dimensions(row: CdrRow) -> Iterable[tuple[str, str]]:
    yield "site", ""
    if row.caller_extension:
        yield "extension", row.caller_extension
    if row.callee_extension and row.callee_extension != row.caller_extension:
        yield "extension", row.callee_extension
    if row.trunk:
        yield "trunk", row.trunk
