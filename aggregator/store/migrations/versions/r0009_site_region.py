"""A region per directory site, for the console's sites page: ``directory_sites.region``.

Optional text (aggregator/directory/model.py, ``Site.region``); sites already in the
directory have none until an admin gives them one.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the nullable column."""
    op.add_column("directory_sites", sa.Column("region", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop it; the routing tables never held it."""
    with op.batch_alter_table("directory_sites") as batch:
        batch.drop_column("region")
