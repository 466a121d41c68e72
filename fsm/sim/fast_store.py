"""Per-scenario databases without paying for alembic each time: in-memory SQLite, or a
PostgreSQL server.

Why: ``TradeStore.open()`` runs alembic's upgrade check (it reloads the migration scripts and
``env.py``): 15-25 ms, about a quarter of a whole scenario, and a scenario used to open two
stores (its own, and the one ``check_invariants`` opens by URL). Thousands of scenarios in CI
make that the difference between one minute and two. So, in the simulation only:

- the schema is migrated once per process, the normal way, into a template database, and each
  scenario's fresh in-memory database is a copy of it (SQLite's backup API); a store opened
  on a copy finds it at the head revision and migrates nothing;
- the checks read a ``Snapshot`` of what the scenario's store held, instead of a second store.

On PostgreSQL (``pairexec simulate --postgres URL``, a few hundred seeds in CI) each process
creates one database of its own on the server, migrated once, and empties it before each
scenario (``TRUNCATE``); it is dropped when the process exits. Every call to the server is
awaited under ``runtime.awaiting_server``, so the virtual clock waits for its answers.

A ``ScenarioDb`` also answers the two questions the checks put to the database itself: an
order row's status and leg at the moment its ``create_order`` goes out (persist before send),
and the journal's global order (event ids) for the one-in-flight-per-key check.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import os
import sqlite3
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SADeprecationWarning

from pairexec.fsm.model import EventRecord, TradeRecord
from pairexec.fsm.sim.invariants import TradeReader
from pairexec.fsm.sim.runtime import awaiting_server, run_deterministic
from pairexec.persistence import TradeStore

if TYPE_CHECKING:  # the PostgreSQL driver is optional ('.[postgres]'): imported where used
    import asyncpg


class OrderRow(NamedTuple):
    status: str
    leg: str
    trade_id: str


JournalRow = tuple[int, str, str]
"""(event id, trade id, the state entered): the journal in the database's global order."""
PG_TIMEOUT = 10.0
"""Seconds for the harness's own statements on PostgreSQL (creating, emptying, dropping)."""


def each_call_within(attr: Any, context: Callable[[], AbstractAsyncContextManager[object]]) -> Any:
    """``attr`` as it is, or if a coroutine function, one whose every call runs inside
    ``context()`` (for the proxies of a store that put something around all its calls)."""
    if not inspect.iscoroutinefunction(attr):
        return attr

    @functools.wraps(attr)
    async def call(*args: Any, **kwargs: Any) -> Any:
        async with context():
            return await attr(*args, **kwargs)

    return call


class OnServer:
    """A store whose every coroutine method is awaited under ``awaiting_server``."""

    def __init__(self, store: TradeStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return each_call_within(getattr(self._store, name), awaiting_server)


ScenarioStore = TradeStore | OnServer


class ScenarioDb(Protocol):
    """A scenario's trades database, as the harness sees it."""

    url: str
    """For the scenario's ``TradeStore``."""

    async def order_row(self, client_order_id: str) -> OrderRow | None:
        """The order row as committed, or None if there is none."""

    async def journal_order(self) -> list[JournalRow]: ...

    def store(self) -> ScenarioStore:
        """A ``TradeStore`` on it (on a server: one whose every call the clock waits for)."""


@cache
def _template() -> sqlite3.Connection:
    """A migrated, empty trades database (built once per process, by the real migration)."""
    uri = "file:pairexec-sim-template?mode=memory&cache=shared"
    keep = sqlite3.connect(uri, uri=True, check_same_thread=False)

    async def migrate() -> None:
        store = TradeStore(f"sqlite+aiosqlite:///{uri}&uri=true")
        await store.open()
        await store.close()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Selection of the StaticPool", SADeprecationWarning)
        run_deterministic(migrate)
    return keep


@contextmanager
def scenario_database(uri: str) -> Iterator[sqlite3.Connection]:
    """The shared-cache memory database ``uri``, a fresh copy of the template, for the block.

    The connection yielded keeps it alive (a memory database lives while a connection does).
    SQLAlchemy's notice
    that it picks a StaticPool for ``mode=memory`` URLs (deprecated wording, same behaviour)
    is silenced: thousands of scenarios would print it thousands of times.
    """
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        _template().backup(db)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Selection of the StaticPool", SADeprecationWarning)
            yield db
    finally:
        db.close()


class SqliteScenarioDb:
    """A scenario's in-memory SQLite database (``scenario_database``), read on a second
    connection with ``read_uncommitted``: another trade's driver may be inside a transaction
    when an order row is read, and waiting for it would change the run. The row read belongs
    to the calling driver, so nothing uncommitted touches it."""

    def __init__(self, uri: str) -> None:
        self.url = f"sqlite+aiosqlite:///{uri}&uri=true"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._db.execute("PRAGMA read_uncommitted = 1")

    def store(self) -> TradeStore:
        return TradeStore(self.url)

    async def order_row(self, client_order_id: str) -> OrderRow | None:
        row = self._db.execute(
            "SELECT status, leg, trade_id FROM orders WHERE client_order_id = ?",
            (client_order_id,),
        ).fetchone()
        return None if row is None else OrderRow(*map(str, row))

    async def journal_order(self) -> list[JournalRow]:
        rows = self._db.execute("SELECT id, trade_id, to_state FROM trade_events ORDER BY id")
        return [(int(i), str(t), str(s)) for i, t, s in rows.fetchall()]

    def close(self) -> None:
        self._db.close()


@contextmanager
def sqlite_scenario(uri: str) -> Iterator[SqliteScenarioDb]:
    """A fresh in-memory database ``uri`` for one scenario, with its reader."""
    with scenario_database(uri):
        db = SqliteScenarioDb(uri)
        try:
            yield db
        finally:
            db.close()


def _on(admin_url: str, driver: str, database: str | None = None) -> str:
    """``admin_url`` with ``driver`` (asyncpg's own ``postgresql``, or the store's
    ``postgresql+asyncpg``), on ``database`` if given."""
    url = make_url(admin_url).set(drivername=driver)
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@cache
def pg_database(admin_url: str) -> str:
    """This process's own migrated database on the server of ``admin_url`` (created once,
    dropped at exit), by name. Outside any event loop: it runs one of its own."""
    import asyncpg

    name = f"pairexec_sim_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(_on(admin_url, "postgresql"), timeout=PG_TIMEOUT)
        try:
            await conn.execute(statement, timeout=PG_TIMEOUT)
        finally:
            await conn.close(timeout=PG_TIMEOUT)

    async def create() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        async with TradeStore(_on(admin_url, "postgresql+asyncpg", name)):  # migrated as usual
            pass

    asyncio.run(create())
    atexit.register(lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    return name


class PostgresScenarioDb:
    """This process's database on a PostgreSQL server, emptied for one scenario. Reads are
    committed ones: an order row's intent is committed before its send, so it is there."""

    def __init__(self, url: str, connection: asyncpg.Connection) -> None:
        self.url = url
        self._conn = connection

    def store(self) -> OnServer:
        return OnServer(TradeStore(self.url))

    async def order_row(self, client_order_id: str) -> OrderRow | None:
        async with awaiting_server():
            row = await self._conn.fetchrow(
                "SELECT status, leg, trade_id FROM orders WHERE client_order_id = $1",
                client_order_id,
                timeout=PG_TIMEOUT,
            )
        return None if row is None else OrderRow(*map(str, row))

    async def journal_order(self) -> list[JournalRow]:
        async with awaiting_server():
            rows = await self._conn.fetch(
                "SELECT id, trade_id, to_state FROM trade_events ORDER BY id", timeout=PG_TIMEOUT
            )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


@asynccontextmanager
async def postgres_scenario(admin_url: str, name: str) -> AsyncIterator[PostgresScenarioDb]:
    """Database ``name`` (``pg_database``) on ``admin_url``'s server, emptied, for one
    scenario."""
    import asyncpg

    async with awaiting_server():
        conn = await asyncpg.connect(_on(admin_url, "postgresql", name), timeout=PG_TIMEOUT)
    try:
        async with awaiting_server():
            await conn.execute(
                "TRUNCATE trade_events, orders, trades RESTART IDENTITY CASCADE",
                timeout=PG_TIMEOUT,
            )
        yield PostgresScenarioDb(_on(admin_url, "postgresql+asyncpg", name), conn)
    finally:
        async with awaiting_server():
            await conn.close(timeout=PG_TIMEOUT)


class Snapshot:
    """The trades and journals of a finished scenario, read once, for every check."""

    def __init__(self, trades: Sequence[TradeRecord], events: dict[str, list[EventRecord]]):
        self.trades = list(trades)
        self.events_of = events

    @classmethod
    async def load(cls, store: TradeReader) -> Snapshot:
        trades = await store.list_trades(limit=100_000)
        return cls(trades, {t.id: list(await store.events(t.id)) for t in trades})

    async def list_trades(self, *, limit: int) -> list[TradeRecord]:
        """The ``TradeReader`` reads, so the invariant checks take a snapshot for a store."""
        return self.trades[:limit]

    async def events(self, trade_id: str) -> list[EventRecord]:
        return self.events_of[trade_id]
