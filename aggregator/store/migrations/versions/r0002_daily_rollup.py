"""Daily CDR rollups: ``cdr_rollup_daily``, filled from the hourly rollup already kept.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table and add up every stored hour into its UTC day."""
    op.create_table(
        "cdr_rollup_daily",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("day_ms", sa.BigInteger, primary_key=True),
        sa.Column("dim", sa.String(16), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("answered", sa.BigInteger, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("billable_s", sa.Float, nullable=False),
    )
    op.create_index("ix_rollup_daily_dim_day", "cdr_rollup_daily", ["dim", "day_ms"])
    op.execute(
        "INSERT INTO cdr_rollup_daily "
        "SELECT site_id, hour_ms - hour_ms % 86400000, dim, key, sum(calls), sum(answered), "
        "sum(duration_s), sum(billable_s) FROM cdr_rollup GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    """Drop the daily rollup; the hourly one still holds everything."""
    op.drop_index("ix_rollup_daily_dim_day", "cdr_rollup_daily")
    op.drop_table("cdr_rollup_daily")
