"""The fees each order paid, as the exchange reported them.

One JSON text column (``{"currency": cost, ...}``, NULL when none was reported), so an order
paying in several currencies needs no second table; the order's average price is already
stored (``average``).

Revision ID: 0004_order_fees
Revises: 0003_trade_version
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_order_fees"
down_revision: str | None = "0003_trade_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("fees", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("fees")
