"""The trade store: every durable fact about trades goes through here, one transaction each.

Design rules:
- An order row (with its client order id) is committed before its create_order is called.
- Every change to a trade is a compare-and-set on its state and version (bumped by each
  change), so two drivers (tasks or processes) can never both move the same trade; the loser
  gets ``StaleTrade``. A winner therefore knows the new record without reading it back.
- "One trade per signal id" and "one in-flight trade per pair key" are unique constraints, so
  they hold across processes, not only inside one.
- How each backend runs these transactions (one SQLite thread with group commit; PostgreSQL
  through SQLAlchemy's async engine) is ``pairexec.persistence.db``'s business; the queries
  below are written once for both.
- Leases are judged by the database's clock: on PostgreSQL the server's ``now()`` sets and
  compares expiry times, so a worker whose clock runs ahead cannot take a live trade. (SQLite
  is one machine: its clock is everyone's.) The store also knows, by the local monotonic
  clock, since when each lease it wrote is surely held (``lease_deadline``), so the engine
  can refuse to send once it might not be.
- Whatever the driver raises reaches callers as ``StoreError`` with the driver's exception
  as its cause, except the store's own answers (``StaleTrade``, a duplicate).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    Change,
    Duplicate,
    EventRecord,
    Lease,
    LeaseHolder,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    after,
    utc_now,
)
from pairexec.fsm.ports import StaleTrade, StoreError
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TERMINAL_STATES, TradeState
from pairexec.migrations import alembic_config, scripts
from pairexec.persistence.db import (
    AsyncEngineRunner,
    Conflict,
    Db,
    Params,
    Row,
    Runner,
    SqliteRunner,
    as_utc,
    connect_args,
    in_list,
)
from pairexec.persistence.urls import (
    async_url,
    driver_url,
    is_memory_sqlite,
    is_sqlite,
    lock_timeout,
    redacted,
)

try:  # the PostgreSQL driver is optional ('.[postgres]')
    from asyncpg import InterfaceError as _AsyncpgInterfaceError
    from asyncpg import InternalClientError as _AsyncpgClientError
    from asyncpg import PostgresError as _AsyncpgServerError

    _DRIVER_ERRORS: tuple[type[BaseException], ...] = (
        _AsyncpgServerError,
        _AsyncpgInterfaceError,
        _AsyncpgClientError,
    )
except ImportError:  # pragma: no cover - installed with the tests
    _DRIVER_ERRORS = ()

_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    SQLAlchemyError,  # DBAPIError, pool timeouts, a connection invalidated under us
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncio.TimeoutError,
    *_DRIVER_ERRORS,
)
"""What a database or its driver may raise; ``_run`` reports each as a ``StoreError``."""

T = TypeVar("T")


_IDS_PER_QUERY = 500
"""Ids per ``IN (...)`` list: well under the drivers' limits on bound parameters (asyncpg
32,767; SQLite 32,766 in the default build)."""

_TERMINAL_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATES)) + ")"
"""The terminal states as a SQL list (constants from our own enum, not user input)."""

_TRADE_COLUMNS = (
    "id, pair_x, side_x, amount_x, pair_y, side_y, hedge_ratio, signal_id, state, reason,"
    " created_at, updated_at, version"
)
_ORDER_COLUMNS = (
    "trade_id, leg, attempt, client_order_id, symbol, side, amount, status, filled, sends,"
    " exchange_order_id, average"
)


class TradeStore:
    """Async access to the trades database; migrates it to the newest schema on ``open()``.

    Every method is one transaction, run by the backend's runner (``pairexec.persistence.db``): on
    SQLite, concurrent calls share commits; on PostgreSQL each is its own transaction.
    """

    def __init__(self, url: str = "sqlite+aiosqlite:///:memory:") -> None:
        self.url = async_url(url)
        self._sqlite = is_sqlite(self.url)
        self._runner: Runner | None = None
        self._leases: dict[tuple[str, str], float] = {}
        """(owner, trade id) → ``time.monotonic()`` before which that lease surely holds:
        the start of the transaction that last wrote it, plus its length."""

    @property
    def is_open(self) -> bool:
        return self._runner is not None

    @property
    def crash_safe(self) -> bool:
        return not is_memory_sqlite(self.url)

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._runner is not None:
            return
        try:
            runner: Runner = SqliteRunner(self.url) if self._sqlite else AsyncEngineRunner(self.url)
            async with _migrating():
                await runner.open(_migrate_to_head)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open database {redacted(self.url)}: {exc}") from exc
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()

    async def __aenter__(self) -> TradeStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, job: Callable[[Db], T], *, writes: bool = True) -> T:
        """Run ``job`` in a transaction. The one place driver errors become ``StoreError``:
        a caller must not have to know two drivers' exception trees to tell "the database
        failed" (stop, send nothing, let recover resume) from its own bug."""
        if self._runner is None:
            raise StoreError("the trade store is not open (call await store.open())")
        try:
            return await self._runner.run(job, writes)
        except (Conflict, StaleTrade, StoreError):
            raise
        except _DATABASE_ERRORS as exc:
            if _lock_wait_ran_out(exc):
                option = "timeout" if self._sqlite else "lock_timeout"
                raise StoreError(
                    f"database {redacted(self.url)} stayed locked by another writer for "
                    f"{lock_timeout(self.url):g} s (URL option ?{option}=SECONDS): nothing "
                    "was written; an unfinished trade is resumed by recover"
                ) from exc
            raise StoreError(
                f"database {redacted(self.url)} failed: {_describe(exc)}; the write may not "
                "have been saved and nothing is sent on it; an unfinished trade is resumed "
                "by recover"
            ) from exc

    async def _run_leased(self, job: Callable[[Db], T]) -> tuple[T, float]:
        """``job``'s result, and when its transaction began (what a lease it wrote counts
        from)."""
        return await self._run(lambda db: (job(db), db.began))

    def lease_deadline(self, owner: str, trade_id: str) -> float:
        """The ``time.monotonic()`` until which ``owner`` surely holds ``trade_id``'s lease,
        as far as this store wrote it (``-inf``: not held, or lost to another owner). Past it,
        another process may have claimed the trade."""
        return self._leases.get((owner, trade_id), -math.inf)

    def _held(self, lease: Lease | None, trade_ids: Sequence[str], began: float) -> None:
        if lease is None:
            return
        if lease.seconds is not None:
            length = lease.seconds
        else:
            assert lease.until is not None
            length = (lease.until - utc_now()).total_seconds()
        for trade_id in trade_ids:
            self._leases[(lease.owner, trade_id)] = began + length

    def _forget(self, owner: str, trade_ids: Sequence[str]) -> None:
        for trade_id in trade_ids:
            self._leases.pop((owner, trade_id), None)

    # --- writes --------------------------------------------------------------------------

    async def create_trade(
        self,
        request: PairTradeRequest,
        lease: Lease | None = None,
        first: Callable[[TradeRecord], Change | None] | None = None,
    ) -> TradeRecord | Duplicate:
        """Persist a PENDING trade (leased to its creator), or report the trade it duplicates.

        ``first`` may give the trade's first step from its PENDING record (the engine: leg A's
        intent); it is written in the same transaction, saving the new trade a commit."""
        now = utc_now()
        pending = TradeRecord(
            id=uuid.uuid4().hex,
            request=request,
            state=TradeState.PENDING,
            reason="",
            created_at=now,
            updated_at=now,
        )
        change = first(pending) if first is not None else None
        record = after(pending, change, now) if change is not None else pending

        cause = "trade accepted" + (f" (signal {request.signal_id})" if request.signal_id else "")
        accepted = _event_params(pending.id, None, TradeState.PENDING, cause, None, now)

        def insert(db: Db) -> None:
            # The row goes in as the first step leaves it (the step is journaled all the same):
            # a compare-and-set on a row this transaction just wrote could not fail.
            expiry, expiry_params = _lease_expiry(db, lease)
            db.execute(
                "INSERT INTO trades (id, signal_id, inflight_key, pair_x, side_x, amount_x,"
                " pair_y, side_y, hedge_ratio, state, reason, version, owner, lease_expires_at,"
                " created_at, updated_at) VALUES (:id, :signal_id, :inflight_key, :pair_x,"
                " :side_x, :amount_x, :pair_y, :side_y, :hedge_ratio, :state, :reason, :version,"
                f" :owner, {expiry}, :now, :now)",
                {
                    "id": pending.id,
                    "signal_id": request.signal_id,
                    "inflight_key": request.inflight_key,  # refuses a duplicate in flight
                    "pair_x": request.pair_x,
                    "side_x": request.side_x,
                    "amount_x": request.amount_x,
                    "pair_y": request.pair_y,
                    "side_y": request.side_y,
                    "hedge_ratio": request.hedge_ratio,
                    "state": record.state.value,
                    "reason": record.reason,
                    "version": record.version,
                    "owner": lease.owner if lease else None,
                    "now": now,
                    **expiry_params,
                },
            )
            if change is None:
                db.execute_many(_JOURNAL_SQL, [accepted])
                return
            if record.state in TERMINAL_STATES:
                db.execute(
                    "UPDATE trades SET inflight_key = NULL WHERE id = :id", {"id": pending.id}
                )
            _write_facts(db, pending.id, TradeState.PENDING, change, now, accepted)

        try:
            _, began = await self._run_leased(insert)
        except Conflict as exc:
            if not any(key in str(exc) for key in ("signal_id", "inflight_key")):
                raise StoreError(f"the database refused trade {pending.id}: {exc}") from exc
            return await self._duplicate_of(request)
        self._held(lease, [record.id], began)
        return record

    async def _duplicate_of(self, request: PairTradeRequest) -> Duplicate:
        def find(db: Db) -> Duplicate:
            if request.signal_id is not None:
                found = _load(db, "signal_id = :key", {"key": request.signal_id})
                if found is not None:
                    return Duplicate(
                        found, f"signal {request.signal_id!r} already made trade {found.id}"
                    )
            found = _load(db, "inflight_key = :key", {"key": request.inflight_key})
            if found is not None:
                return Duplicate(
                    found, f"trade {found.id} on the same pairs and sides is still in flight"
                )
            # The blocking trade finished between our insert and this read: still a rejection,
            # because at the time of the insert it was in flight.
            return Duplicate(None, "a trade on the same signal or pairs was in flight")

        return await self._run(find, writes=False)

    async def apply(
        self, record: TradeRecord, change: Change, lease: Lease | None = None
    ) -> TradeRecord:
        """Apply one step atomically to the trade as ``record`` shows it; StaleTrade if it has
        changed since (another driver), or, with a lease, if ``lease.owner`` no longer holds it
        (the lease is renewed). Returns the trade as now stored, computed without reading it.
        """
        now = utc_now()
        updated = after(record, change, now)
        try:
            _, began = await self._run_leased(
                lambda db: _write_change(db, record, change, updated, lease, now)
            )
        except StaleTrade:
            if lease is not None:
                self._forget(lease.owner, [record.id])
            raise
        except Conflict as exc:  # an order's client id or (leg, attempt) is taken
            raise StoreError(f"the database refused a write of trade {record.id}: {exc}") from exc
        if lease is not None:
            if updated.state in TERMINAL_STATES:
                self._forget(lease.owner, [record.id])
            else:
                self._held(lease, [record.id], began)
        return updated

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
        two recoverers never get the same trade. Each claim is journaled. Whether a lease has
        expired is the database's judgement (PostgreSQL's ``now()``), not this worker's clock.
        """
        now = utc_now()
        dead_sql, dead_params = in_list("dead", list(dead_owners))

        def take(db: Db) -> list[str]:
            clock, clock_params = _db_now(db)
            query = (
                f"SELECT id, state, owner FROM trades WHERE state NOT IN {_TERMINAL_SQL}"
                f" AND (owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at < {clock}"
                f" OR owner = :owner OR owner IN {dead_sql})"
                " ORDER BY created_at, id"
            )
            if limit is not None:
                query += f" LIMIT {int(limit)}"
            if db.dialect == "postgresql":
                query += " FOR UPDATE SKIP LOCKED"
            rows = db.fetch_all(query, {"owner": lease.owner, **dead_params, **clock_params})
            journal = [
                _event_params(id_, TradeState(state), TradeState(state), cause, None, now)
                for id_, state, owner in rows
                if owner != lease.owner
                for cause in [f"claimed by {lease.owner} ({_why_free(owner, dead_owners)})"]
            ]
            db.execute_many(_JOURNAL_SQL, journal)
            expiry, expiry_params = _lease_expiry(db, lease)
            db.execute_many(
                f"UPDATE trades SET owner = :owner, lease_expires_at = {expiry} WHERE id = :id",
                [{"id": r[0], "owner": lease.owner, **expiry_params} for r in rows],
            )
            return [str(r[0]) for r in rows]

        claimed, began = await self._run_leased(take)
        self._held(lease, claimed, began)
        return claimed

    async def renew(self, lease: Lease, trade_ids: Sequence[str]) -> set[str]:
        """Extend ``lease`` on those of ``trade_ids`` it still owns; returns their ids. The
        others were taken by another owner (or are gone): the lease on them is lost, and
        ``lease_deadline`` says so at once.

        The ids go in lists of ``_IDS_PER_QUERY`` (drivers bound the parameters of one
        statement), all in one transaction."""
        if not trade_ids:
            return set()
        ids = list(trade_ids)

        def extend(db: Db) -> set[str]:
            expiry, expiry_params = _lease_expiry(db, lease)
            kept: set[str] = set()
            for start in range(0, len(ids), _IDS_PER_QUERY):
                ids_sql, chunk = in_list("id", ids[start : start + _IDS_PER_QUERY])
                update = (
                    f"UPDATE trades SET lease_expires_at = {expiry} WHERE id IN {ids_sql}"
                    " AND owner = :owner"
                )
                params = {"owner": lease.owner, **expiry_params, **chunk}
                if db.dialect == "postgresql":
                    rows = db.fetch_all(update + " RETURNING id", params)
                else:  # RETURNING needs SQLite 3.35; our write lock keeps the two consistent
                    db.execute(update, params)
                    rows = db.fetch_all(
                        f"SELECT id FROM trades WHERE id IN {ids_sql} AND owner = :owner", params
                    )
                kept.update(str(r[0]) for r in rows)
            return kept

        kept, began = await self._run_leased(extend)
        self._held(lease, sorted(kept), began)
        self._forget(lease.owner, [t for t in ids if t not in kept])
        return kept

    async def release(self, owner: str, trade_id: str | None = None) -> None:
        """Let anyone claim the trade (or every trade of ``owner``) now: the owner stopped."""
        sql = (
            "UPDATE trades SET lease_expires_at = NULL WHERE owner = :owner"
            " AND lease_expires_at IS NOT NULL"
        )
        params: Params = {"owner": owner}
        if trade_id is not None:
            sql += " AND id = :id"
            params["id"] = trade_id
        # Not held from here on, whether or not the write below gets through.
        self._forget(owner, [trade_id] if trade_id else [t for o, t in self._leases if o == owner])
        await self._run(lambda db: db.execute(sql, params))

    async def lease_holders(self) -> list[LeaseHolder]:
        """Non-terminal trades with a live-looking lease, and who holds them."""
        rows = await self._run(
            lambda db: db.fetch_all(
                "SELECT id, owner, lease_expires_at FROM trades"
                f" WHERE state NOT IN {_TERMINAL_SQL} AND owner IS NOT NULL"
                " AND lease_expires_at IS NOT NULL"
            ),
            writes=False,
        )
        return [LeaseHolder(str(id_), str(owner), as_utc(until)) for id_, owner, until in rows]

    # --- reads ---------------------------------------------------------------------------

    async def load(self, trade_id: str) -> TradeRecord:
        record = await self._run(lambda db: _load(db, "id = :id", {"id": trade_id}), writes=False)
        if record is None:
            raise KeyError(f"no trade {trade_id}")
        return record

    async def load_many(self, trade_ids: Sequence[str]) -> dict[str, TradeRecord]:
        """The trades with these ids that exist, by id (one transaction, 500 ids per query)."""

        def read(db: Db) -> dict[str, TradeRecord]:
            found: dict[str, TradeRecord] = {}
            for start in range(0, len(trade_ids), _IDS_PER_QUERY):
                ids_sql, ids = in_list("id", list(trade_ids[start : start + _IDS_PER_QUERY]))
                found.update((t.id, t) for t in _load_many(db, f"id IN {ids_sql}", ids))
            return found

        return await self._run(read, writes=False) if trade_ids else {}

    async def unfinished_trade_ids(self) -> list[str]:
        """Every trade not in a terminal state, oldest first."""
        rows = await self._run(
            lambda db: db.fetch_all(
                f"SELECT id FROM trades WHERE state NOT IN {_TERMINAL_SQL} ORDER BY created_at, id"
            ),
            writes=False,
        )
        return [str(r[0]) for r in rows]

    async def list_trades(
        self, state: TradeState | None = None, limit: int = 100
    ) -> list[TradeRecord]:
        """The newest ``limit`` trades (in ``state``, if given), newest first."""

        def read(db: Db) -> list[TradeRecord]:
            where = "state = :state" if state is not None else "1 = 1"
            params: Params = {"state": state.value} if state is not None else {}
            return _load_many(
                db, f"{where} ORDER BY created_at DESC, id DESC LIMIT {int(limit)}", params
            )

        return await self._run(read, writes=False)

    async def trade_ids_starting_with(self, prefix: str, limit: int = 5) -> list[str]:
        """Trade ids beginning with ``prefix`` (for humans typing a short id)."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self._run(
            lambda db: db.fetch_all(
                f"SELECT id FROM trades WHERE id LIKE :pattern ESCAPE '\\' LIMIT {int(limit)}",
                {"pattern": pattern},
            ),
            writes=False,
        )
        return [str(r[0]) for r in rows]

    async def count_trades(self) -> int:
        rows = await self._run(lambda db: db.fetch_all("SELECT count(*) FROM trades"), writes=False)
        return int(rows[0][0])

    async def count_by_state(self) -> dict[TradeState, int]:
        """How many trades are in each state (states with none are left out)."""
        rows = await self._run(
            lambda db: db.fetch_all("SELECT state, count(*) FROM trades GROUP BY state"),
            writes=False,
        )
        return {TradeState(state): int(n) for state, n in rows}

    async def events(self, trade_id: str) -> list[EventRecord]:
        rows = await self._run(
            lambda db: db.fetch_all(
                "SELECT trade_id, from_state, to_state, cause, client_order_id, at"
                " FROM trade_events WHERE trade_id = :id ORDER BY id",
                {"id": trade_id},
            ),
            writes=False,
        )
        return [
            EventRecord(
                trade_id=tid,
                from_state=TradeState(frm) if frm else None,
                to_state=TradeState(to),
                cause=cause,
                client_order_id=cid,
                at=_aware(at),
            )
            for tid, frm, to, cause, cid, at in rows
        ]


# --- the queries (pure functions of a Db, run inside a store transaction) -------------------

_JOURNAL_SQL = (
    "INSERT INTO trade_events (trade_id, from_state, to_state, cause, client_order_id, at)"
    " VALUES (:trade_id, :from_state, :to_state, :cause, :cid, :at)"
)


def _event_params(
    trade_id: str,
    from_state: TradeState | None,
    to_state: TradeState,
    cause: str,
    cid: str | None,
    at: datetime,
) -> Params:
    return {
        "trade_id": trade_id,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value,
        "cause": cause,
        "cid": cid,
        "at": at,
    }


def _write_change(
    db: Db,
    record: TradeRecord,
    change: Change,
    updated: TradeRecord,
    lease: Lease | None,
    now: datetime,
) -> None:
    """Write ``change`` to the trade ``record`` shows, as compare-and-set (see ``apply``)."""
    expected = record.state
    sets = "state = :state, reason = :reason, updated_at = :now, version = :version"
    params: Params = {
        "id": record.id,
        "expected": expected.value,
        "seen": record.version,
        "state": updated.state.value,
        "reason": updated.reason,
        "now": now,
        "version": updated.version,
    }
    where = "id = :id AND state = :expected AND version = :seen"
    if updated.state in TERMINAL_STATES:
        sets += ", inflight_key = NULL"
    if lease is not None:
        expiry, expiry_params = _lease_expiry(db, lease)
        sets += f", lease_expires_at = {expiry}"
        where += " AND owner = :owner"
        params.update(owner=lease.owner, **expiry_params)
    if db.execute(f"UPDATE trades SET {sets} WHERE {where}", params) != 1:
        raise StaleTrade(
            f"trade {record.id} is no longer {expected.value} as last seen"
            + (f" under {lease.owner}" if lease else "")
        )
    _write_facts(db, record.id, expected, change, now)


def _write_facts(
    db: Db,
    trade_id: str,
    expected: TradeState,
    change: Change,
    now: datetime,
    *journal_first: Params,
) -> None:
    """The orders ``change`` adds or updates, and its journal (after ``journal_first``)."""
    cid = None
    if change.new_order is not None:
        cid = change.new_order.client_order_id
        _insert_order(db, trade_id, change.new_order, now)
    if change.order_update is not None:
        cid = change.order_update.client_order_id
        _update_order(db, trade_id, change.order_update, now)
    state = change.to_state or expected
    journal = [*journal_first, _event_params(trade_id, expected, state, change.cause, cid, now)]
    for move in change.then:
        cid = None
        if move.new_order is not None:
            cid = move.new_order.client_order_id
            _insert_order(db, trade_id, move.new_order, now)
        journal.append(_event_params(trade_id, state, move.to_state, move.cause, cid, now))
        state = move.to_state
    db.execute_many(_JOURNAL_SQL, journal)  # one statement for the step and its moves


def _lease_expiry(db: Db, lease: Lease | None) -> tuple[str, Params]:
    """SQL for when ``lease`` runs out, as written now, with its parameters. On PostgreSQL a
    lease of N seconds is the server's ``now()`` + N: every worker's lease is on one clock,
    whatever its own says. SQLite runs on this machine: its clock is the database's."""
    if lease is None:
        return "NULL", {}
    if lease.seconds is None:
        return ":lease_until", {"lease_until": lease.until}
    if db.dialect == "postgresql":
        return "now() + make_interval(secs => :lease_seconds)", {"lease_seconds": lease.seconds}
    return ":lease_until", {"lease_until": utc_now() + timedelta(seconds=lease.seconds)}


def _db_now(db: Db) -> tuple[str, Params]:
    """SQL for the database's current time (see ``_lease_expiry``)."""
    if db.dialect == "postgresql":
        return "now()", {}
    return ":db_now", {"db_now": utc_now()}


def _lock_wait_ran_out(exc: BaseException) -> bool:
    """SQLite's busy timeout, or PostgreSQL's lock_timeout (SQLSTATE 55P03)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc)
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "55P03"


def _describe(exc: BaseException) -> str:
    """One line for a driver error: its type and message (SQLAlchemy's add a URL to docs)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _why_free(owner: str | None, dead_owners: Sequence[str]) -> str:
    if owner is None:
        return "no owner"
    if owner in dead_owners:
        return f"{owner} is gone"
    return f"lease of {owner} expired"


def _insert_order(db: Db, trade_id: str, order: OrderFacts, now: datetime) -> None:
    db.execute(
        "INSERT INTO orders (trade_id, leg, attempt, client_order_id, exchange_order_id, symbol,"
        " side, amount, status, filled, average, sends, last_error, created_at, updated_at)"
        " VALUES (:trade_id, :leg, :attempt, :cid, NULL, :symbol, :side, :amount, :status, 0.0,"
        " NULL, 0, '', :now, :now)",
        {
            "trade_id": trade_id,
            "leg": order.leg.value,
            "attempt": order.attempt,
            "cid": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side,
            "amount": order.amount,
            "status": OrderStatus.INTENT.value,
            "now": now,
        },
    )


def _update_order(db: Db, trade_id: str, upd: OrderUpdate, now: datetime) -> None:
    sets = ["status = :status", "updated_at = :now"]
    params: Params = {"cid": upd.client_order_id, "trade_id": trade_id}
    params.update(status=upd.status.value, now=now)
    for column, value in (
        ("filled", upd.filled),
        ("exchange_order_id", upd.exchange_order_id),
        ("average", upd.average),
        ("last_error", upd.error),
    ):
        if value is not None:
            sets.append(f"{column} = :{column}")
            params[column] = value
    if upd.add_sends:
        sets.append("sends = sends + :add_sends")
        params["add_sends"] = upd.add_sends
    changed = db.execute(
        f"UPDATE orders SET {', '.join(sets)} WHERE client_order_id = :cid"
        " AND trade_id = :trade_id",
        params,
    )
    if changed != 1:
        raise StoreError(f"order {upd.client_order_id} of trade {trade_id} not found")


def _load(db: Db, where: str, params: Params) -> TradeRecord | None:
    found = _load_many(db, f"{where} LIMIT 1", params)
    return found[0] if found else None


def _load_many(db: Db, where_and_order: str, params: Params) -> list[TradeRecord]:
    """Trades matching ``where_and_order`` (a WHERE clause, then ORDER BY / LIMIT), with
    their orders: two statements whatever the number of trades."""
    trades = db.fetch_all(f"SELECT {_TRADE_COLUMNS} FROM trades WHERE {where_and_order}", params)
    if not trades:
        return []
    orders: dict[str, list[OrderFacts]] = {t[0]: [] for t in trades}
    trade_ids = list(orders)
    rows: list[Row] = []
    for start in range(0, len(trade_ids), _IDS_PER_QUERY):  # drivers bound the parameters
        ids_sql, ids = in_list("t", trade_ids[start : start + _IDS_PER_QUERY])
        rows += db.fetch_all(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE trade_id IN {ids_sql} ORDER BY id", ids
        )
    for o in rows:
        trade_id, leg, attempt, cid, symbol, side, amount, status, filled, sends, xid, avg = o
        orders[trade_id].append(
            OrderFacts(
                leg=Leg(leg),
                attempt=attempt,
                client_order_id=cid,
                symbol=symbol,
                side=side,
                amount=amount,
                status=OrderStatus(status),
                filled=filled,
                sends=sends,
                exchange_order_id=xid,
                average=avg,
            )
        )
    return [
        TradeRecord(
            id=id_,
            request=PairTradeRequest(
                pair_x=pair_x,
                side_x=side_x,
                amount_x=amount_x,
                pair_y=pair_y,
                side_y=side_y,
                hedge_ratio=hedge_ratio,
                signal_id=signal_id,
            ),
            state=TradeState(state),
            reason=reason,
            created_at=_aware(created_at),
            updated_at=_aware(updated_at),
            orders=tuple(orders[id_]),
            version=version,
        )
        for (
            id_,
            pair_x,
            side_x,
            amount_x,
            pair_y,
            side_y,
            hedge_ratio,
            signal_id,
            state,
            reason,
            created_at,
            updated_at,
            version,
        ) in trades
    ]


def _aware(value: Any) -> datetime:
    stamp = as_utc(value)
    if stamp is None:  # pragma: no cover - NOT NULL columns
        raise StoreError("a required time is missing in the database")
    return stamp


def head_revision() -> str:
    """The newest schema revision this pairexec knows."""
    head = scripts().get_current_head()
    assert head is not None
    return head


async def schema_revision(url: str) -> str | None:
    """The database's schema revision (None: empty database), without migrating it."""
    url = async_url(url)
    try:
        engine = create_async_engine(
            driver_url(url), poolclass=NullPool, connect_args=connect_args(url)
        )
    except Exception as exc:
        raise StoreError(f"cannot read database {redacted(url)}: {exc}") from exc
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except Exception as exc:
        raise StoreError(f"cannot read database {redacted(url)}: {_describe(exc)}") from exc
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


MIGRATION_POLL = 0.05
"""Seconds between tries for the migration lock: another process's migration is waited for
without a limit, but in short statements, each within ``command_timeout``, so that a server
that stopped answering is still noticed."""


def _migrate_to_head(connection: Connection) -> None:
    """Upgrade to the newest schema; refuse a database written by a newer pairexec."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL lock_timeout = 0")  # another's migration: wait
        try_lock = f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK})"
        while not connection.exec_driver_sql(try_lock).scalar():
            connection.exec_driver_sql(f"SELECT pg_sleep({MIGRATION_POLL})")
    script = scripts()
    current = MigrationContext.configure(connection).get_current_revision()
    if current == script.get_current_head():
        return  # nothing to upgrade; alembic's upgrade would reload env.py to find that out
    if current is not None:
        try:
            script.get_revision(current)
        except Exception as exc:
            raise StoreError(
                f"the database schema is at revision {current!r}, which this pairexec does not "
                f"know (newest known: {script.get_current_head()!r}): it was written by a newer "
                "pairexec; upgrade pairexec instead of using this database"
            ) from exc
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
