"""Per-scenario databases without paying for alembic each time.

Why: ``TradeStore.open()`` runs alembic's upgrade check (it reloads the migration scripts and
``env.py``): 15-25 ms, about a quarter of a whole scenario, and a scenario used to open two
stores (its own, and the one ``check_invariants`` opens by URL). Thousands of scenarios in CI
make that the difference between one minute and two. So, in the simulation only:

- the schema is migrated once per process, the normal way, into a template database, and each
  scenario's fresh in-memory database is a copy of it (SQLite's backup API);
- ``_migrate_to_head`` is skipped for a database already at the head revision (what alembic
  would conclude anyway: nothing to upgrade); any other database goes through it unchanged;
- ``check_invariants`` (which opens a store by URL) is handed a read-only view of what the
  scenario's store already loaded, instead of a second store.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any
from unittest import mock

from sqlalchemy.exc import SADeprecationWarning

import pairexec.persistence.store
import tests.invariants
from pairexec.persistence import EventRecord, TradeRecord, TradeStore, head_revision
from tests.sim.runtime import run_deterministic


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
    Stores opened on it inside the block skip the (no-op) migration, and SQLAlchemy's notice
    that it picks a StaticPool for ``mode=memory`` URLs (deprecated wording, same behaviour)
    is silenced: thousands of scenarios would print it thousands of times.
    """
    db = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        _template().backup(db)
        with warnings.catch_warnings(), skip_migration_at_head():
            warnings.filterwarnings("ignore", "Selection of the StaticPool", SADeprecationWarning)
            yield db
    finally:
        db.close()


@cache
def _head() -> str:
    return head_revision()


def _at_head(connection: Any) -> bool:
    try:
        row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    except Exception:  # no alembic_version table: an empty database, migrate it
        return False
    return row is not None and row[0] == _head()


@contextmanager
def skip_migration_at_head() -> Iterator[None]:
    migrate = pairexec.persistence.store._migrate_to_head

    def migrate_unless_at_head(connection: Any) -> None:
        if not _at_head(connection):
            migrate(connection)

    with mock.patch.object(pairexec.persistence.store, "_migrate_to_head", migrate_unless_at_head):
        yield


class Snapshot:
    """The trades and journals of a finished scenario, read once, for every check."""

    def __init__(self, trades: Sequence[TradeRecord], events: dict[str, list[EventRecord]]):
        self.trades = list(trades)
        self.events = events

    @classmethod
    async def load(cls, store: TradeStore) -> Snapshot:
        trades = await store.list_trades(limit=100_000)
        return cls(trades, {t.id: await store.events(t.id) for t in trades})


class _SnapshotStore:
    """What ``check_invariants`` asks of a store (``async with``, two reads), from a snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def __call__(self, url: str) -> _SnapshotStore:  # stands in for TradeStore(url)
        return self

    async def __aenter__(self) -> _SnapshotStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def list_trades(self, state: object = None, limit: int = 100) -> list[TradeRecord]:
        return self._snapshot.trades[:limit]

    async def events(self, trade_id: str) -> list[EventRecord]:
        return self._snapshot.events[trade_id]


@contextmanager
def invariants_read(snapshot: Snapshot) -> Iterator[None]:
    """Let ``tests.invariants.check_invariants`` read ``snapshot`` instead of opening a store."""
    with mock.patch.object(tests.invariants, "TradeStore", _SnapshotStore(snapshot)):
        yield
