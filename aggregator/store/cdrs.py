"""Idempotent CDR ingest: (site id, CDR id) is stored once however often it arrives.

A batch is one transaction: new CDRs are inserted (``ON CONFLICT DO NOTHING``,
``RETURNING`` the ones that were new), the hourly rollups grow by exactly those, and
records that cannot be read are kept whole in ``rejected_records`` for a person to look
at. Only after the commit does the caller acknowledge the batch, so an acknowledged CDR
is durably stored and a redelivered one changes nothing.
"""

from __future__ import annotations

import datetime
import functools
import operator
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import cdr_rollup, cdrs, rejected_records, sites

_COLUMNS = tuple(c.name for c in cdrs.columns if c.name != "id")
_SQLITE_MAX_VARIABLES = 32_000
DISPOSITIONS = frozenset({"answered", "busy", "no-answer", "failed", "cancelled", "interrupted"})
HOUR_MS = 3_600_000


class BadCdr(ValueError):
    """A CDR document that cannot be stored as a CDR."""


@dataclass(frozen=True)
class IngestResult:
    """What one batch did."""

    inserted: int
    duplicates: int
    rejected: int


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


def cdr_row(site_id: str, raw: bytes, now_ms: int) -> dict[str, Any]:
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
    return {
        "site_id": site_id,
        "cdr_id": cdr_id,
        "conversation_id": _text(get("conversation_id"), 64) or None,
        "direction": _text(get("direction"), 16),
        "caller_number": _text(caller.get("number"), 64),
        "caller_extension": _text(caller.get("extension"), 32),
        "caller_name": _text(caller.get("name"), 128),
        "callee_number": _text(callee.get("number"), 64),
        "callee_extension": _text(callee.get("extension"), 32),
        "callee_name": _text(callee.get("name"), 128),
        "trunk": _text(get("trunk"), 64),
        "started_ms": started,
        "answered_ms": _time(get("answer"), "answer"),
        "ended_ms": _time(get("end"), "end"),
        "duration_s": float(get("duration_s") or 0),
        "billable_s": float(get("billable_s") or 0),
        "disposition": disposition,
        "hangup_cause": _cause(get("hangup_cause")),
        "hangup_side": _text(get("hangup_side"), 16),
        "recording_id": _text(get("recording_id"), 64) or None,
        "doc": raw,
        "received_ms": now_ms,
    }


class CdrStore:
    """Writes CDR batches; one instance per engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ingest(self, site_id: str, records: Sequence[tuple[int, bytes]]) -> IngestResult:
        """Store a batch durably; returns what was new, duplicate or rejected."""
        return self.store_many([parse_batch(site_id, records)])[0]

    def store_many(self, batches: Sequence[ParsedBatch]) -> list[IngestResult]:
        """Store parsed batches (of any sites) in one durable commit (group commit)."""
        results = []
        with self.engine.begin() as conn:
            for batch in batches:
                new_ids = self._insert(conn, list(batch.rows.values()))
                new_rows = [batch.rows[cdr_id] for cdr_id in new_ids]
                self._roll_up(conn, new_rows)
                if batch.rejected:
                    stmt = insert(self.engine, rejected_records).on_conflict_do_nothing()
                    conn.execute(stmt, batch.rejected)
                self._count(conn, batch.site_id, len(new_rows), batch.received_ms)
                duplicates = batch.count - len(new_rows) - len(batch.rejected)
                results.append(IngestResult(len(new_rows), duplicates, len(batch.rejected)))
        return results

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[str]:
        """Insert rows whose (site, id) is new; returns the ids that were inserted."""
        if not rows:
            return []
        if self.engine.dialect.name == "sqlite":
            return _insert_sqlite(conn, rows)
        stmt = (
            insert(self.engine, cdrs)
            .on_conflict_do_nothing(index_elements=["site_id", "cdr_id"])
            .returning(cdrs.c.cdr_id)
        )
        return list(conn.scalars(stmt, rows))

    def _roll_up(self, conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        totals: dict[tuple[str, int, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0])
        for row in rows:
            hour = row["started_ms"] - row["started_ms"] % HOUR_MS
            answered = row["disposition"] == "answered"
            for dim, key in _dimensions(row):
                t = totals[(row["site_id"], hour, dim, key)]
                t[0] += 1
                t[1] += answered
                t[2] += row["duration_s"]
                t[3] += row["billable_s"]
        if not totals:
            return
        values = [
            {
                "site_id": s,
                "hour_ms": h,
                "dim": d,
                "key": k,
                "calls": int(t[0]),
                "answered": int(t[1]),
                "duration_s": t[2],
                "billable_s": t[3],
            }
            for (s, h, d, k), t in totals.items()
        ]
        stmt = insert(self.engine, cdr_rollup)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id", "hour_ms", "dim", "key"],
            set_={
                "calls": cdr_rollup.c.calls + stmt.excluded.calls,
                "answered": cdr_rollup.c.answered + stmt.excluded.answered,
                "duration_s": cdr_rollup.c.duration_s + stmt.excluded.duration_s,
                "billable_s": cdr_rollup.c.billable_s + stmt.excluded.billable_s,
            },
        )
        conn.execute(stmt, values)

    def _count(self, conn: sa.Connection, site_id: str, new: int, now_ms: int) -> None:
        conn.execute(
            sa.update(sites)
            .where(sites.c.site_id == site_id)
            .values(cdrs_received=sites.c.cdrs_received + new, last_seen_ms=now_ms)
        )


@dataclass(frozen=True)
class ParsedBatch:
    """A batch turned into rows (by CDR id, first copy wins) and records kept aside."""

    site_id: str
    count: int
    rows: dict[str, dict[str, Any]]
    rejected: list[dict[str, Any]]
    received_ms: int


def parse_batch(site_id: str, records: Sequence[tuple[int, bytes]]) -> ParsedBatch:
    """Decode a batch; pure CPU work that can run beside the previous batch's commit."""
    now_ms = int(time.time() * 1000)
    rows: dict[str, dict[str, Any]] = {}
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
        rows.setdefault(row["cdr_id"], row)
    return ParsedBatch(site_id, len(records), rows, rejected, now_ms)


def _insert_sqlite(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[str]:
    """Multi-row INSERT ... RETURNING through the driver.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself at
    ingest rates; building the statement once per chunk and passing flat tuples halves
    the cost of a batch.
    """
    inserted: list[str] = []
    values = operator.itemgetter(*_COLUMNS)
    per_statement = _SQLITE_MAX_VARIABLES // len(_COLUMNS)
    for first in range(0, len(rows), per_statement):
        chunk = rows[first : first + per_statement]
        params = [v for row in chunk for v in values(row)]
        result = conn.exec_driver_sql(_sqlite_insert_sql(len(chunk)), tuple(params))
        inserted.extend(r[0] for r in result)
    return inserted


@functools.cache
def _sqlite_insert_sql(count: int) -> str:
    one = "(" + ",".join("?" * len(_COLUMNS)) + ")"
    # Only column names from the schema and placeholders go into the text; values are bound.
    return (
        f"INSERT INTO cdrs ({','.join(_COLUMNS)}) VALUES {','.join([one] * count)} "  # noqa: S608
        "ON CONFLICT (site_id, cdr_id) DO NOTHING RETURNING cdr_id"
    )


def _dimensions(row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    yield "site", ""
    extensions = {row["caller_extension"], row["callee_extension"]} - {""}
    for extension in sorted(extensions):
        yield "extension", extension
    if row["trunk"]:
        yield "trunk", row["trunk"]
