"""SQLAlchemy models: the durable truth about trades, their orders and their history.

Derived numbers (leg fills, unwound amount) are not stored on the trade: they are sums over
its order rows, so they can never disagree with the orders.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pairexec.persistence.sql import LIVE_EXIT

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TradeRow(Base):
    __tablename__ = "trades"
    __table_args__ = (
        Index(
            "uq_trades_closes",
            "closes",
            unique=True,
            sqlite_where=text(LIVE_EXIT),
            postgresql_where=text(LIVE_EXIT),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    signal_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    """Idempotency key from the bot: the unique constraint makes 'one trade per signal' hold
    across processes and restarts."""
    inflight_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    """market_x|market_y|side_x|side_y (a market: ``symbol`` or ``symbol@venue``) while the
    trade is not terminal, NULL after: the unique constraint allows one in-flight trade per key
    (NULLs never collide)."""
    pair_x: Mapped[str] = mapped_column(String(64))
    side_x: Mapped[str] = mapped_column(String(4))
    amount_x: Mapped[float] = mapped_column(Float)
    pair_y: Mapped[str] = mapped_column(String(64))
    side_y: Mapped[str] = mapped_column(String(4))
    hedge_ratio: Mapped[float] = mapped_column(Float)
    venue_x: Mapped[str | None] = mapped_column(String(32))
    """Leg A's venue (a name of the engine's exchange mapping); NULL with a single exchange."""
    venue_y: Mapped[str | None] = mapped_column(String(32))
    price_x: Mapped[float | None] = mapped_column(Float)
    """Leg A's limit price as the request gave it (NULL: none)."""
    closes: Mapped[str | None] = mapped_column(
        ForeignKey("trades.id", name="fk_trades_closes_trades")
    )
    """The DONE trade this exit closes (NULL: an entry). At most one live exit per entry."""
    state: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, server_default="0")
    """Bumped by every change to the trade or its orders: writes compare it (optimistic
    concurrency), so a writer knows the row is exactly what it last read."""
    owner: Mapped[str | None] = mapped_column(String(100))
    """The engine process driving the trade (host:pid:nonce), while its lease lasts."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Until when ``owner`` may drive the trade without renewing; after it, anyone may claim."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("trade_id", "leg", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trade_id: Mapped[str] = mapped_column(ForeignKey("trades.id"), index=True)
    leg: Mapped[str] = mapped_column(String(8))
    attempt: Mapped[int] = mapped_column(Integer)
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    venue: Mapped[str | None] = mapped_column(String(32))
    """The venue the order went to (sends, lookups and cancels go there only)."""
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    filled: Mapped[float] = mapped_column(Float, default=0.0)
    average: Mapped[float | None] = mapped_column(Float)
    reference_price: Mapped[float | None] = mapped_column(Float)
    """A limit IOC order's reference (the best price on its side when it was decided)."""
    limit_price: Mapped[float | None] = mapped_column(Float)
    """A limit IOC order's limit, written with its intent (NULL: a market order)."""
    fees: Mapped[str | None] = mapped_column(Text)
    """The fees the exchange reported for the order, as JSON ``{"currency": cost, ...}``
    (NULL: none reported)."""
    sends: Mapped[int] = mapped_column(Integer, default=0)
    """How many times create_order was called with this client id (a resend needs a lookup
    that confirmed the order absent first)."""
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TradeEventRow(Base):
    """The journal: one row per trade transition or order fact, in order."""

    __tablename__ = "trade_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trade_id: Mapped[str] = mapped_column(ForeignKey("trades.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(Text)
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
