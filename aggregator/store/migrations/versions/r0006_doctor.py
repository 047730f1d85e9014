"""The doctor: ``doctor_reports``, the newest self-test report of each site.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the table, empty: sites send a report at their next start or doctor run."""
    op.create_table(
        "doctor_reports",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("findings", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    """Drop it; the site pages show no report until sites send one again."""
    op.drop_table("doctor_reports")
