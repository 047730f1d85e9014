"""The emergency centre's traffic reports: answer-time buckets and the calls not answered.

``queue_rollup`` and ``queue_rollup_daily`` gain a count of answered calls per wait bucket
(aggregator/store/queue_rollup.py, ``WAIT_BUCKETS``), and ``queue_unanswered`` keeps each
queued call that was not answered. Both are filled from every CDR already stored, a chunk
of rows at a time: the buckets are added to the rollup rows those CDRs made (their other
counters stay as they are), the calls not answered inserted. On PostgreSQL ``cdrs`` is
partitioned (revision 0007); it is read through the parent table, in ``id`` order.
CDRs no longer stored cannot be counted: a rollup row older than the oldest CDR keeps
zero in its buckets.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

from aggregator.store.queue_rollup import (
    BUCKET_COLUMNS,
    QueueCall,
    add_unanswered,
    answer_time_counts,
    daily_queue_totals,
    queue_call,
    queue_totals,
)
from drivers.sync.records import RecordError, parse_cdr

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 5000
_TABLES = (("queue_rollup", "hour_ms"), ("queue_rollup_daily", "day_ms"))
# The columns read, as revision 0007 has them.
cdrs = sa.table(
    "cdrs",
    sa.column("id", sa.BigInteger),
    sa.column("site_id", sa.String),
    sa.column("cdr_id", sa.String),
    sa.column("caller_number", sa.String),
    sa.column("started_ms", sa.BigInteger),
    sa.column("ended_ms", sa.BigInteger),
    sa.column("billable_s", sa.Float),
    sa.column("doc", sa.LargeBinary),
)


def upgrade() -> None:
    """Add the bucket columns and ``queue_unanswered``, then fill both from stored CDRs."""
    for name, _ in _TABLES:
        for column in BUCKET_COLUMNS:
            op.add_column(
                name, sa.Column(column, sa.BigInteger, nullable=False, server_default="0")
            )
    op.create_table(
        "queue_unanswered",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("cdr_id", sa.String(64), primary_key=True),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("caller_number", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("wait_s", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_queue_unanswered_started", "queue_unanswered", ["started_ms", "site_id", "cdr_id"]
    )
    op.create_index(
        "ix_queue_unanswered_caller", "queue_unanswered", ["site_id", "caller_number", "started_ms"]
    )
    conn = op.get_bind()
    for calls in _stored_calls(conn):
        _add_buckets(conn, calls)
        add_unanswered(conn, calls, offered=False)


def _stored_calls(conn: sa.Connection) -> Iterator[list[QueueCall]]:
    """The queued calls of the stored CDRs, a chunk at a time; invalid queue fields skipped."""
    c = cdrs.c
    query = sa.select(c.id, c.site_id, c.cdr_id, c.caller_number, c.started_ms, c.ended_ms,
                      c.billable_s, c.doc).order_by(c.id).limit(_CHUNK)  # fmt: skip
    after = None
    while rows := conn.execute(query if after is None else query.where(c.id > after)).all():
        calls = []
        for _id, site_id, cdr_id, caller, started_ms, ended_ms, billable_s, doc in rows:
            try:
                variables = parse_cdr(doc).variables
                call = queue_call(site_id, started_ms, ended_ms, billable_s, variables, cdr_id,
                                  caller)  # fmt: skip
            except RecordError:
                continue
            if call is not None:
                calls.append(call)
        yield calls
        after = rows[-1].id


def _add_buckets(conn: sa.Connection, calls: Sequence[QueueCall]) -> None:
    """Add the calls' answer-time buckets to the rollup rows their CDRs already counted."""
    hourly = queue_totals(calls)
    for (name, period), totals in zip(_TABLES, (hourly, daily_queue_totals(hourly)), strict=True):
        columns = ("site_id", period, "queue", *BUCKET_COLUMNS)
        table = sa.table(name, *map(sa.column, columns))
        stmt = (
            sa.update(table)
            .where(
                table.c.site_id == sa.bindparam("k_site"),
                table.c[period] == sa.bindparam("k_at"),
                table.c.queue == sa.bindparam("k_queue"),
            )
            .values({n: table.c[n] + sa.bindparam(f"v_{n}") for n in BUCKET_COLUMNS})
        )
        values = [
            {"k_site": site, "k_at": at, "k_queue": queue}
            | {f"v_{n}": count for n, count in answer_time_counts(t).items()}
            for (site, at, queue), t in totals.items()
        ]
        if values:
            conn.execute(stmt, values)


def downgrade() -> None:
    """Drop them; the CDRs still hold every queue field."""
    op.drop_index("ix_queue_unanswered_caller", "queue_unanswered")
    op.drop_index("ix_queue_unanswered_started", "queue_unanswered")
    op.drop_table("queue_unanswered")
    for name, _ in _TABLES:
        with op.batch_alter_table(name) as batch:
            for column in BUCKET_COLUMNS:
                batch.drop_column(column)
