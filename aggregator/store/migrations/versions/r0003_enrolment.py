"""Enrolment: ``enrolment_codes`` (one-time codes by site, hashed) and ``site_keys``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create both tables, empty: sites in HQ's YAML keep working as before."""
    op.create_table(
        "enrolment_codes",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("used_ms", sa.BigInteger),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "site_keys",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("public_key", sa.String(40), nullable=False, unique=True),
        sa.Column("enrolled_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
    )


def downgrade() -> None:
    """Drop both; enrolled sites are refused until listed in HQ's YAML."""
    op.drop_table("site_keys")
    op.drop_table("enrolment_codes")
