"""CDRs partitioned by month on PostgreSQL (aggregator/store/partitions.py); SQLite unchanged.

The rows are moved into one partition per month they fall in; the dedupe key becomes
(site id, CDR id, start) and the primary key (id, start), since a partitioned table's
keys must hold its partition key. Runs in the migration's transaction: on failure the
table stays as it was.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from aggregator.store.partitions import partition_cdrs, unpartition_cdrs

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Partition ``cdrs`` by month of ``started_ms`` on PostgreSQL."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        partition_cdrs(conn)


def downgrade() -> None:
    """One plain ``cdrs`` table again, keyed by (site id, CDR id)."""
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        unpartition_cdrs(conn)
