"""How the trade store reaches its database: one synchronous SQL interface, two runners.

The store's queries are plain functions of a ``Db`` (SQL text with ``:name`` parameters), so
they are written once for both backends:

- SQLite (the embedded default) runs them on its own ``sqlite3`` connection in one dedicated
  thread, with **group commit**: every job submitted while a transaction is being written goes
  into the next one, so N trades stepping at once share one fsync instead of queueing for N.
  Each job runs inside a SAVEPOINT, so one job's failure (a stale compare-and-set, a duplicate
  signal) undoes only its own writes, and its caller hears of it only after the COMMIT the
  others are in. A job's result is delivered only after its transaction is durable: what the
  engine sends after a write was committed first (persist-before-send).
- PostgreSQL runs each job in its own transaction on a plain asyncpg pool (``AsyncpgRunner``;
  SQLAlchemy's async engine migrates the schema, and runs the jobs for any other driver):
  concurrency there is the server's business, and several processes share it. A process runs
  at most as many jobs at once as its connection pool holds, and the rest queue for a turn: a
  burst of thousands of trades waits instead of failing on the pool's checkout timeout.

Nothing here may wait without a bound: PostgreSQL statements and connects have client-side
timeouts (``?command_timeout=``, ``?connect_timeout=``), SQLite lock waits ``?timeout=``. A
SQLite file deleted or replaced while open is noticed before each commit: writing on into an
unlinked file would lose every trade at the next restart. Each such failure is a
``StoreError`` that names what ran out, and nothing of the transaction it stopped is
committed (or, when the connection died during COMMIT itself, it is unknown whether it was:
then the caller sends nothing on it, and ``recover()`` reads what was).

Why not the ORM: profiling showed the ORM and the async adaptation layers were about half of
the cost of a durable step; the rows here are few and simple.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Connection, TextClause, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.util import await_only, greenlet_spawn

from pairexec.fsm.ports import StoreError
from pairexec.persistence.urls import (
    command_timeout,
    connect_timeout,
    driver_url,
    lock_timeout,
    redacted,
)

T = TypeVar("T")

Params = dict[str, Any]
Row = tuple[Any, ...]

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy stores a DateTime in SQLite: the schema's rows must read the same both ways."""


class Conflict(Exception):
    """A unique constraint refused a write; the message names the constraint."""


class Db(Protocol):
    """What a query needs: run a statement, read rows. Parameters are ``:name`` style."""

    dialect: str
    began: float
    """The event loop's clock (``loop.time()``: ``time.monotonic()`` on a normal loop) at or
    before the start of the transaction the job runs in: a lease written in it lasts at least
    its length from then, whatever the clocks say. The loop's clock, so that a simulation's
    virtual time moves leases as it moves every timeout."""
    alone: bool
    """True when the job runs outside a transaction, each statement committed by itself: a
    job run with ``alone`` (``Runner.run``) then makes its write one statement (PostgreSQL's
    data-modifying CTEs, ``sql.write_in_one``), and a second statement is refused."""

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; the number of rows it changed."""

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None: ...

    def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]: ...


def fetch_one(db: Db, sql: str, params: Params | None = None) -> Row | None:
    rows = db.fetch_all(sql, params)
    return rows[0] if rows else None


def as_utc(value: datetime | str | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back text, PostgreSQL datetimes)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def in_list(name: str, values: Sequence[Any]) -> tuple[str, Params]:
    """``IN (...)`` for a list, as named parameters both drivers understand."""
    params = {f"{name}_{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")" if params else "(NULL)", params


# --- SQLite ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _sqlite_time(value: datetime) -> str:
    """A time as SQLite stores it. Cached: a write stamps all its rows with the same time, and
    formatting it for each was a tenth of the database thread's work."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime(SQLITE_TIME_FORMAT)


class SqliteDb:
    """``Db`` over a stdlib sqlite3 connection (used by one thread at a time)."""

    dialect = "sqlite"
    alone = False  # a job always runs in a transaction (with others: the group commit)

    def __init__(self, connection: sqlite3.Connection, began: float) -> None:
        self.connection = connection
        self.began = began

    def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            return self.connection.execute(sql, _sqlite_params(params)).rowcount
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        try:
            self.connection.executemany(sql, [_sqlite_params(r) for r in rows])
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from exc

    def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        return self.connection.execute(sql, _sqlite_params(params)).fetchall()


def _sqlite_params(params: Params | None) -> Params:
    if not params:
        return {}
    return {k: _sqlite_time(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _main_file(connection: sqlite3.Connection) -> tuple[str, int, int] | None:
    """The file behind the connection's main database, with its device and inode."""
    for _, name, path in connection.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            stat = os.stat(path)
            return str(path), stat.st_dev, stat.st_ino
    return None  # in memory, or a temporary database


_SQLITE_EXECUTOR: ContextVar[Callable[[], ThreadPoolExecutor] | None] = ContextVar(
    "pairexec_sqlite_executor", default=None
)


@contextmanager
def sqlite_executors(factory: Callable[[], ThreadPoolExecutor]) -> Iterator[None]:
    """SQLite stores opened in this context (and the tasks it starts) run their connection on
    an executor from ``factory``: the simulation's inline one makes a seed give one run."""
    token = _SQLITE_EXECUTOR.set(factory)
    try:
        yield
    finally:
        _SQLITE_EXECUTOR.reset(token)


def executor_for_sqlite() -> ThreadPoolExecutor:
    """The one thread a SQLite store's connection runs in (see ``sqlite_executors``)."""
    factory = _SQLITE_EXECUTOR.get()
    if factory is not None:
        return factory()
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="pairexec-db")


@dataclass
class _Job(Generic[T]):
    run: Callable[[Db], T]
    writes: bool
    future: asyncio.Future[T]
    urgent: bool = False


def _next_batch(queued: list[_Job[Any]]) -> tuple[list[_Job[Any]], list[_Job[Any]]]:
    """(the next transaction's jobs, those left for the one after): the urgent ones alone if
    any are queued. An urgent job commits a hedge's intent while leg A is unhedged; a smaller
    transaction is a shorter wait for it, and the others lose one commit's time."""
    urgent = [j for j in queued if j.urgent]
    if not urgent or len(urgent) == len(queued):
        return queued, []
    return urgent, [j for j in queued if not j.urgent]


class Turns:
    """Turns for a pool's connections, first come first served except that urgent jobs (a
    hedge's intent while leg A is unhedged) are served before any other waiting job.

    An ``asyncio.Semaphore`` with two queues: a turn given up is handed straight to the next
    waiter, so nobody can slip in between; a waiter cancelled after being handed one passes
    it on."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: dict[bool, collections.deque[asyncio.Future[None]]] = {
            True: collections.deque(),
            False: collections.deque(),
        }

    @asynccontextmanager
    async def turn(self, urgent: bool) -> AsyncIterator[None]:
        if self._free > 0 and not (self._waiting[True] or self._waiting[False]):
            self._free -= 1
        else:
            handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[urgent].append(handed)
            try:
                await handed
            except asyncio.CancelledError:
                if handed.done() and not handed.cancelled():
                    self._hand_on()  # it was ours already: the next waiter's now
                elif handed in self._waiting[urgent]:  # (a hand-on may have dropped it)
                    self._waiting[urgent].remove(handed)
                raise
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        for queue in (self._waiting[True], self._waiting[False]):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None


@dataclass
class SqliteRunner:
    """Runs store jobs on one sqlite3 connection in one thread, committing them in groups."""

    url: str
    _connection: sqlite3.Connection | None = None
    _executor: ThreadPoolExecutor | None = None
    _queue: list[_Job[Any]] = field(default_factory=list)
    _drainer: asyncio.Task[None] | None = None
    _file: tuple[str, int, int] | None = None
    """The database file's path, device and inode when it was opened (None in memory)."""

    async def open(self, migrate: Callable[[Connection], None]) -> None:
        self._executor = executor_for_sqlite()
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, self._connect)
            await loop.run_in_executor(self._executor, self._migrate, migrate)
        except BaseException:
            await self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        url = make_url(self.url).set(drivername="sqlite")
        timeout = lock_timeout(self.url)  # first: its error names the option
        args, kwargs = create_engine(url, poolclass=StaticPool).dialect.create_connect_args(url)
        database = str(args[0])
        connection = sqlite3.connect(
            database,
            uri=bool(kwargs.get("uri")),
            check_same_thread=False,
            isolation_level=None,  # transactions are begun and ended by hand, below
            timeout=timeout,
        )
        try:
            connection.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if database != ":memory:" and "mode=memory" not in database:
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            self._file = _main_file(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _check_file(self) -> None:
        """Refuse to commit into a file that is no longer the database's path: once unlinked
        (or replaced), every trade written there is gone at the next open, while the orders
        sent for them stay on the exchange."""
        if self._file is None:
            return
        path, device, inode = self._file
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (device, inode):
            raise StoreError(
                f"the database file {path} was {'deleted' if now is None else 'replaced'} "
                "while the store had it open: nothing more is committed to it (a restart "
                "would not see it); restore the file, then restart and run recover"
            )

    def _migrate(self, migrate: Callable[[Connection], None]) -> None:
        """Alembic wants a SQLAlchemy connection: one wrapped around ours, for the upgrade."""
        connection = self._connection
        engine = create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # one migrating process at a time

        with engine.begin() as conn:
            migrate(conn)
        # (not engine.dispose(): that would close the connection we lent it)

    async def run(
        self, job: Callable[[Db], T], writes: bool, urgent: bool = False, alone: bool = False
    ) -> T:
        if self._connection is None:
            raise RuntimeError("the trade store is not open (call await store.open())")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = _Job(job, writes, future, urgent)
        self._queue.append(pending)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="pairexec-db-commit")
        return await pending.future

    async def _drain(self) -> None:
        """Write what is queued as one transaction; repeat while jobs keep arriving."""
        loop = asyncio.get_running_loop()
        batch: list[_Job[Any]] = []
        try:
            while self._queue:
                batch, self._queue = _next_batch([j for j in self._queue if not j.future.done()])
                if not batch:
                    continue
                outcomes = await loop.run_in_executor(
                    self._executor,
                    self._transaction,
                    [(j.run, j.writes) for j in batch],
                    loop.time(),  # before the thread begins the transaction
                )
                for job, outcome in zip(batch, outcomes, strict=True):
                    if job.future.done():
                        continue
                    if outcome.error is not None:
                        job.future.set_exception(outcome.error)
                    else:
                        job.future.set_result(outcome.value)
                batch = []
        finally:  # cancelled (loop shutting down): nobody may wait forever
            for job in batch + self._queue:
                if not job.future.done():
                    job.future.set_exception(StoreError("the trade store was shut down"))
            self._queue = []

    def _transaction(
        self, jobs: list[tuple[Callable[[Db], Any], bool]], began: float
    ) -> list[_Outcome]:
        """In the database thread: the jobs in one transaction, each in its own savepoint."""
        assert self._connection is not None
        connection = self._connection
        db = SqliteDb(connection, began)
        writes = any(w for _, w in jobs)
        outcomes: list[_Outcome] = []
        try:
            connection.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            for run, _ in jobs:
                connection.execute("SAVEPOINT job")
                try:
                    outcomes.append(_Outcome(value=run(db)))
                    connection.execute("RELEASE job")
                except Exception as exc:
                    if not connection.in_transaction:
                        # SQLite rolled the whole transaction back itself (disk full, I/O
                        # error): the jobs before this one are undone too.
                        raise
                    connection.execute("ROLLBACK TO job")
                    connection.execute("RELEASE job")
                    outcomes.append(_Outcome(error=exc))
            self._check_file()
            connection.execute("COMMIT")
        except BaseException as exc:  # no lock, file gone, commit failed: nothing was written
            try:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            except sqlite3.Error:  # the connection is beyond use; exc says why
                pass
            return [_Outcome(error=exc) for _ in jobs]
        return outcomes

    async def close(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            await asyncio.gather(self._drainer, return_exceptions=True)
        self._drainer = None
        connection, self._connection = self._connection, None
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        executor.shutdown(wait=False)


# --- PostgreSQL (and any SQLAlchemy async URL) -----------------------------------------------


class SaDb:
    """``Db`` over a SQLAlchemy connection (inside ``run_sync``: calls look synchronous)."""

    alone = False  # every job runs in a transaction of its own

    def __init__(self, connection: Connection, texts: dict[str, TextClause], began: float) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.began = began
        self._texts = texts

    def _text(self, sql: str) -> TextClause:
        clause = self._texts.get(sql)
        if clause is None:
            clause = self._texts[sql] = text(sql)
        return clause

    def execute(self, sql: str, params: Params | None = None) -> int:
        with _conflicts():
            return int(self.connection.execute(self._text(sql), params or {}).rowcount)

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            with _conflicts():
                self.connection.execute(self._text(sql), list(rows))

    def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        return [tuple(r) for r in self.connection.execute(self._text(sql), params or {})]


@contextmanager
def _conflicts() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(str(exc.orig)) from exc


POOL_TIMEOUT = 30.0
"""SQLAlchemy's own bound on waiting for a free connection: a backstop only, since a job
takes a connection only once it has a turn, and there are as many turns as connections."""

POOL_SIZE = 15
"""Connections a store keeps to PostgreSQL, and so jobs it runs at once. As many as
SQLAlchemy's default pool allows (5 + 10 overflow), but all kept open once made: the overflow
ones were closed and reopened over and over in a burst (118 new connections in one run of
1,000 trades at once), each costing a TCP handshake and an authentication."""


class _ConnectTimedOut(Exception):
    """Opening a connection took longer than ``connect_timeout``."""


class AsyncEngineRunner:
    """Runs each store job in its own transaction on a SQLAlchemy async engine.

    Jobs take turns for the pool's connections (``_turns``): the pool's own wait for a free
    connection fails after its timeout, and a burst of trades stepping at once would turn into
    pairs with leg A filled and no hedge. A turn is waited for without a limit, as a lock
    is: it comes once the jobs ahead are done, and each of those is bounded.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._texts: dict[str, TextClause] = {}
        self._turns = Turns(POOL_SIZE)
        self._command_timeout = command_timeout(url)  # here: a bad option fails at open
        self._connect_timeout = connect_timeout(url)

    async def open(self, migrate: Callable[[Connection], None]) -> None:
        engine = create_async_engine(
            driver_url(self.url),
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=POOL_TIMEOUT,
            connect_args=connect_args(self.url),
        )
        event.listen(engine.sync_engine, "do_connect", _bounded_connect)
        try:
            with self._bounded("opening the database"):
                async with engine.begin() as conn:
                    await conn.run_sync(migrate)
        except BaseException:
            await self._dispose(engine)
            raise
        self._engine = engine

    async def run(
        self, job: Callable[[Db], T], writes: bool, urgent: bool = False, alone: bool = False
    ) -> T:
        if self._engine is None:
            raise StoreError("the trade store is not open (call await store.open())")
        async with self._turns.turn(urgent):
            began = asyncio.get_running_loop().time()
            with self._bounded("running a statement"):
                for first_try in (True, False):
                    async with self._engine.connect() as conn:
                        try:
                            result: T = await conn.run_sync(
                                lambda sync: job(SaDb(sync, self._texts, began))
                            )
                        except DBAPIError as exc:
                            if first_try and exc.connection_invalidated:
                                # Dead before COMMIT, so nothing of it was written: once more,
                                # on a new connection (instead of pinging before every job).
                                continue
                            raise
                        await conn.commit()  # a failure here: unknown whether it committed
                        return result
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _bounded(self, doing: str) -> Iterator[None]:
        with _timeouts_named(self.url, self._connect_timeout, self._command_timeout, doing):
            yield

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await self._dispose(engine)

    async def _dispose(self, engine: AsyncEngine) -> None:
        """Close the pool's connections, each within its bound; past it, drop them unsaid: a
        server that stopped answering must not keep ``close()`` waiting."""
        try:
            await _within(self._command_timeout + 1, engine.dispose())
        except (Exception, asyncio.TimeoutError):
            await engine.dispose(close=False)  # the sockets go with the connection objects


@contextmanager
def _timeouts_named(url: str, connect: float, command: float, doing: str) -> Iterator[None]:
    """asyncpg's timeouts as errors that say which bound ran out, and how to change it."""
    try:
        yield
    except _ConnectTimedOut as exc:
        raise StoreError(
            f"database {redacted(url)}: no connection within {connect:g} s"
            " (URL option ?connect_timeout=SECONDS); nothing was written, an unfinished "
            "trade is resumed by recover"
        ) from exc
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise StoreError(
            f"database {redacted(url)} did not answer within {command:g} s while {doing} "
            "(URL option ?command_timeout=SECONDS): its write, if any, is not known to be "
            "saved, nothing is sent on it, and recover resumes an unfinished trade from what was"
        ) from exc


def connect_args(url: str) -> dict[str, Any]:
    """What asyncpg is given besides ``driver_url(url)``: pairexec's bounds, as its arguments
    (``command_timeout`` covers every query, BEGIN, COMMIT and the close)."""
    if make_url(driver_url(url)).get_driver_name() != "asyncpg":
        return {}
    return {
        "command_timeout": command_timeout(url),
        "timeout": connect_timeout(url),
        "server_settings": {"lock_timeout": str(int(lock_timeout(url) * 1000))},
    }


async def _within(seconds: float, call: Any) -> Any:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)  # pragma: no cover - Python 3.10


def _bounded_connect(
    dialect: Dialect, record: ConnectionPoolEntry, cargs: Any, cparams: dict[str, Any]
) -> Any:
    """Open a connection, telling a connect that timed out from a statement that did."""
    try:
        return dialect.connect(*cargs, **cparams)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise _ConnectTimedOut(str(exc)) from exc


# --- PostgreSQL through asyncpg itself: the hot path --------------------------------------


_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
"""A ``:name`` parameter (not a ``::type`` cast)."""


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with ``:name`` parameters as asyncpg's ``$1, $2...``, and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match[1]
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


def _rowcount(status: str) -> int:
    """The rows a command changed, from its status (``UPDATE 3``, ``INSERT 0 1``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgDb:
    """``Db`` on a plain asyncpg connection, inside ``greenlet_spawn``: each call awaits the
    driver through ``await_only``, so a job's synchronous code runs unchanged. asyncpg
    prepares and caches each statement per connection."""

    dialect = "postgresql"

    def __init__(self, connection: Any, began: float, alone: bool = False) -> None:
        self.connection = connection
        self.began = began
        self.alone = alone
        self._sent = False

    def execute(self, sql: str, params: Params | None = None) -> int:
        text, names = _numbered(sql)
        self._sending()
        with _pg_conflicts():
            status = await_only(self.connection.execute(text, *_args(names, params)))
        return _rowcount(str(status))

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            text, names = _numbered(sql)
            self._sending()
            with _pg_conflicts():
                await_only(self.connection.executemany(text, [_args(names, r) for r in rows]))

    def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        text, names = _numbered(sql)
        self._sending()
        with _pg_conflicts():
            rows = await_only(self.connection.fetch(text, *_args(names, params)))
        return [tuple(r) for r in rows]

    def _sending(self) -> None:
        """Outside a transaction, a job's second statement would commit apart from its first:
        a write half done. Refused before it is sent (a bug of the job, never the data's)."""
        if self.alone and self._sent:
            raise StoreError("a job run outside a transaction sent a second statement")
        self._sent = True


def _args(names: tuple[str, ...], params: Params | None) -> list[Any]:
    values = params or {}
    return [values[name] for name in names]


@contextmanager
def _pg_conflicts() -> Iterator[None]:
    import asyncpg

    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        detail = f"\nDETAIL: {exc.detail}" if getattr(exc, "detail", None) else ""
        raise Conflict(f"{exc}{detail}") from exc


class AsyncpgRunner:
    """Runs each store job in its own transaction on a plain asyncpg pool.

    Why not SQLAlchemy here: profiling 300 trades on PostgreSQL, its execution layer (compiled
    caches, cursor and result adaptation, its pool on top of asyncpg's) was about half of the
    store's CPU per trade. SQLAlchemy still migrates the schema (alembic), on a connection of
    its own at ``open``; the jobs, written once for both backends against ``Db``, run here
    through greenlets as they did inside SQLAlchemy's ``run_sync``.

    The same rules as ``AsyncEngineRunner``: jobs take turns for the pool's connections; a
    connection found dead before COMMIT is retried once on a new one (nothing of it was
    written); a failure during COMMIT leaves it unknown whether it committed; every
    statement is bounded by ``command_timeout``, opening a connection by ``connect_timeout``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None
        self._turns = Turns(POOL_SIZE)
        self._command_timeout = command_timeout(url)  # here: a bad option fails at open
        self._connect_timeout = connect_timeout(url)
        self._migrator = AsyncEngineRunner(url)

    async def open(self, migrate: Callable[[Connection], None]) -> None:
        import asyncpg

        await self._migrator.open(migrate)
        await self._migrator.close()
        parsed = make_url(driver_url(self.url))
        options: dict[str, Any] = parsed.translate_connect_args(username="user")
        options.update(parsed.query)
        with self._bounded("opening the database"):
            self._pool = await asyncpg.create_pool(
                min_size=0,
                max_size=POOL_SIZE,
                reset=_session_unchanged,
                **options,
                **connect_args(self.url),
            )

    async def run(
        self, job: Callable[[Db], T], writes: bool, urgent: bool = False, alone: bool = False
    ) -> T:
        if self._pool is None:
            raise StoreError("the trade store is not open (call await store.open())")
        attempt = self._alone if alone else self._transaction
        async with self._turns.turn(urgent):
            began = asyncio.get_running_loop().time()
            with self._bounded("running a statement"):
                try:
                    return await attempt(job, began)
                except _Reconnect:
                    pass  # once more, on a new connection (instead of pinging before every job)
                try:
                    return await attempt(job, began)
                except _Reconnect as again:
                    raise again.dead from None

    async def _alone(self, job: Callable[[Db], T], began: float) -> T:
        """A job of one statement, which PostgreSQL commits by itself: no BEGIN, no COMMIT.
        Why: a write was BEGIN, three statements, COMMIT, each a round trip, and each round
        trip a send and a receive on the bot's event loop; as one statement a write costs a
        third of the CPU and half the time (measured on this machine, 1 and 20 at a time).

        Its failure leaves it unknown whether it committed, as a failed COMMIT does; it is run
        again only if asyncpg refused it before sending it (a connection it knew closed)."""
        import asyncpg

        connection = await self._acquire()
        try:
            return await greenlet_spawn(job, PgDb(connection, began, alone=True))
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # asyncpg refused it before anything went to the server (a connection lost
            # under the statement is ConnectionDoesNotExistError: unknown, not retried)
            if _dying(exc):
                _drop(connection)
            elif not _is_disconnect(exc):
                raise
            raise _Reconnect(exc) from exc
        finally:
            await self._release(connection)

    async def _acquire(self) -> Any:
        try:
            return await self._pool.acquire()
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise _ConnectTimedOut(str(exc)) from exc

    async def _transaction(self, job: Callable[[Db], T], began: float) -> T:
        import asyncpg

        connection = await self._acquire()
        committing = False
        try:
            transaction = connection.transaction()
            await transaction.start()
            try:
                result: T = await greenlet_spawn(job, PgDb(connection, began))
            except BaseException:
                await self._roll_back(connection, transaction)
                raise
            committing = True
            await transaction.commit()  # a failure here: unknown whether it committed
            return result
        except (
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
        ) as exc:
            if committing or not (_is_disconnect(exc) or _dying(exc)):
                raise
            if _dying(exc):
                _drop(connection)
            raise _Reconnect(exc) from exc  # dead before COMMIT: nothing of it was written
        finally:
            await self._release(connection)

    async def _roll_back(self, connection: Any, transaction: Any) -> None:
        """Undo a failed job; a connection that cannot even do that is dropped (terminating
        a pool's connection hands its slot back; a new one is made when needed)."""
        try:
            await _within(self._command_timeout + 1, transaction.rollback())
        except Exception:
            connection.terminate()
        except BaseException:  # cancelled: the connection's state is unknown, the task's is not
            connection.terminate()
            raise

    async def _release(self, connection: Any) -> None:
        """Hand a connection back; one that cannot be reset is dropped. The job's outcome
        stands either way: it was decided before (committed, or not)."""
        try:
            await self._pool.release(connection, timeout=self._command_timeout + 1)
        except Exception:
            _drop(connection)
        except BaseException:
            _drop(connection)
            raise

    @contextmanager
    def _bounded(self, doing: str) -> Iterator[None]:
        with _timeouts_named(self.url, self._connect_timeout, self._command_timeout, doing):
            yield

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await _within(self._command_timeout + 1, pool.close())
        except (Exception, asyncio.TimeoutError):
            pool.terminate()


def _drop(connection: Any) -> None:
    """Terminate a pool's connection, unless its release got far enough to detach it (then
    asyncpg's pool terminated it itself, and the proxy refuses to be terminated again)."""
    import asyncpg

    with suppress(asyncpg.InterfaceError):
        connection.terminate()


async def _session_unchanged(connection: Any) -> None:
    """A pool's connection needs no reset when a job hands it back: asyncpg's default sends
    ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`` on every release, a
    round trip per job (3 of a trade's 19 when measured, before writes were one statement),
    for session state that
    no job leaves: the jobs take no session advisory lock, open no cursor, listen to nothing
    and SET nothing (``lock_timeout`` is a startup setting of the connection). A transaction
    still open is rolled back by asyncpg itself before this is called."""


class _Reconnect(Exception):
    """The connection was found dead before COMMIT: run the job again on a new one."""

    def __init__(self, dead: BaseException) -> None:
        super().__init__(str(dead))
        self.dead = dead


def _is_disconnect(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, asyncpg.ConnectionDoesNotExistError) or "closed" in str(exc)


def _dying(exc: BaseException) -> bool:
    """asyncpg refused to start an operation, before sending it, because the connection is
    still taking in an error the server sent unasked: a backend terminated while the
    connection sat idle in the pool (its FATAL came in, the close not yet). The connection is
    no use any more, and nothing of the operation reached the server."""
    import asyncpg

    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc)


class Runner(Protocol):
    async def open(self, migrate: Callable[[Connection], None]) -> None: ...

    async def run(
        self, job: Callable[[Db], T], writes: bool, urgent: bool = False, alone: bool = False
    ) -> T:
        """``urgent``: the job commits a hedge's intent while leg A is unhedged (it goes
        before others where jobs wait). ``alone``: the job sends one statement when its
        ``Db.alone`` is true; a backend that commits a statement by itself may then run it
        outside a transaction (PostgreSQL through asyncpg), the others run it in one."""

    async def close(self) -> None: ...


def describe_error(exc: BaseException) -> str:
    """One line for a driver error: its type and message (SQLAlchemy's add a URL to docs)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
