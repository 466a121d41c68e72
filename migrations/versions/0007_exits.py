"""Exits: a trade that closes another (``ExecutionEngine.close_pair_trade``).

``trades.closes`` is the id of the DONE trade an exit reverses (NULL for an entry). A partial
unique index allows one exit per entry among exits that did not end ABORTED or FAILED: two
concurrent closes of one trade make one exit, and a close that failed may be tried again.

Revision ID: 0007_exits
Revises: 0006_prices
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_exits"
down_revision: str | None = "0006_prices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_EXIT = "closes IS NOT NULL AND state NOT IN ('ABORTED', 'FAILED')"


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(
            sa.Column(
                "closes",
                sa.String(32),
                sa.ForeignKey("trades.id", name="fk_trades_closes_trades"),
                nullable=True,
            )
        )
    op.create_index(
        "uq_trades_closes",
        "trades",
        ["closes"],
        unique=True,
        sqlite_where=sa.text(LIVE_EXIT),
        postgresql_where=sa.text(LIVE_EXIT),
    )


def downgrade() -> None:
    op.drop_index("uq_trades_closes", table_name="trades")
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("closes")
