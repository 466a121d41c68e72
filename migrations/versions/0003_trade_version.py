"""A version number on each trade, bumped by every change to its facts.

The store compares it on every write (optimistic concurrency): a write succeeds only on the
trade exactly as the writer last saw it, so the writer can compute the new record in memory
instead of reading it back.

Revision ID: 0003_trade_version
Revises: 0002_trade_leases
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_trade_version"
down_revision: str | None = "0002_trade_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("version")
