"""Callback status in the lost-calls list: ``queue_callbacks`` and
``queue_unanswered.callback_offered``.

``queue_callbacks`` keeps each callback a caller took, its tries and how it ended
(aggregator/store/queue_callbacks.py); it is filled from every CDR already stored, a
chunk of rows at a time, read through the parent ``cdrs`` table on partitioned
PostgreSQL (revision 0007). ``callback_offered`` says that a lost caller heard the
callback offer; sites write it from this release on, so calls stored before read false.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from aggregator.store.queue_callbacks import CallbackRecord, add_callbacks, callback_record
from drivers.sync.records import RecordError, parse_cdr

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_CHUNK = 5000
# The columns read, as revision 0010 has them.
cdrs = sa.table(
    "cdrs",
    sa.column("id", sa.BigInteger),
    sa.column("site_id", sa.String),
    sa.column("caller_number", sa.String),
    sa.column("started_ms", sa.BigInteger),
    sa.column("doc", sa.LargeBinary),
)


def upgrade() -> None:
    """Add the column and the table, then fill the table from the stored CDRs."""
    op.add_column(
        "queue_unanswered",
        sa.Column("callback_offered", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "queue_callbacks",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(256), primary_key=True),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answered_ms", sa.BigInteger),
    )
    op.create_index(
        "ix_queue_callbacks_caller", "queue_callbacks", ["site_id", "caller", "started_ms"]
    )
    conn = op.get_bind()
    for records in _stored_callbacks(conn):
        add_callbacks(conn, records)


def _stored_callbacks(conn: sa.Connection) -> Iterator[list[CallbackRecord]]:
    """The callback records of the stored CDRs, a chunk at a time; invalid ones skipped."""
    c = cdrs.c
    query = sa.select(c.id, c.site_id, c.caller_number, c.started_ms, c.doc)
    query = query.order_by(c.id).limit(_CHUNK)
    after = None
    while rows := conn.execute(query if after is None else query.where(c.id > after)).all():
        records = []
        for _id, site_id, caller, started_ms, doc in rows:
            try:
                cdr = parse_cdr(doc)
                record = callback_record(site_id, cdr.call_id, caller, started_ms, cdr.variables)
            except RecordError:
                continue
            if record is not None:
                records.append(record)
        yield records
        after = rows[-1].id


def downgrade() -> None:
    """Drop them; the CDRs still hold every callback field."""
    op.drop_index("ix_queue_callbacks_caller", "queue_callbacks")
    op.drop_table("queue_callbacks")
    with op.batch_alter_table("queue_unanswered") as batch:
        batch.drop_column("callback_offered")
