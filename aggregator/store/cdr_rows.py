"""CDR documents turned into ``cdrs`` rows and hourly rollup totals.

This is the CPU side of ingest; it touches no database, so the ingest service runs it
on its own thread while the previous batch commits. A row is a flat tuple in column
order (``CdrRow``), which the SQLite driver takes as is. A batch's rollup totals are
computed here too, on the assumption that every row is new; the store recomputes them
only when some rows turn out to be duplicates.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aggregator.store.queue_callbacks import CallbackRecord, callback_record
from aggregator.store.queue_rollup import QueueCall, QueueFieldError, queue_call
from drivers.sync.records import RecordError, parse_cdr

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Refused CDRs kept whole per batch; the rest are only counted, so a site sending
# garbage cannot fill HQ's disk with it.
REJECTED_KEPT = 100


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


# (site, hour or day, dimension, key) -> [calls, answered, duration_s, billable_s]
Totals = dict[tuple[str, int, str, str], list[float]]


@dataclass(frozen=True)
class ParsedBatch:
    """A batch turned into rows (by CDR id, first copy wins) and records kept aside.

    ``error_ids`` says why each refused record was refused; ``rejected`` keeps the
    first ``REJECTED_KEPT`` of them whole. ``queued`` holds the queue figures of the
    CDRs that passed a queue (by CDR id); ``queue_errors`` why a CDR's queue fields were
    refused (the CDR itself is kept). ``continued`` names the CDRs of legs that took
    over another call of the site (variable ``replaces``: a call anchored on a media
    worker, a three-way, an attended transfer): the rollups count their time, not them.
    ``callbacks`` holds what the CDRs that are part of a callback add to it (by CDR
    id).
    """

    site_id: str
    count: int
    rows: dict[str, CdrRow]
    rejected: list[dict[str, Any]]
    received_ms: int
    totals: Totals
    error_ids: tuple[str, ...] = ()
    queued: Mapping[str, QueueCall] = field(default_factory=dict)
    queue_errors: tuple[str, ...] = ()
    continued: frozenset[str] = frozenset()
    callbacks: Mapping[str, CallbackRecord] = field(default_factory=dict)

    def callbacks_among(self, new_ids: Collection[str]) -> list[CallbackRecord]:
        """The callback records among the CDRs ``new_ids`` (those newly stored)."""
        return [self.callbacks[i] for i in new_ids if i in self.callbacks]

    def queued_among(self, new_ids: Collection[str]) -> list[QueueCall]:
        """The queued calls among the CDRs ``new_ids`` (those newly stored)."""
        if len(new_ids) == len(self.rows):
            return list(self.queued.values())
        return [self.queued[i] for i in new_ids if i in self.queued]


def cdr_row(site_id: str, raw: bytes, now_ms: int) -> CdrRow:
    """The ``cdrs`` row for one msgpack CDR document, or RecordError."""
    return _parse(site_id, raw, now_ms)[0]


def _parse(site_id: str, raw: bytes, now_ms: int) -> tuple[CdrRow, dict[str, str], str]:
    """The ``cdrs`` row, the CDR's variables (queue fields among them) and its Call-ID, or
    RecordError."""
    # Unpacked at once: a tuple unpack is cheaper than twenty attribute reads.
    (cdr_id, start, disposition, conversation, direction, caller, callee, trunk, answer, end,
     duration, billable, cause, side, recording, _site, _peer, call_id, _route, _failovers,
     _gsm, variables, *_) = parse_cdr(raw)  # fmt: skip
    row = CdrRow(
        site_id,
        cdr_id,
        conversation,
        direction,
        caller.number,
        caller.extension or "",
        caller.name,
        callee.number,
        callee.extension or "",
        callee.name,
        trunk or "",
        int(start * 1000),
        None if answer is None else int(answer * 1000),
        None if end is None else int(end * 1000),
        duration,
        billable,
        disposition,
        str(cause),
        side,
        recording,
        raw,
        now_ms,
    )
    return row, variables, call_id


def parse_batch(site_id: str, records: Sequence[tuple[int, bytes]]) -> ParsedBatch:
    """Decode a batch; pure CPU work that can run beside the previous batch's commit."""
    now_ms = int(time.time() * 1000)
    rows: dict[str, CdrRow] = {}
    rejected: list[dict[str, Any]] = []
    error_ids = []
    queued: dict[str, QueueCall] = {}
    queue_errors = []
    continued = set()
    callbacks: dict[str, CallbackRecord] = {}
    for seq, raw in records:
        try:
            row, variables, call_id = _parse(site_id, raw, now_ms)
        except RecordError as err:
            error_ids.append(err.error_id)
            if len(rejected) >= REJECTED_KEPT:
                continue
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
        if row.cdr_id in rows:
            continue
        rows[row.cdr_id] = row
        if variables.get("replaces"):
            continued.add(row.cdr_id)
        if variables:
            try:
                callback = callback_record(site_id, call_id, row.caller_number, row.started_ms,
                                           variables)  # fmt: skip
                if callback is not None:
                    callbacks[row.cdr_id] = callback
                call = queue_call(site_id, row.started_ms, row.ended_ms, row.billable_s, variables,
                                  row.cdr_id, row.caller_number)  # fmt: skip
            except QueueFieldError as err:
                queue_errors.append(err.error_id)
                continue
            if call is not None:
                queued[row.cdr_id] = call
    totals = hourly_totals(rows.values(), continued)
    return ParsedBatch(site_id, len(records), rows, rejected, now_ms, totals, tuple(error_ids),
                       queued, tuple(queue_errors), frozenset(continued), callbacks)  # fmt: skip


def new_totals() -> Totals:
    """Empty totals that grow on first use of a key."""
    return defaultdict(lambda: [0, 0, 0.0, 0.0])


def add_totals(into: Totals, totals: Totals) -> None:
    """Add ``totals`` to ``into`` (made by ``new_totals``), key by key."""
    for key, t in totals.items():
        sums = into[key]
        for i, value in enumerate(t):
            sums[i] += value


def daily_totals(hourly: Totals) -> Totals:
    """Hourly totals added up per UTC day (the time in each key becomes the day's start)."""
    daily = new_totals()
    for (site, hour, dim, key), t in hourly.items():
        sums = daily[(site, hour - hour % DAY_MS, dim, key)]
        for i, value in enumerate(t):
            sums[i] += value
    return daily


def hourly_totals(rows: Iterable[CdrRow], continued: Collection[str] = ()) -> Totals:
    """What ``rows`` add to the hourly rollups, per site, hour and dimension; a row in
    ``continued`` (a leg that took over a call counted already) adds its time only.

    Rows are first summed per site, hour, extensions and trunk (one dictionary step a
    row), and those sums then spread over their dimensions: a batch holds few such
    combinations, so the per-row work is a fraction of adding each row to each
    dimension.
    """
    combined: dict[tuple[str, int, str, str, str], list[float]] = defaultdict(
        lambda: [0, 0, 0.0, 0.0]
    )
    for row in rows:
        started = row.started_ms
        t = combined[(row.site_id, started - started % HOUR_MS, row.caller_extension,
                      row.callee_extension, row.trunk)]  # fmt: skip
        if row.cdr_id not in continued:
            t[0] += 1
            t[1] += row.disposition == "answered"
        t[2] += row.duration_s
        t[3] += row.billable_s
    totals = new_totals()
    for (site, hour, caller, callee, trunk), sums in combined.items():
        for dim, key in _dimensions(caller, callee, trunk):
            t = totals[(site, hour, dim, key)]
            for i, value in enumerate(sums):
                t[i] += value
    return totals


def _dimensions(caller: str, callee: str, trunk: str) -> Iterable[tuple[str, str]]:
    yield "site", ""
    if caller:
        yield "extension", caller
    if callee and callee != caller:
        yield "extension", callee
    if trunk:
        yield "trunk", trunk
