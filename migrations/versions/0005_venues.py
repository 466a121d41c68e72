"""The venue of each leg and each order, for trades across two exchanges.

``trades.venue_x`` / ``venue_y`` and ``orders.venue`` are NULL for a single-exchange trade
(every trade stored before this revision): such a trade is recovered by an engine given one
exchange, as before. ``inflight_key`` grows to hold two ``symbol@venue`` markets.

Revision ID: 0005_venues
Revises: 0004_order_fees
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_venues"
down_revision: str | None = "0004_order_fees"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("venue_x", sa.String(32), nullable=True))
        batch.add_column(sa.Column("venue_y", sa.String(32), nullable=True))
        batch.alter_column(
            "inflight_key",
            type_=sa.String(300),
            existing_type=sa.String(200),
            existing_nullable=True,
        )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("venue", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("venue")
    with op.batch_alter_table("trades") as batch:
        batch.alter_column(
            "inflight_key",
            type_=sa.String(200),
            existing_type=sa.String(300),
            existing_nullable=True,
        )
        batch.drop_column("venue_y")
        batch.drop_column("venue_x")
