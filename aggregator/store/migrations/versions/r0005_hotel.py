"""Hotel: ``hotel_postings`` (postings the PMS answered) and ``hotel_wake_ups`` (outcomes).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create both tables, empty: sites report from now on."""
    op.create_table(
        "hotel_postings",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("posting_id", sa.String(64), primary_key=True),
        sa.Column("room", sa.String(8), nullable=False),
        sa.Column("posting_number", sa.Integer, nullable=False),
        sa.Column("posting_type", sa.String(1), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("duration_s", sa.Integer, nullable=True),
        sa.Column("dialled", sa.String(20), nullable=False, server_default=""),
        sa.Column("article", sa.String(16), nullable=False, server_default=""),
        sa.Column("quantity", sa.Integer, nullable=True),
        sa.Column("fias_date", sa.String(6), nullable=False, server_default=""),
        sa.Column("fias_time", sa.String(6), nullable=False, server_default=""),
        sa.Column("answer", sa.String(2), nullable=False),
        sa.Column("answer_text", sa.String(256), nullable=False, server_default=""),
        sa.Column("queued_ms", sa.BigInteger, nullable=False),
        sa.Column("answered_ms", sa.BigInteger, nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False, server_default=""),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_hotel_postings_answered", "hotel_postings", ["answered_ms"])
    op.create_index("ix_hotel_postings_room", "hotel_postings", ["site_id", "room"])
    op.create_table(
        "hotel_wake_ups",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("outcome_id", sa.String(64), primary_key=True),
        sa.Column("room", sa.String(8), nullable=False),
        sa.Column("fias_date", sa.String(6), nullable=False, server_default=""),
        sa.Column("fias_time", sa.String(6), nullable=False, server_default=""),
        sa.Column("due_ms", sa.BigInteger, nullable=True),
        sa.Column("result", sa.String(2), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("front_desk_alerted", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("ended_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_hotel_wake_ups_ended", "hotel_wake_ups", ["ended_ms"])
    op.create_index("ix_hotel_wake_ups_room", "hotel_wake_ups", ["site_id", "room"])


def downgrade() -> None:
    """Drop both; what the sites reported is lost (they do not send it again)."""
    op.drop_table("hotel_wake_ups")
    op.drop_table("hotel_postings")
