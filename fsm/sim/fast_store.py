"""Per-scenario databases without paying for alembic each time.

Why: ``TradeStore.open()`` runs alembic's upgrade check (it reloads the migration scripts and
``env.py``): 15-25 ms, about a quarter of a whole scenario, and a scenario used to open two
stores (its own, and the one ``check_invariants`` opens by URL). Thousands of scenarios in CI
make that the difference between one minute and two. So, in the simulation only:

- the schema is migrated once per process, the normal way, into a template database, and each
  scenario's fresh in-memory database is a copy of it (SQLite's backup API); a store opened
  on a copy finds it at the head revision and migrates nothing;
- the checks read a ``Snapshot`` of what the scenario's store held, instead of a second store.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

from sqlalchemy.exc import SADeprecationWarning

from pairexec.fsm.model import EventRecord, TradeRecord
from pairexec.fsm.sim.runtime import run_deterministic
from pairexec.persistence import TradeStore


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


class Snapshot:
    """The trades and journals of a finished scenario, read once, for every check."""

    def __init__(self, trades: Sequence[TradeRecord], events: dict[str, list[EventRecord]]):
        self.trades = list(trades)
        self.events_of = events

    @classmethod
    async def load(cls, store: TradeStore) -> Snapshot:
        trades = await store.list_trades(limit=100_000)
        return cls(trades, {t.id: await store.events(t.id) for t in trades})

    async def list_trades(self, *, limit: int) -> list[TradeRecord]:
        """The ``TradeReader`` reads, so the invariant checks take a snapshot for a store."""
        return self.trades[:limit]

    async def events(self, trade_id: str) -> list[EventRecord]:
        return self.events_of[trade_id]
