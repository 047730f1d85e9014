"""Contact-centre reports: the per-queue and per-agent rollups, back-filled, and the agent
state log.

``queue_rollup`` (hourly), ``queue_rollup_daily`` and ``agent_rollup`` are filled from
the queue fields of every CDR already stored, a chunk of rows at a time, added up the way
ingest does (aggregator/store/queue_rollup.py), with the counters these tables have
(the answer-time buckets come with revision 0008). ``agent_states`` starts empty: sites
send their agents' changes from now on.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aggregator.store.queue_rollup import SUMMED_0004, add_to_queue_rollup, queue_call
from drivers.sync.records import RecordError, parse_cdr

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 5000
# The columns read, as revision 0003 has them.
cdrs = sa.table(
    "cdrs",
    sa.column("id", sa.BigInteger),
    sa.column("site_id", sa.String),
    sa.column("started_ms", sa.BigInteger),
    sa.column("ended_ms", sa.BigInteger),
    sa.column("billable_s", sa.Float),
    sa.column("doc", sa.LargeBinary),
)
_COUNTS = ("offered", "answered", "abandoned", "overflowed", "timeout", "callback",
           "interrupted", "sl_met")  # fmt: skip


def upgrade() -> None:
    """Create both tables and add up the queued calls of the CDRs stored so far."""
    for name, period, index in (
        ("queue_rollup", "hour_ms", "ix_queue_rollup_hour"),
        ("queue_rollup_daily", "day_ms", "ix_queue_rollup_daily_day"),
    ):
        op.create_table(
            name,
            sa.Column("site_id", sa.String(64), primary_key=True),
            sa.Column(period, sa.BigInteger, primary_key=True),
            sa.Column("queue", sa.String(64), primary_key=True),
            *(sa.Column(count, sa.BigInteger, nullable=False) for count in _COUNTS),
            sa.Column("wait_s", sa.Float, nullable=False),
            sa.Column("talk_s", sa.Float, nullable=False),
            sa.Column("max_wait_s", sa.Float, nullable=False),
        )
        op.create_index(index, name, [period, "site_id"])
    op.create_table(
        "agent_rollup",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("hour_ms", sa.BigInteger, primary_key=True),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("answered", sa.BigInteger, nullable=False),
        sa.Column("talk_s", sa.Float, nullable=False),
    )
    op.create_index("ix_agent_rollup_hour", "agent_rollup", ["hour_ms", "site_id"])
    _agent_states()
    _back_fill(op.get_bind())


def _agent_states() -> None:
    op.create_table(
        "agent_states",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("agent", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False, server_default=""),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agent_states_agent_at", "agent_states", ["site_id", "agent", "at_ms"])
    op.create_index("ix_agent_states_at", "agent_states", ["at_ms"])


def _back_fill(conn: sa.Connection) -> None:
    """Every stored CDR's queue figures; CDRs whose queue fields fail are skipped."""
    after = None
    while True:
        c = cdrs.c
        query = sa.select(c.id, c.site_id, c.started_ms, c.ended_ms, c.billable_s, c.doc)
        query = query.order_by(c.id).limit(_CHUNK)
        rows = conn.execute(query if after is None else query.where(cdrs.c.id > after)).all()
        if not rows:
            return
        calls = []
        for _id, site_id, started_ms, ended_ms, billable_s, doc in rows:
            try:
                variables = parse_cdr(doc).variables
                call = queue_call(site_id, started_ms, ended_ms, billable_s, variables)
            except RecordError:
                continue
            if call is not None:
                calls.append(call)
        add_to_queue_rollup(conn, calls, SUMMED_0004)
        after = rows[-1].id


def downgrade() -> None:
    """Drop them; the CDRs still hold every queue field (the agent state log is lost)."""
    op.drop_table("agent_states")
    op.drop_index("ix_agent_rollup_hour", "agent_rollup")
    op.drop_table("agent_rollup")
    for name, index in (
        ("queue_rollup_daily", "ix_queue_rollup_daily_day"),
        ("queue_rollup", "ix_queue_rollup_hour"),
    ):
        op.drop_index(index, name)
        op.drop_table(name)
