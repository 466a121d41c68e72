"""Price-protected legs: leg A's requested limit, and each order's reference price and limit.

``trades.price_x`` is the request's limit for leg A (NULL: none). ``orders.reference_price``
and ``orders.limit_price`` are written with a limit IOC order's intent, before it is sent, so
a restart resends it with the same limit; both are NULL for a market order (every order stored
before this revision).

Revision ID: 0006_prices
Revises: 0005_venues
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_prices"
down_revision: str | None = "0005_venues"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("price_x", sa.Float, nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("reference_price", sa.Float, nullable=True))
        batch.add_column(sa.Column("limit_price", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("limit_price")
        batch.drop_column("reference_price")
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("price_x")
