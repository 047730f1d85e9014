"""The schema as first released, created by ``create_all`` before there were migrations.

Databases from that release have no ``alembic_version`` table; they are stamped with this
revision and upgraded from it (aggregator/store/migrate.py). There is nothing to run.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing: the first release's tables are already there."""


def downgrade() -> None:
    """Nothing below the first release."""
