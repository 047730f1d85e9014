"""The per-queue rollup per site-local day: ``queue_rollup_local`` and ``queue_sites``.

Every site with queued calls (rows in ``queue_rollup``) is listed in ``queue_sites``;
the local-day rows are filled from the CDRs already stored, a chunk at a time, for the
sites the directory places outside UTC (aggregator/store/queue_local.py). A site's rows
are complete from the day after the last hour its hourly queue rollup holds that no
stored CDR backs (CDRs dropped by retention: their calls are in the hourly rollup only),
or from the start when there is none; the report reads the hourly rollup before that
day.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from aggregator.store.queue_local import (
    NO_ZONE,
    add_in_zones,
    directory_zones,
    local_day,
    set_since,
)
from aggregator.store.queue_rollup import HOUR_MS, QueueCall, queue_call
from drivers.sync.records import RecordError, parse_cdr

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 5000
_COUNTS = ("offered", "answered", "abandoned", "overflowed", "timeout", "callback",
           "interrupted", "sl_met")  # fmt: skip
_BUCKETS = ("answered_0_5", "answered_5_10", "answered_10_20", "answered_20_30",
            "answered_30_60", "answered_60_120", "answered_120_up")  # fmt: skip
# The columns read, as revision 0009 has them.
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
queue_rollup = sa.table("queue_rollup", sa.column("site_id", sa.String),
                        sa.column("hour_ms", sa.BigInteger))  # fmt: skip
directory_sites = sa.table("directory_sites", sa.column("id", sa.String))


def upgrade() -> None:
    """Create both tables, then fill them from the stored CDRs."""
    op.create_table(
        "queue_rollup_local",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("tz", sa.String(64), primary_key=True),
        sa.Column("day", sa.BigInteger, primary_key=True),
        sa.Column("queue", sa.String(64), primary_key=True),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _COUNTS),
        sa.Column("wait_s", sa.Float, nullable=False),
        sa.Column("talk_s", sa.Float, nullable=False),
        sa.Column("max_wait_s", sa.Float, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0") for name in _BUCKETS),
    )
    op.create_index("ix_queue_rollup_local_day", "queue_rollup_local", ["day", "site_id"])
    op.create_table(
        "queue_sites",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("tz", sa.String(64), nullable=False),
        sa.Column("since_day", sa.BigInteger, nullable=False),
    )
    conn = op.get_bind()
    queued = conn.execute(sa.select(queue_rollup.c.site_id).distinct()).scalars().all()
    set_since(conn, dict.fromkeys(queued, (NO_ZONE, 0)))
    zones = directory_zones(conn, conn.execute(sa.select(directory_sites.c.id)).scalars().all())
    if zones:
        for calls in _stored_calls(conn, sorted(zones)):
            add_in_zones(conn, calls, zones)
        set_since(conn, {site: (tz.key, _since(conn, site, tz)) for site, tz in zones.items()})


def _stored_calls(conn: sa.Connection, site_ids: list[str]) -> Iterator[list[QueueCall]]:
    """The queued calls of the sites' stored CDRs, a chunk at a time; invalid ones skipped."""
    c = cdrs.c
    query = sa.select(c.id, c.site_id, c.cdr_id, c.caller_number, c.started_ms, c.ended_ms,
                      c.billable_s, c.doc).where(c.site_id.in_(site_ids))  # fmt: skip
    query = query.order_by(c.id).limit(_CHUNK)
    after = None
    while rows := conn.execute(query if after is None else query.where(c.id > after)).all():
        yield [call for row in rows if (call := _call(row)) is not None]
        after = rows[-1].id


def _call(row: Sequence[Any]) -> QueueCall | None:
    _id, site_id, cdr_id, caller, started_ms, ended_ms, billable_s, doc = row
    try:
        variables = parse_cdr(doc).variables
        return queue_call(site_id, started_ms, ended_ms, billable_s, variables, cdr_id, caller)
    except RecordError:
        return None


def _since(conn: sa.Connection, site_id: str, tz: ZoneInfo) -> int:
    """The first local day from which the site's stored CDRs back all its rollup hours."""
    first = conn.scalar(sa.select(sa.func.min(cdrs.c.started_ms)).where(cdrs.c.site_id == site_id))
    q = queue_rollup.c
    unbacked = sa.select(sa.func.max(q.hour_ms)).where(q.site_id == site_id)
    if first is not None:
        unbacked = unbacked.where(q.hour_ms < first - first % HOUR_MS)
    last = conn.scalar(unbacked)
    return 0 if last is None else local_day(last + HOUR_MS - 1, tz) + 1


def downgrade() -> None:
    """Drop both; the hourly rollup still answers every report."""
    op.drop_table("queue_sites")
    op.drop_index("ix_queue_rollup_local_day", "queue_rollup_local")
    op.drop_table("queue_rollup_local")
