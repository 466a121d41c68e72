"""Initial schema: trades, orders, trade_events.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("signal_id", sa.String(length=200), nullable=True),
        sa.Column("inflight_key", sa.String(length=200), nullable=True),
        sa.Column("pair_x", sa.String(length=64), nullable=False),
        sa.Column("side_x", sa.String(length=4), nullable=False),
        sa.Column("amount_x", sa.Float(), nullable=False),
        sa.Column("pair_y", sa.String(length=64), nullable=False),
        sa.Column("side_y", sa.String(length=4), nullable=False),
        sa.Column("hedge_ratio", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint("inflight_key", name=op.f("uq_trades_inflight_key")),
        sa.UniqueConstraint("signal_id", name=op.f("uq_trades_signal_id")),
    )
    op.create_index(op.f("ix_trades_state"), "trades", ["state"], unique=False)
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trade_id", sa.String(length=32), nullable=False),
        sa.Column("leg", sa.String(length=8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=128), nullable=True),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled", sa.Float(), nullable=False),
        sa.Column("average", sa.Float(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_orders_trade_id_trades")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
        sa.UniqueConstraint("trade_id", "leg", "attempt", name=op.f("uq_orders_trade_id")),
    )
    op.create_index(op.f("ix_orders_trade_id"), "orders", ["trade_id"], unique=False)
    op.create_table(
        "trade_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trade_id", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_trade_events_trade_id_trades")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_events")),
    )
    op.create_index(op.f("ix_trade_events_trade_id"), "trade_events", ["trade_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trade_events_trade_id"), table_name="trade_events")
    op.drop_table("trade_events")
    op.drop_index(op.f("ix_orders_trade_id"), table_name="orders")
    op.drop_table("orders")
    op.drop_index(op.f("ix_trades_state"), table_name="trades")
    op.drop_table("trades")
