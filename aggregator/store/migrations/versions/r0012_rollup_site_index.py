"""The hourly rollup's site rows in an index of their own: ``ix_rollup_site_hour``.

The month summary and the calls per hour of the day read only the ``site`` rows of
``cdr_rollup`` (one per site and hour), which the ``extension`` and ``trunk`` rows of the
same hours outnumber: with 50 extensions and 4 trunks a site row is one in 55, so
reading the site rows of a month through ``ix_rollup_dim_hour`` visited nearly every
page of the table. This partial index holds the site rows' hour, site and figures
(PostgreSQL: ``INCLUDE``), so those reports scan it alone (bench/RESULTS.md, "HQ
reports at 100 million CDRs").

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Build the index over the rows already there."""
    op.create_index(
        "ix_rollup_site_hour",
        "cdr_rollup",
        ["hour_ms", "site_id"],
        postgresql_include=["calls", "answered", "duration_s", "billable_s"],
        postgresql_where=sa.text("dim = 'site'"),
        sqlite_where=sa.text("dim = 'site'"),
    )


def downgrade() -> None:
    """Drop it; the summaries read the site rows through ``ix_rollup_dim_hour`` again."""
    op.drop_index("ix_rollup_site_hour", "cdr_rollup")
