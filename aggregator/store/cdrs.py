"""Idempotent CDR ingest: (site id, CDR id) is stored once however often it arrives.

A batch is one transaction: new CDRs are inserted (``ON CONFLICT DO NOTHING``,
``RETURNING`` the ones that were new), the hourly rollups grow by exactly those, and
records that cannot be read are kept whole in ``rejected_records`` for a person to look
at. Only after the commit does the caller acknowledge the batch, so an acknowledged CDR
is durably stored and a redelivered one changes nothing.
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import sqlalchemy as sa

from aggregator.store.db import insert
from aggregator.store.schema import cdr_rollup, cdrs, rejected_records, sites

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


def _party(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    party = doc.get(key) or {}
    if not isinstance(party, Mapping):
        raise BadCdr(f"{key} must be a map of number, extension, name")
    return party


def _text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def cdr_row(site_id: str, raw: bytes, now_ms: int) -> dict[str, Any]:
    """The ``cdrs`` row for one msgpack CDR document, or BadCdr."""
    try:
        doc = msgpack.unpackb(raw, raw=False)
    except Exception as err:
        raise BadCdr(f"not msgpack: {err}") from None
    if not isinstance(doc, Mapping):
        raise BadCdr("a CDR is a msgpack map")
    cdr_id = doc.get("id")
    if not isinstance(cdr_id, str) or not 0 < len(cdr_id) <= 64:
        raise BadCdr("id must be a string of 1 to 64 characters")
    disposition = doc.get("disposition")
    if disposition not in DISPOSITIONS:
        raise BadCdr(f"disposition must be one of {sorted(DISPOSITIONS)}")
    started = to_epoch_ms(doc.get("start"), "start")
    if started is None:
        raise BadCdr("start is required")
    caller, callee = _party(doc, "caller"), _party(doc, "callee")
    return {
        "site_id": site_id,
        "cdr_id": cdr_id,
        "conversation_id": _text(doc.get("conversation_id"), 64) or None,
        "direction": _text(doc.get("direction"), 16),
        "caller_number": _text(caller.get("number"), 64),
        "caller_extension": _text(caller.get("extension"), 32),
        "caller_name": _text(caller.get("name"), 128),
        "callee_number": _text(callee.get("number"), 64),
        "callee_extension": _text(callee.get("extension"), 32),
        "callee_name": _text(callee.get("name"), 128),
        "trunk": _text(doc.get("trunk"), 64),
        "started_ms": started,
        "answered_ms": to_epoch_ms(doc.get("answer"), "answer"),
        "ended_ms": to_epoch_ms(doc.get("end"), "end"),
        "duration_s": float(doc.get("duration_s") or 0),
        "billable_s": float(doc.get("billable_s") or 0),
        "disposition": disposition,
        "hangup_cause": _text(doc.get("hangup_cause"), 64),
        "hangup_side": _text(doc.get("hangup_side"), 16),
        "recording_id": _text(doc.get("recording_id"), 64) or None,
        "doc": raw,
        "received_ms": now_ms,
    }


class CdrStore:
    """Writes CDR batches; one instance per engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ingest(self, site_id: str, records: Sequence[tuple[int, bytes]]) -> IngestResult:
        """Store a batch durably; returns what was new, duplicate or rejected."""
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
        with self.engine.begin() as conn:
            new_ids = self._insert(conn, list(rows.values()))
            new_rows = [rows[cdr_id] for cdr_id in new_ids]
            self._roll_up(conn, new_rows)
            if rejected:
                stmt = insert(self.engine, rejected_records).on_conflict_do_nothing()
                conn.execute(stmt, rejected)
            self._count(conn, site_id, len(new_rows), now_ms)
        return IngestResult(
            len(new_rows), len(records) - len(new_rows) - len(rejected), len(rejected)
        )

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[str]:
        """Insert rows whose (site, id) is new; returns the ids that were inserted."""
        if not rows:
            return []
        site_id = rows[0]["site_id"]
        ids = [row["cdr_id"] for row in rows]
        held: set[str] = set()
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            query = sa.select(cdrs.c.cdr_id).where(
                cdrs.c.site_id == site_id, cdrs.c.cdr_id.in_(chunk)
            )
            held.update(conn.scalars(query))
        new_rows = [row for row in rows if row["cdr_id"] not in held]
        if new_rows:
            stmt = insert(self.engine, cdrs).on_conflict_do_nothing(
                index_elements=["site_id", "cdr_id"]
            )
            conn.execute(stmt, new_rows)
        return [row["cdr_id"] for row in new_rows]

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


def _dimensions(row: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    yield "site", ""
    extensions = {row["caller_extension"], row["callee_extension"]} - {""}
    for extension in sorted(extensions):
        yield "extension", extension
    if row["trunk"]:
        yield "trunk", row["trunk"]
