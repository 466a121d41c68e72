"""The trade store: every durable fact about trades goes through here, one transaction each.

Design rules:
- An order row (with its client order id) is committed before its create_order is called.
- Every change to a trade is a compare-and-set on its state and version (bumped by each
  change), so two drivers (tasks or processes) can never both move the same trade; the loser
  gets ``StaleTrade``. A winner therefore knows the new record without reading it back.
- "One trade per signal id" and "one in-flight trade per pair key" are unique constraints, so
  they hold across processes, not only inside one.
- How each backend runs these transactions (one SQLite thread with group commit; PostgreSQL
  through asyncpg) is ``pairexec.persistence.db``'s business; the queries
  below are written once for both.
- Leases are judged by the database's clock: on PostgreSQL the server's ``now()`` sets and
  compares expiry times, so a worker whose clock runs ahead cannot take a live trade. (SQLite
  is one machine: its clock is everyone's.) The store also knows, by the local monotonic
  clock (the event loop's), since when each lease it wrote is surely held
  (``lease_deadline``), so the engine can refuse to send once it might not be.
- Whatever the driver raises reaches callers as ``StoreError`` with the driver's exception
  as its cause, except the store's own answers (``StaleTrade``, a duplicate).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from pairexec.fsm.machine import next_state
from pairexec.fsm.model import (
    Change,
    Duplicate,
    EventRecord,
    Lease,
    LeaseHolder,
    TradeRecord,
    after,
    creation_journal,
    hedges,
    same_facts,
    utc_now,
)
from pairexec.fsm.ports import StaleTrade, StoreError
from pairexec.fsm.request import (
    DuplicateReason,
    InvalidRequest,
    PairTradeRequest,
    checked_text,
)
from pairexec.fsm.states import TERMINAL_STATES, TradeState, Trigger
from pairexec.persistence import schema, sql
from pairexec.persistence.db import (
    AsyncEngineRunner,
    AsyncpgRunner,
    Conflict,
    Db,
    Params,
    Runner,
    SqliteRunner,
    as_utc,
    describe_error,
    in_list,
)
from pairexec.persistence.urls import (
    async_url,
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


DUPLICATE_KEYS = ("signal_id", "inflight_key", "uq_trades_closes", "trades.closes")
"""What a refused insert names when it duplicates a trade (the unique columns, as PostgreSQL
and SQLite word it), rather than breaking some other rule."""


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
        """(owner, trade id) → the event loop's time (``Db.began``'s clock) before which that
        lease surely holds: the start of the transaction that last wrote it, plus its length."""

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
            runner: Runner = (
                SqliteRunner(self.url)
                if self._sqlite
                else AsyncpgRunner(self.url)
                if make_url(self.url).get_driver_name() == "asyncpg"
                else AsyncEngineRunner(self.url)
            )
            async with schema.migrating():
                await runner.open(schema.migrate_to_head)
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

    async def _run(
        self,
        job: Callable[[Db], T],
        *,
        writes: bool = True,
        urgent: bool = False,
        alone: bool = False,
    ) -> T:
        """Run ``job`` in a transaction. The one place driver errors become ``StoreError``:
        a caller must not have to know two drivers' exception trees to tell "the database
        failed" (stop, send nothing, let recover resume) from its own bug."""
        if self._runner is None:
            raise StoreError("the trade store is not open (call await store.open())")
        try:
            return await self._runner.run(job, writes, urgent, alone)
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
                f"database {redacted(self.url)} failed: {describe_error(exc)}; the write may not "
                "have been saved and nothing is sent on it; an unfinished trade is resumed "
                "by recover"
            ) from exc

    async def _run_leased(
        self, job: Callable[[Db], T], urgent: bool = False, alone: bool = False
    ) -> tuple[T, float]:
        """``job``'s result, and when its transaction began (what a lease it wrote counts
        from)."""
        return await self._run(lambda db: (job(db), db.began), urgent=urgent, alone=alone)

    def lease_deadline(self, owner: str, trade_id: str) -> float:
        """The event loop's time until which ``owner`` surely holds ``trade_id``'s lease,
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

        [accepted] = creation_journal(pending, None)  # the first step's rows: write_facts

        def insert(db: Db) -> None:
            # The row goes in as the first step leaves it (the step is journaled all the same):
            # a compare-and-set on a row this transaction just wrote could not fail.
            expiry, expiry_params = sql.lease_expiry(db, lease)
            row = (
                "INSERT INTO trades (id, signal_id, inflight_key, pair_x, side_x, amount_x,"
                " pair_y, side_y, hedge_ratio, venue_x, venue_y, price_x, closes, state, reason,"
                " version, owner, lease_expires_at, created_at, updated_at) VALUES (:id,"
                " :signal_id, :inflight_key, :pair_x, :side_x, :amount_x, :pair_y, :side_y,"
                " :hedge_ratio, :venue_x, :venue_y, :price_x, :closes, :state, :reason,"
                f" :version, :owner, {expiry}, :now, :now)"
            )
            values: Params = {
                "id": pending.id,
                "signal_id": request.signal_id,
                "inflight_key": request.inflight_key,  # refuses a duplicate in flight
                "pair_x": request.pair_x,
                "side_x": request.side_x,
                "amount_x": request.amount_x,
                "pair_y": request.pair_y,
                "side_y": request.side_y,
                "hedge_ratio": request.hedge_ratio,
                "venue_x": request.venue_x,
                "venue_y": request.venue_y,
                "price_x": request.price_x,
                "closes": request.closes,
                "state": record.state.value,
                "reason": record.reason,
                "version": record.version,
                "owner": lease.owner if lease else None,
                "now": now,
                **expiry_params,
            }
            if db.alone:
                sql.write_in_one(db, row, values, TradeState.PENDING, change, now, accepted)
                return
            db.execute(row, values)
            if change is None:
                db.execute_many(sql.JOURNAL_SQL, [sql.journal_row(accepted)])
                return
            if record.state in TERMINAL_STATES:
                db.execute(
                    "UPDATE trades SET inflight_key = NULL WHERE id = :id", {"id": pending.id}
                )
            sql.write_facts(db, pending.id, TradeState.PENDING, change, now, accepted)

        # Alone (one statement, on PostgreSQL) unless the first step ends the trade: then the
        # row goes in with its in-flight key, which refuses a duplicate, and a second statement
        # clears it (a statement cannot update a row it inserts).
        alone = record.state not in TERMINAL_STATES and sql.in_one_statement(change)
        sent = asyncio.get_running_loop().time()
        try:
            try:
                _, began = await self._run_leased(insert, alone=alone)
            except StoreError as failed:
                if not alone:
                    raise
                # One statement whose outcome is unknown (its connection was lost under it,
                # a timeout). The trade's id is ours, so the database can say whether it
                # went in; if not, it is written again in a transaction, which survives a
                # connection found dead before its COMMIT (a backend killed while idle).
                if await self._went_in(record, failed):
                    self._held(lease, [record.id], sent)
                    return record
                try:
                    _, began = await self._run_leased(insert)
                except Conflict:
                    # The first statement may have been running still when we looked, and
                    # committed since: then the second meets our own id.
                    if await self._went_in(record, failed):
                        self._held(lease, [record.id], sent)
                        return record
                    raise
        except Conflict as exc:
            if not any(key in str(exc) for key in DUPLICATE_KEYS):
                raise StoreError(f"the database refused trade {pending.id}: {exc}") from exc
            return await self._duplicate_of(request)
        self._held(lease, [record.id], began)
        return record

    async def _went_in(self, record: TradeRecord, failed: StoreError) -> bool:
        """Whether the new trade ``record`` is stored as written; ``failed`` (the write's
        error) if the database cannot say, or holds something else under its id."""
        try:
            stored = (await self.load_many([record.id])).get(record.id)
        except StoreError:
            raise failed from failed.__cause__  # (the driver's error on the write)
        if stored is None:
            return False
        if not same_facts(stored, record):
            raise failed
        return True

    async def _duplicate_of(self, request: PairTradeRequest) -> Duplicate:
        def find(db: Db) -> Duplicate:
            if request.closes is not None:
                exit_ = sql.load(
                    db, f"closes = :entry AND {sql.LIVE_EXIT}", {"entry": request.closes}
                )
                if exit_ is not None:
                    return Duplicate(
                        exit_,
                        f"trade {request.closes} is already closed by trade {exit_.id} "
                        f"({exit_.state.value})",
                        DuplicateReason.ALREADY_CLOSED,
                    )
            if request.signal_id is not None:
                found = sql.load(db, "signal_id = :key", {"key": request.signal_id})
                if found is not None:
                    return Duplicate(
                        found,
                        f"signal {request.signal_id!r} already made trade {found.id}",
                        DuplicateReason.SIGNAL_REPLAYED,
                    )
            found = sql.load(db, "inflight_key = :key", {"key": request.inflight_key})
            if found is not None and found.state is TradeState.PARKED:
                return Duplicate(
                    found,
                    f"trade {found.id} on the same pairs and sides is PARKED ({found.reason});"
                    " resolve it first (pairexec resolve)",
                    DuplicateReason.PAIR_PARKED,
                )
            if found is not None:
                return Duplicate(
                    found,
                    f"trade {found.id} on the same pairs and sides is still in flight",
                    DuplicateReason.PAIR_BUSY,
                )
            # The blocking trade finished between our insert and this read: still a rejection,
            # because at the time of the insert it was in flight.
            return Duplicate(
                None, "a trade on the same signal or pairs was in flight", DuplicateReason.PAIR_BUSY
            )

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
                lambda db: sql.write_change(db, record, change, updated, lease, now),
                urgent=hedges(record, change),  # leg A is unhedged until it is durable
                alone=sql.in_one_statement(change),
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
            clock, clock_params = sql.db_now(db)
            query = (
                f"SELECT id, state, owner FROM trades WHERE state NOT IN {sql.TERMINAL_SQL}"
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
                sql.event_params(id_, TradeState(state), TradeState(state), cause, None, now)
                for id_, state, owner in rows
                if owner != lease.owner
                for cause in [f"claimed by {lease.owner} ({_why_free(owner, dead_owners)})"]
            ]
            db.execute_many(sql.JOURNAL_SQL, journal)
            expiry, expiry_params = sql.lease_expiry(db, lease)
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

        The ids go in lists of ``sql.IDS_PER_QUERY`` (drivers bound the parameters of one
        statement), all in one transaction."""
        if not trade_ids:
            return set()
        ids = list(trade_ids)

        def extend(db: Db) -> set[str]:
            expiry, expiry_params = sql.lease_expiry(db, lease)
            kept: set[str] = set()
            for start in range(0, len(ids), sql.IDS_PER_QUERY):
                ids_sql, chunk = in_list("id", ids[start : start + sql.IDS_PER_QUERY])
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
        statement = (
            "UPDATE trades SET lease_expires_at = NULL WHERE owner = :owner"
            " AND lease_expires_at IS NOT NULL"
        )
        params: Params = {"owner": owner}
        if trade_id is not None:
            statement += " AND id = :id"
            params["id"] = trade_id
        # Not held from here on, whether or not the write below gets through.
        self._forget(owner, [trade_id] if trade_id else [t for o, t in self._leases if o == owner])
        await self._run(lambda db: db.execute(statement, params))

    async def lease_holders(self, trade_id: str | None = None) -> list[LeaseHolder]:
        """Non-terminal trades with a lease, and who holds them (``trade_id`` alone, if
        given); whether the lease is still live is the caller's to judge from ``until``."""
        one = " AND id = :id" if trade_id is not None else ""
        rows = await self._run(
            lambda db: db.fetch_all(
                "SELECT id, owner, lease_expires_at FROM trades"
                f" WHERE state NOT IN {sql.TERMINAL_SQL} AND owner IS NOT NULL"
                f" AND lease_expires_at IS NOT NULL{one}",
                {"id": trade_id} if trade_id is not None else {},
            ),
            writes=False,
        )
        return [LeaseHolder(str(id_), str(owner), as_utc(until)) for id_, owner, until in rows]

    async def resolve(self, trade_id: str, note: str) -> TradeRecord:
        """A human settled a PARKED trade's legs by hand: it becomes RESOLVED, ``note`` (what
        was done) its reason, journaled, and its pair key is free again. InvalidRequest for an
        unknown trade or one that is not PARKED; then nothing changes."""
        note = checked_text("note", note.strip())
        if not note:
            raise InvalidRequest("a resolve needs a note: what was done about the parked legs")
        now = utc_now()

        def write(db: Db) -> TradeRecord:
            record = sql.load(db, "id = :id", {"id": trade_id})
            if record is None:
                raise InvalidRequest(f"no trade {trade_id}")
            if record.state is not TradeState.PARKED:
                raise InvalidRequest(
                    f"trade {trade_id} is {record.state.value}, not PARKED: nothing to resolve"
                )
            to_state = next_state(record.state, Trigger.RESOLVE)
            change = Change(f"resolved by hand: {note}", to_state=to_state)
            updated = after(record, change, now)
            sql.write_change(db, record, change, updated, None, now)
            return updated

        return await self._run(write)

    # --- reads ---------------------------------------------------------------------------

    async def load(self, trade_id: str) -> TradeRecord:
        record = await self._run(
            lambda db: sql.load(db, "id = :id", {"id": trade_id}), writes=False
        )
        if record is None:
            raise KeyError(f"no trade {trade_id}")
        return record

    async def find_by_signal(self, signal_id: str) -> TradeRecord | None:
        """The trade made for ``signal_id``, or None: a bot that lost a trade's id (its call
        was cancelled) finds it by the signal it sent."""
        return await self._run(
            lambda db: sql.load(db, "signal_id = :key", {"key": signal_id}), writes=False
        )

    async def load_many(self, trade_ids: Sequence[str]) -> dict[str, TradeRecord]:
        """The trades with these ids that exist, by id (one transaction, 500 ids per query)."""

        def read(db: Db) -> dict[str, TradeRecord]:
            found: dict[str, TradeRecord] = {}
            for start in range(0, len(trade_ids), sql.IDS_PER_QUERY):
                ids_sql, ids = in_list("id", list(trade_ids[start : start + sql.IDS_PER_QUERY]))
                found.update((t.id, t) for t in sql.load_many(db, f"id IN {ids_sql}", ids))
            return found

        return await self._run(read, writes=False) if trade_ids else {}

    async def unfinished_trade_ids(self) -> list[str]:
        """Every trade not in a terminal state, oldest first."""
        rows = await self._run(
            lambda db: db.fetch_all(
                f"SELECT id FROM trades WHERE state NOT IN {sql.TERMINAL_SQL}"
                " ORDER BY created_at, id"
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
            return sql.load_many(
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
                at=sql.aware(at),
            )
            for tid, frm, to, cause, cid, at in rows
        ]


def _lock_wait_ran_out(exc: BaseException) -> bool:
    """SQLite's busy timeout, or PostgreSQL's lock_timeout (SQLSTATE 55P03)."""
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc)
    return "55P03" in (
        getattr(exc, "sqlstate", None),
        getattr(getattr(exc, "orig", None), "sqlstate", None),
    )


def _why_free(owner: str | None, dead_owners: Sequence[str]) -> str:
    if owner is None:
        return "no owner"
    if owner in dead_owners:
        return f"{owner} is gone"
    return f"lease of {owner} expired"
