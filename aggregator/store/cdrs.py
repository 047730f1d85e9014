"""Idempotent CDR ingest: (site id, CDR id) is stored once however often it arrives.

A batch is one transaction: new CDRs are inserted (``ON CONFLICT DO NOTHING``,
``RETURNING`` the ones that were new), the hourly and daily rollups (and the per-queue
ones, aggregator/store/queue_rollup.py and queue_local.py) grow by exactly those, and
records that are not valid CDRs are refused alone and kept whole in ``rejected_records``
(the first ``REJECTED_KEPT`` of a batch) for a person to look at. Only after the commit
does the caller acknowledge the batch, so an acknowledged CDR is durably stored and a
redelivered one changes nothing.

On PostgreSQL a group's rows go in by COPY through a staging table
(aggregator/store/pg_copy.py), all batches of the group in one statement; a CDR that
appears in two batches of one group counts as new in the first only.

On SQLite, where the commit is the ingest's bottleneck, a group is first inserted
without ``RETURNING`` (about a sixth cheaper) and the row counts tell whether every CDR
was new, as they are unless a session was lost and batches are sent again. If any was
already stored, that transaction is rolled back and the group is stored again the
careful way, with ``RETURNING``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from aggregator.store.cdr_rows import (
    CdrRow,
    ParsedBatch,
    Totals,
    add_totals,
    daily_totals,
    hourly_totals,
    new_totals,
    parse_batch,
)
from aggregator.store.db import insert
from aggregator.store.pg_copy import copy_new_rows
from aggregator.store.queue_callbacks import add_callbacks
from aggregator.store.queue_local import add_to_local_rollup
from aggregator.store.queue_rollup import add_to_queue_rollup
from aggregator.store.schema import cdr_rollup, cdr_rollup_daily, cdrs, rejected_records, sites

_COLUMNS = tuple(c.name for c in cdrs.columns if c.name != "id")
_SQLITE_MAX_VARIABLES = 32_000


@dataclass(frozen=True)
class IngestResult:
    """What one batch did."""

    inserted: int
    duplicates: int
    rejected: int


class CdrStore:
    """Writes CDR batches; one instance per engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def ingest(self, site_id: str, records: Sequence[tuple[int, bytes]]) -> IngestResult:
        """Store a batch durably; returns what was new, duplicate or rejected."""
        return self.store_many([parse_batch(site_id, records)])[0]

    def store_many(self, batches: Sequence[ParsedBatch]) -> list[IngestResult]:
        """Store parsed batches (of any sites) in one durable commit (group commit)."""
        if self.engine.dialect.name == "sqlite":
            try:
                return self._store_group(batches, _per_batch(_insert_new_sqlite))
            except _AlreadyStored:
                return self._store_group(batches, _per_batch(_insert_sqlite))
        return self._store_group(batches, _copy_group)

    def _store_group(
        self, batches: Sequence[ParsedBatch], insert_group: _GroupInserter
    ) -> list[IngestResult]:
        results = []
        group_totals = new_totals()
        queued = []
        callbacks = []
        counts: dict[str, tuple[int, int]] = {}
        with self.engine.begin() as conn:
            for batch, new_ids in zip(batches, insert_group(conn, batches), strict=True):
                totals = batch.totals
                if len(new_ids) != len(batch.rows):
                    totals = hourly_totals((batch.rows[cdr_id] for cdr_id in new_ids),
                                           batch.continued)  # fmt: skip
                add_totals(group_totals, totals)
                queued += batch.queued_among(new_ids)
                callbacks += batch.callbacks_among(new_ids)
                if batch.rejected:
                    stmt = insert(self.engine, rejected_records).on_conflict_do_nothing()
                    conn.execute(stmt, batch.rejected)
                new, _ = counts.get(batch.site_id, (0, 0))
                counts[batch.site_id] = (new + len(new_ids), batch.received_ms)
                refused = len(batch.error_ids)
                duplicates = batch.count - len(new_ids) - refused
                results.append(IngestResult(len(new_ids), duplicates, refused))
            self._count(conn, counts)
            self.add_to_rollup(conn, group_totals)
            # Before the hourly rows grow: it looks there for calls stored before these.
            add_to_local_rollup(conn, queued)
            add_to_queue_rollup(conn, queued)
            add_callbacks(conn, callbacks)
        return results

    def add_to_rollup(self, conn: sa.Connection, totals: Totals) -> None:
        """Add ``totals`` (see ``hourly_totals``) to the hourly and daily rollup rows."""
        if totals:
            self._upsert(conn, cdr_rollup, "hour_ms", totals)
            self._upsert(conn, cdr_rollup_daily, "day_ms", daily_totals(totals))

    def _upsert(self, conn: sa.Connection, table: sa.Table, period: str, totals: Totals) -> None:
        values = [
            {
                "site_id": s,
                period: p,
                "dim": d,
                "key": k,
                "calls": int(t[0]),
                "answered": int(t[1]),
                "duration_s": t[2],
                "billable_s": t[3],
            }
            for (s, p, d, k), t in totals.items()
        ]
        stmt = insert(self.engine, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id", period, "dim", "key"],
            set_={
                name: table.c[name] + stmt.excluded[name]
                for name in ("calls", "answered", "duration_s", "billable_s")
            },
        )
        conn.execute(stmt, values)

    def _count(self, conn: sa.Connection, counts: dict[str, tuple[int, int]]) -> None:
        """Per site of the group: CDRs newly stored, and when it was last seen.

        One row per site in one executemany (psycopg pipelines it), not one statement per
        batch: with thousands of sites each sending a CDR at a time, a group holds
        hundreds of one-CDR batches, and a round trip to the database for each bounded a
        node (bench/bench_day.py). Sites go in id order, so two nodes committing groups
        of the same sites lock their rows in the same order.
        """
        stmt = (
            sa.update(sites)
            .where(sites.c.site_id == sa.bindparam("site"))
            .values(
                cdrs_received=sites.c.cdrs_received + sa.bindparam("new"),
                last_seen_ms=sa.bindparam("seen"),
            )
        )
        rows = [{"site": s, "new": n, "seen": ms} for s, (n, ms) in sorted(counts.items())]
        if rows:
            conn.execute(stmt, rows)


# Inserts rows whose (site, id) is new; returns the ids that were inserted.
_Inserter = Callable[[sa.Connection, list[CdrRow]], list[str]]
# Inserts a group's new rows; returns the ids inserted, per batch.
_GroupInserter = Callable[[sa.Connection, Sequence[ParsedBatch]], Iterable[list[str]]]


def _per_batch(insert_rows: _Inserter) -> _GroupInserter:
    """A group inserter that inserts batch after batch with ``insert_rows``."""

    def insert_group(conn: sa.Connection, batches: Sequence[ParsedBatch]) -> Iterator[list[str]]:
        for batch in batches:
            yield insert_rows(conn, list(batch.rows.values())) if batch.rows else []

    return insert_group


def _copy_group(conn: sa.Connection, batches: Sequence[ParsedBatch]) -> list[list[str]]:
    """The whole group by one COPY; each new key is credited to the first batch holding it."""
    new = copy_new_rows(conn, [row for batch in batches for row in batch.rows.values()])
    credited = []
    for batch in batches:
        ids = [cdr_id for cdr_id in batch.rows if (batch.site_id, cdr_id) in new]
        new.difference_update((batch.site_id, cdr_id) for cdr_id in ids)
        credited.append(ids)
    return credited


class _AlreadyStored(Exception):
    """Some rows of the group were stored before; it takes the careful path."""


def _insert_new_sqlite(conn: sa.Connection, rows: list[CdrRow]) -> list[str]:
    """Insert without RETURNING; raises _AlreadyStored unless every row was new."""
    stored = 0
    with _driver_cursor(conn) as cursor:
        for chunk in _statement_chunks(rows):
            cursor.execute(_sqlite_insert_sql(len(chunk), returning=False), _flat(chunk))
            stored += cursor.rowcount
    if stored != len(rows):
        raise _AlreadyStored
    return [row.cdr_id for row in rows]


def _insert_sqlite(conn: sa.Connection, rows: list[CdrRow]) -> list[str]:
    """Multi-row INSERT ... RETURNING: the ids that were new."""
    inserted: list[str] = []
    with _driver_cursor(conn) as cursor:
        for chunk in _statement_chunks(rows):
            cursor.execute(_sqlite_insert_sql(len(chunk), returning=True), _flat(chunk))
            inserted.extend(cdr_id for (cdr_id,) in cursor.fetchall())
    return inserted


@contextlib.contextmanager
def _driver_cursor(conn: sa.Connection) -> Iterator[Any]:
    """A cursor of the DBAPI connection inside ``conn``'s transaction.

    SQLAlchemy's per-row parameter and result processing costs more than SQLite's insert
    itself at ingest rates; rows are already flat tuples in column order, so they go to
    the driver as they are.
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    finally:
        cursor.close()


def _statement_chunks(rows: list[CdrRow]) -> Iterator[list[CdrRow]]:
    per_statement = _SQLITE_MAX_VARIABLES // len(_COLUMNS)
    for first in range(0, len(rows), per_statement):
        yield rows[first : first + per_statement]


def _flat(rows: list[CdrRow]) -> list[Any]:
    return list(itertools.chain.from_iterable(rows))


@functools.cache
def _sqlite_insert_sql(count: int, returning: bool) -> str:
    one = "(" + ",".join("?" * len(_COLUMNS)) + ")"
    # Only column names from the schema and placeholders go into the text; values are bound.
    return (
        f"INSERT INTO cdrs ({','.join(_COLUMNS)}) VALUES {','.join([one] * count)} "  # noqa: S608
        "ON CONFLICT (site_id, cdr_id) DO NOTHING" + (" RETURNING cdr_id" if returning else "")
    )
