"""The trade store: every durable fact about trades goes through here, one transaction each.

Design rules:
- An order row (with its client order id) is committed before its create_order is called.
- Every change to a trade is a compare-and-set on its persisted state, so two drivers (tasks or
  processes) can never both move the same trade; the loser gets ``StaleTrade``.
- "One trade per signal id" and "one in-flight trade per pair key" are unique constraints, so
  they hold across processes, not only inside one.
- On SQLite every transaction starts with BEGIN IMMEDIATE and, inside one process, store calls
  are serialised by a lock: SQLite has one writer anyway, and this turns "database is locked"
  surprises into short waits.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool, StaticPool

from fsm.client_ids import Leg
from fsm.orders import OrderFacts, OrderStatus
from fsm.request import PairTradeRequest
from fsm.states import TERMINAL_STATES, TradeState
from migrations import alembic_config
from persistence.models import OrderRow, TradeEventRow, TradeRow
from persistence.urls import async_url, is_memory_sqlite, is_sqlite, redacted


class StoreError(RuntimeError):
    """The database cannot be used (unreachable, wrong schema...). The message says why."""


class StaleTrade(RuntimeError):
    """The trade is not in the state the caller expected: someone else moved it."""


@dataclass(frozen=True)
class TradeRecord:
    id: str
    request: PairTradeRequest
    state: TradeState
    reason: str
    created_at: datetime
    updated_at: datetime
    orders: tuple[OrderFacts, ...] = ()

    def filled(self, leg: Leg) -> float:
        return sum((o.filled for o in self.orders if o.leg is leg), 0.0)


@dataclass(frozen=True)
class EventRecord:
    trade_id: str
    from_state: TradeState | None
    to_state: TradeState
    cause: str
    client_order_id: str | None
    at: datetime


@dataclass(frozen=True)
class NewOrder:
    leg: Leg
    attempt: int
    client_order_id: str
    symbol: str
    side: str
    amount: float


@dataclass(frozen=True)
class OrderUpdate:
    client_order_id: str
    status: OrderStatus
    filled: float | None = None
    exchange_order_id: str | None = None
    average: float | None = None
    add_sends: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Change:
    """One atomic step of a trade: optionally a new order, an order update, a new state."""

    cause: str
    to_state: TradeState | None = None
    new_order: NewOrder | None = None
    order_update: OrderUpdate | None = None


@dataclass(frozen=True)
class Lease:
    """Who drives a trade, and until when that claim holds without renewal."""

    owner: str
    until: datetime


@dataclass(frozen=True)
class LeaseHolder:
    """A non-terminal trade whose lease another process holds."""

    trade_id: str
    owner: str
    until: datetime | None


@dataclass(frozen=True)
class Duplicate:
    """The request was not stored: an existing trade already holds its signal id or key."""

    existing: TradeRecord | None
    why: str


def _now() -> datetime:
    return datetime.now(timezone.utc)


class TradeStore:
    """Async access to the trades database; migrates it to the newest schema on ``open()``."""

    def __init__(self, url: str = "sqlite+aiosqlite:///:memory:") -> None:
        self.url = async_url(url)
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._sqlite = is_sqlite(self.url)
        self._lock = asyncio.Lock() if self._sqlite else None

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def crash_safe(self) -> bool:
        return not is_memory_sqlite(self.url)

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = self._create_engine()
        try:
            async with _migrating(), engine.begin() as conn:
                await conn.run_sync(_migrate_to_head)
        except StoreError:
            await engine.dispose()
            raise
        except Exception as exc:
            await engine.dispose()
            raise StoreError(f"cannot open database {redacted(self.url)}: {exc}") from exc
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None

    async def __aenter__(self) -> TradeStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _create_engine(self) -> AsyncEngine:
        if not self._sqlite:
            return create_async_engine(self.url, pool_pre_ping=True)
        if is_memory_sqlite(self.url):
            engine = create_async_engine(self.url, poolclass=StaticPool)
        else:
            engine = create_async_engine(self.url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin").
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            if not is_memory_sqlite(self.url):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Take the write lock up front: no deadlock upgrading a read to a write later.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        if self._sessions is None:
            raise StoreError("the trade store is not open (call await store.open())")
        if self._lock is None:
            async with self._sessions.begin() as session:
                yield session
            return
        async with self._lock, self._sessions.begin() as session:
            yield session

    # --- writes --------------------------------------------------------------------------

    async def create_trade(
        self, request: PairTradeRequest, lease: Lease | None = None
    ) -> TradeRecord | Duplicate:
        """Persist a PENDING trade (leased to its creator), or report the trade it duplicates."""
        now = _now()
        trade_id = uuid.uuid4().hex
        try:
            async with self._session() as session:
                session.add(
                    TradeRow(
                        id=trade_id,
                        signal_id=request.signal_id,
                        inflight_key=request.inflight_key,
                        pair_x=request.pair_x,
                        side_x=request.side_x,
                        amount_x=request.amount_x,
                        pair_y=request.pair_y,
                        side_y=request.side_y,
                        hedge_ratio=request.hedge_ratio,
                        state=TradeState.PENDING.value,
                        reason="",
                        owner=lease.owner if lease else None,
                        lease_expires_at=lease.until if lease else None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await session.flush()  # the unique constraints speak here, before the event
                session.add(
                    TradeEventRow(
                        trade_id=trade_id,
                        from_state=None,
                        to_state=TradeState.PENDING.value,
                        cause="trade accepted"
                        + (f" (signal {request.signal_id})" if request.signal_id else ""),
                        at=now,
                    )
                )
        except IntegrityError as exc:
            if not any(key in str(exc.orig) for key in ("signal_id", "inflight_key")):
                raise
            return await self._duplicate_of(request)
        return await self.load(trade_id)

    async def _duplicate_of(self, request: PairTradeRequest) -> Duplicate:
        async with self._session() as session:
            if request.signal_id is not None:
                row = await session.scalar(
                    select(TradeRow).where(TradeRow.signal_id == request.signal_id)
                )
                if row is not None:
                    return Duplicate(
                        await self._record(session, row),
                        f"signal {request.signal_id!r} already made trade {row.id}",
                    )
            row = await session.scalar(
                select(TradeRow).where(TradeRow.inflight_key == request.inflight_key)
            )
            if row is not None:
                return Duplicate(
                    await self._record(session, row),
                    f"trade {row.id} on the same pairs and sides is still in flight",
                )
        # The blocking trade finished between our insert and this read: still a rejection,
        # because at the time of the insert it was in flight.
        return Duplicate(None, "a trade on the same signal or pairs was in flight")

    async def apply(
        self, trade_id: str, expected: TradeState, change: Change, lease: Lease | None = None
    ) -> TradeRecord:
        """Apply one step atomically, if the trade is still in ``expected`` (and, with a lease,
        still owned by its owner, whose lease is renewed); else StaleTrade."""
        now = _now()
        to_state = change.to_state or expected
        async with self._session() as session:
            values: dict[str, Any] = {"state": to_state.value, "updated_at": now}
            if to_state in TERMINAL_STATES:
                values["inflight_key"] = None
            if to_state is not expected or to_state in (TradeState.PARKED, TradeState.UNKNOWN):
                values["reason"] = change.cause
            condition = [TradeRow.id == trade_id, TradeRow.state == expected.value]
            if lease is not None:
                condition.append(TradeRow.owner == lease.owner)
                values["lease_expires_at"] = lease.until
            result = await session.execute(update(TradeRow).where(*condition).values(**values))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise StaleTrade(
                    f"trade {trade_id} is no longer {expected.value}"
                    + (f" under {lease.owner}" if lease else "")
                )
            cid = None
            if change.new_order is not None:
                order = change.new_order
                cid = order.client_order_id
                session.add(
                    OrderRow(
                        trade_id=trade_id,
                        leg=order.leg.value,
                        attempt=order.attempt,
                        client_order_id=cid,
                        exchange_order_id=None,
                        symbol=order.symbol,
                        side=order.side,
                        amount=order.amount,
                        status=OrderStatus.INTENT.value,
                        filled=0.0,
                        average=None,
                        sends=0,
                        last_error="",
                        created_at=now,
                        updated_at=now,
                    )
                )
            if change.order_update is not None:
                cid = change.order_update.client_order_id
                await self._update_order(session, trade_id, change.order_update, now)
            session.add(
                TradeEventRow(
                    trade_id=trade_id,
                    from_state=expected.value,
                    to_state=to_state.value,
                    cause=change.cause,
                    client_order_id=cid,
                    at=now,
                )
            )
            row = await session.get_one(TradeRow, trade_id)
            return await self._record(session, row)

    async def _update_order(
        self, session: AsyncSession, trade_id: str, upd: OrderUpdate, now: datetime
    ) -> None:
        values: dict[str, Any] = {"status": upd.status.value, "updated_at": now}
        if upd.filled is not None:
            values["filled"] = upd.filled
        if upd.exchange_order_id is not None:
            values["exchange_order_id"] = upd.exchange_order_id
        if upd.average is not None:
            values["average"] = upd.average
        if upd.add_sends:
            values["sends"] = OrderRow.sends + upd.add_sends
        if upd.error is not None:
            values["last_error"] = upd.error
        result = await session.execute(
            update(OrderRow)
            .where(OrderRow.client_order_id == upd.client_order_id, OrderRow.trade_id == trade_id)
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StoreError(f"order {upd.client_order_id} of trade {trade_id} not found")

    # --- leases --------------------------------------------------------------------------

    async def claim(
        self,
        lease: Lease,
        *,
        dead_owners: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[str]:
        """Take over every non-terminal trade nobody holds: no owner, an expired lease, an owner
        known to be dead, or ``lease.owner`` itself. Oldest first.

        Rows being claimed by someone else right now are skipped (FOR UPDATE SKIP LOCKED on
        PostgreSQL; on SQLite the write lock taken by BEGIN IMMEDIATE serialises claimers), so
        two recoverers never get the same trade. Each claim is journaled.
        """
        now = _now()
        terminal = [s.value for s in TERMINAL_STATES]
        free = or_(
            TradeRow.owner.is_(None),
            TradeRow.lease_expires_at.is_(None),
            TradeRow.lease_expires_at < now,
            TradeRow.owner == lease.owner,
            TradeRow.owner.in_(list(dead_owners)),
        )
        query = (
            select(TradeRow)
            .where(TradeRow.state.not_in(terminal), free)
            .order_by(TradeRow.created_at, TradeRow.id)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._session() as session:
            rows = (await session.scalars(query)).all()
            for row in rows:
                if row.owner != lease.owner:
                    why = (
                        "no owner"
                        if row.owner is None
                        else f"{row.owner} is gone"
                        if row.owner in dead_owners
                        else f"lease of {row.owner} expired"
                    )
                    session.add(
                        TradeEventRow(
                            trade_id=row.id,
                            from_state=row.state,
                            to_state=row.state,
                            cause=f"claimed by {lease.owner} ({why})",
                            at=now,
                        )
                    )
                row.owner = lease.owner
                row.lease_expires_at = lease.until
            return [row.id for row in rows]

    async def renew(self, lease: Lease, trade_ids: Sequence[str]) -> int:
        """Extend ``lease`` on the trades it still owns; returns how many."""
        if not trade_ids:
            return 0
        async with self._session() as session:
            result = await session.execute(
                update(TradeRow)
                .where(TradeRow.id.in_(list(trade_ids)), TradeRow.owner == lease.owner)
                .values(lease_expires_at=lease.until)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    async def release(self, owner: str, trade_id: str | None = None) -> None:
        """Let anyone claim the trade (or every trade of ``owner``) now: the owner stopped."""
        condition = [TradeRow.owner == owner, TradeRow.lease_expires_at.is_not(None)]
        if trade_id is not None:
            condition.append(TradeRow.id == trade_id)
        async with self._session() as session:
            await session.execute(update(TradeRow).where(*condition).values(lease_expires_at=None))

    async def lease_holders(self) -> list[LeaseHolder]:
        """Non-terminal trades with a live-looking lease, and who holds them."""
        terminal = [s.value for s in TERMINAL_STATES]
        async with self._session() as session:
            rows = await session.execute(
                select(TradeRow.id, TradeRow.owner, TradeRow.lease_expires_at).where(
                    TradeRow.state.not_in(terminal),
                    TradeRow.owner.is_not(None),
                    TradeRow.lease_expires_at.is_not(None),
                )
            )
            return [LeaseHolder(tid, str(owner), until) for tid, owner, until in rows]

    # --- reads ---------------------------------------------------------------------------

    async def load(self, trade_id: str) -> TradeRecord:
        async with self._session() as session:
            row = await session.get(TradeRow, trade_id)
            if row is None:
                raise KeyError(f"no trade {trade_id}")
            return await self._record(session, row)

    async def unfinished_trade_ids(self) -> list[str]:
        """Every trade not in a terminal state, oldest first."""
        terminal = [s.value for s in TERMINAL_STATES]
        async with self._session() as session:
            rows = await session.scalars(
                select(TradeRow.id)
                .where(TradeRow.state.not_in(terminal))
                .order_by(TradeRow.created_at, TradeRow.id)
            )
            return list(rows)

    async def list_trades(
        self, state: TradeState | None = None, limit: int = 100
    ) -> list[TradeRecord]:
        async with self._session() as session:
            query = select(TradeRow).order_by(TradeRow.created_at.desc()).limit(limit)
            if state is not None:
                query = query.where(TradeRow.state == state.value)
            rows = (await session.scalars(query)).all()
            return [await self._record(session, row) for row in rows]

    async def trade_ids_starting_with(self, prefix: str, limit: int = 5) -> list[str]:
        """Trade ids beginning with ``prefix`` (for humans typing a short id)."""
        async with self._session() as session:
            rows = await session.scalars(
                select(TradeRow.id).where(TradeRow.id.startswith(prefix)).limit(limit)
            )
            return list(rows)

    async def count_trades(self) -> int:
        async with self._session() as session:
            return int(await session.scalar(select(func.count()).select_from(TradeRow)) or 0)

    async def events(self, trade_id: str) -> list[EventRecord]:
        async with self._session() as session:
            rows = await session.scalars(
                select(TradeEventRow)
                .where(TradeEventRow.trade_id == trade_id)
                .order_by(TradeEventRow.id)
            )
            return [
                EventRecord(
                    trade_id=r.trade_id,
                    from_state=TradeState(r.from_state) if r.from_state else None,
                    to_state=TradeState(r.to_state),
                    cause=r.cause,
                    client_order_id=r.client_order_id,
                    at=r.at,
                )
                for r in rows
            ]

    async def _record(self, session: AsyncSession, row: TradeRow) -> TradeRecord:
        orders: Sequence[OrderRow] = (
            await session.scalars(
                select(OrderRow).where(OrderRow.trade_id == row.id).order_by(OrderRow.id)
            )
        ).all()
        return TradeRecord(
            id=row.id,
            request=PairTradeRequest(
                pair_x=row.pair_x,
                side_x=row.side_x,
                amount_x=row.amount_x,
                pair_y=row.pair_y,
                side_y=row.side_y,
                hedge_ratio=row.hedge_ratio,
                signal_id=row.signal_id,
            ),
            state=TradeState(row.state),
            reason=row.reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            orders=tuple(
                OrderFacts(
                    leg=Leg(o.leg),
                    attempt=o.attempt,
                    client_order_id=o.client_order_id,
                    symbol=o.symbol,
                    side=o.side,
                    amount=o.amount,
                    status=OrderStatus(o.status),
                    filled=o.filled,
                    sends=o.sends,
                    exchange_order_id=o.exchange_order_id,
                )
                for o in orders
            ),
        )


def head_revision() -> str:
    """The newest schema revision this pairexec knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def schema_revision(url: str) -> str | None:
    """The database's schema revision (None: empty database), without migrating it."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except Exception as exc:
        raise StoreError(f"cannot read database {redacted(url)}: {exc}") from exc
    finally:
        await engine.dispose()


_MIGRATION_THREAD_LOCK = threading.Lock()


@asynccontextmanager
async def _migrating() -> AsyncIterator[None]:
    """Let one store per process migrate at a time.

    Alembic's ``context`` is a process-wide global: two stores migrating at once in one process
    (even on different connections) run each other's migrations. A thread lock, polled so the
    event loop keeps running and a cancelled open never leaves it held, covers every loop and
    thread of the process; other processes are kept out by the database's own lock.
    """
    while not _MIGRATION_THREAD_LOCK.acquire(blocking=False):
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        _MIGRATION_THREAD_LOCK.release()


MIGRATION_LOCK = 0x70A1_2E8E
"""PostgreSQL advisory lock key held while migrating: processes starting together on an empty
database must not each create the schema (SQLite's BEGIN IMMEDIATE serialises them already)."""


def _migrate_to_head(connection: Connection) -> None:
    """Upgrade to the newest schema; refuse a database written by a newer pairexec."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None:
        try:
            script.get_revision(current)
        except Exception as exc:
            raise StoreError(
                f"the database schema is at revision {current!r}, which this pairexec does not "
                f"know (newest known: {script.get_current_head()!r}): it was written by a newer "
                "pairexec; upgrade pairexec instead of using this database"
            ) from exc
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
