"""Monthly partitions of the CDR table on PostgreSQL (SQLite keeps one plain table).

Theory of operation: on PostgreSQL ``cdrs`` is partitioned by range of ``started_ms``, one
partition per UTC calendar month, named ``cdrs_pYYYYMM``. A unique key on a partitioned
table must hold the partition key, so the dedupe key is (site id, CDR id, start): a
CDR's start never changes between deliveries (a site resends the same record), so this
key refuses exactly the duplicates (site id, CDR id) did. The primary key is (id, start).

Partitions are made by three paths, each creating only what is missing, under one
advisory lock so nodes never race:

- the migration to revision 0007 (``partition_cdrs``) moves existing rows into a
  partition per month they fall in;
- every start (``migrate.upgrade``), and then a daily task of each node
  (``make_ahead``), creates this month and ``MONTHS_AHEAD`` more;
- the COPY ingest (``Coverage.ensure``) checks each group's months against the
  partitions it knows (re-read at most every ``REFRESH_S``) and creates a missing one,
  in its own short transaction before the group's, so a CDR of any month is stored.

There is no default partition: a row always lands in its month. Retention
(``drop_months_before``) drops whole partitions; the hourly and daily rollups are not
touched, so reports over dropped months still answer. A CDR of a dropped month that
arrives later (from a box offline for longer than the retention) recreates its month,
and the next retention run drops it again.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2
REFRESH_S = 60.0
# pg_advisory_xact_lock key: "cdrparts" in ASCII.
_LOCK_KEY = 0x6364727061727473
_NAME = re.compile(r"^cdrs_p(\d{4})(\d{2})$")
_INDEXES = (
    ("ix_cdrs_site_started", "site_id, started_ms, id"),
    ("ix_cdrs_started", "started_ms, id"),
    ("ix_cdrs_caller_number", "caller_number, started_ms"),
    ("ix_cdrs_callee_number", "callee_number, started_ms"),
)


@dataclass(frozen=True, order=True)
class Month:
    """A UTC calendar month, the span of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, ms: int) -> Month:
        """The month holding epoch millisecond ``ms``."""
        when = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
        return cls(when.year, when.month)

    @classmethod
    def named(cls, name: str) -> Month | None:
        """The month a partition's name stands for (None: not a month partition)."""
        found = _NAME.match(name)
        return cls(int(found.group(1)), int(found.group(2))) if found else None

    def plus(self, months: int) -> Month:
        """The month ``months`` later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def name(self) -> str:
        return f"cdrs_p{self.year:04d}{self.month:02d}"

    @property
    def start_ms(self) -> int:
        first = datetime.datetime(self.year, self.month, 1, tzinfo=datetime.UTC)
        return int(first.timestamp() * 1000)


def this_month() -> Month:
    """The current UTC month."""
    return Month.of(int(time.time() * 1000))


def is_partitioned(conn: sa.Connection) -> bool:
    """Whether ``cdrs`` is a partitioned table here (PostgreSQL after revision 0007)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.scalar(sa.text("SELECT relkind FROM pg_class WHERE oid = 'cdrs'::regclass"))
    return bool(kind == "p")


def existing_months(conn: sa.Connection) -> set[Month]:
    """The months ``cdrs`` has a partition for."""
    names = conn.scalars(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'cdrs'::regclass"
        )
    )
    return {m for m in map(Month.named, names) if m is not None}


def create_months(conn: sa.Connection, months: Iterable[Month], table: str = "cdrs") -> int:
    """Create the partitions of ``months`` that ``table`` lacks; how many were created."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    have = existing_months(conn) if table == "cdrs" else set()
    missing = sorted(set(months) - have)
    for month in missing:
        # Only names and bounds computed here go into the text.
        conn.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {month.name} PARTITION OF {table} "
                f"FOR VALUES FROM ({month.start_ms}) TO ({month.plus(1).start_ms})"
            )
        )
    return len(missing)


def ensure_ahead(conn: sa.Connection, now: Month | None = None) -> None:
    """At start: partitions for this month and ``MONTHS_AHEAD`` more."""
    if is_partitioned(conn):
        first = now or this_month()
        create_months(conn, (first.plus(n) for n in range(MONTHS_AHEAD + 1)))


def make_ahead(engine: sa.Engine) -> None:
    """``ensure_ahead`` in a transaction of its own (the daily task of a running node)."""
    with engine.begin() as conn:
        ensure_ahead(conn)


def drop_months_before(conn: sa.Connection, first_kept: Month) -> list[str]:
    """Drop every partition of a month before ``first_kept``; the names dropped."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
    dropped = sorted(m for m in existing_months(conn) if m < first_kept)
    for month in dropped:
        conn.execute(sa.text(f"DROP TABLE {month.name}"))
    return [m.name for m in dropped]


def drop_old_months(engine: sa.Engine, keep_months: int) -> tuple[Month, list[str]]:
    """Retention: drop months before the current one and ``keep_months`` before it.

    Returns the first month kept and the partitions dropped.
    """
    first_kept = this_month().plus(-keep_months)
    with engine.begin() as conn:
        dropped = drop_months_before(conn, first_kept)
    COVERAGE.forget(engine)
    if dropped:
        log.info("CDR months dropped", extra={"partitions": dropped, "keep_months": keep_months})
    return first_kept, dropped


def partition_cdrs(conn: sa.Connection, now: Month | None = None) -> None:
    """Turn a plain ``cdrs`` into a monthly partitioned one, moving its rows (revision 0007)."""
    statements = [
        "ALTER SEQUENCE cdrs_id_seq OWNED BY NONE",
        "CREATE TABLE cdrs_partitioned (LIKE cdrs INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (started_ms)",
    ]
    for statement in statements:
        conn.execute(sa.text(statement))
    first = now or this_month()
    months = {Month.of(int(ms)) for ms in conn.scalars(sa.text(_MONTHS_HELD))}
    months.update(first.plus(n) for n in range(MONTHS_AHEAD + 1))
    create_months(conn, months, table="cdrs_partitioned")
    for statement in (
        "INSERT INTO cdrs_partitioned SELECT * FROM cdrs",
        "DROP TABLE cdrs",
        "ALTER TABLE cdrs_partitioned RENAME TO cdrs",
        "ALTER SEQUENCE cdrs_id_seq OWNED BY cdrs.id",
        "ALTER TABLE cdrs ADD CONSTRAINT cdrs_pkey PRIMARY KEY (id, started_ms)",
        "ALTER TABLE cdrs ADD CONSTRAINT uq_cdrs_site_cdr UNIQUE (site_id, cdr_id, started_ms)",
        *(f"CREATE INDEX {name} ON cdrs ({columns})" for name, columns in _INDEXES),
    ):
        conn.execute(sa.text(statement))


# The first millisecond of each month rows are held for (one row per month).
_MONTHS_HELD = (
    "SELECT DISTINCT (extract(epoch FROM date_trunc('month', "
    "to_timestamp(started_ms / 1000.0) AT TIME ZONE 'UTC')) * 1000)::bigint FROM cdrs"
)


def unpartition_cdrs(conn: sa.Connection) -> None:
    """Back to one plain ``cdrs`` table with the first release's keys (downgrade of 0007)."""
    for statement in (
        "ALTER SEQUENCE cdrs_id_seq OWNED BY NONE",
        "CREATE TABLE cdrs_plain (LIKE cdrs INCLUDING DEFAULTS)",
        "INSERT INTO cdrs_plain SELECT * FROM cdrs",
        "DROP TABLE cdrs",
        "ALTER TABLE cdrs_plain RENAME TO cdrs",
        "ALTER SEQUENCE cdrs_id_seq OWNED BY cdrs.id",
        "ALTER TABLE cdrs ADD CONSTRAINT cdrs_pkey PRIMARY KEY (id)",
        "ALTER TABLE cdrs ADD CONSTRAINT uq_cdrs_site_cdr UNIQUE (site_id, cdr_id)",
        *(f"CREATE INDEX {name} ON cdrs ({columns})" for name, columns in _INDEXES),
    ):
        conn.execute(sa.text(statement))


@dataclass
class _Known:
    months: set[Month] = field(default_factory=set)
    read_at: float = float("-inf")


class Coverage:
    """Which months have a partition, as one process last read them; creates missing ones."""

    def __init__(self) -> None:
        self._known: weakref.WeakKeyDictionary[sa.Engine, _Known] = weakref.WeakKeyDictionary()

    def ensure(self, engine: sa.Engine, starts_ms: list[int]) -> None:
        """Make sure a partition holds every start in ``starts_ms`` (epoch ms)."""
        known = self._known.setdefault(engine, _Known())
        fresh = time.monotonic() - known.read_at < REFRESH_S
        first, last = Month.of(min(starts_ms)), Month.of(max(starts_ms))
        if fresh and all(first.plus(n) in known.months for n in range(_span(first, last))):
            return
        needed = {Month.of(ms) for ms in starts_ms}
        with engine.begin() as conn:
            if not is_partitioned(conn):
                return
            if not needed <= existing_months(conn):
                create_months(conn, needed)
            known.months = existing_months(conn)
        known.read_at = time.monotonic()

    def forget(self, engine: sa.Engine) -> None:
        """Read the partitions again at the next ``ensure`` (after retention dropped some)."""
        self._known.pop(engine, None)


def _span(first: Month, last: Month) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


COVERAGE = Coverage()


def schema_differences(conn: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    """Alembic's differences between ``metadata`` and the database, less partitioning.

    ``schema.py`` describes the plain table SQLite has; on PostgreSQL the partitions
    themselves and the keys that hold ``started_ms`` are the expected differences.
    """
    context = MigrationContext.configure(conn, opts={"include_object": _not_a_partition})
    return [d for d in compare_metadata(context, metadata) if not _partition_key(d)]


def _not_a_partition(
    obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any
) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not _NAME.match(table or "")


def _partition_key(difference: Any) -> bool:
    """A change to ``uq_cdrs_site_cdr``, which holds ``started_ms`` on PostgreSQL."""
    if not isinstance(difference, tuple) or len(difference) < 2:
        return False
    constraint = difference[1]
    return getattr(constraint, "name", None) == "uq_cdrs_site_cdr"
