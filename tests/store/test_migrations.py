"""The alembic migrations create the schema the models describe, and refuse newer schemas."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from pairexec import TradeState
from pairexec.fsm.model import Change, Lease
from pairexec.migrations import alembic_config
from pairexec.persistence import StoreError, TradeStore, head_revision
from pairexec.persistence.models import Base
from tests.conftest import BACKENDS, drop_pg_database, new_pg_database, pg_url
from tests.support.paths import ROOT


def test_alembic_upgrade_head_creates_schema_matching_models(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    command.upgrade(alembic_config(url), "head")

    engine = create_engine(url)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= {"trades", "orders", "trade_events"}
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    engine.dispose()
    assert diff == []


def test_alembic_command_line_from_a_checkout(tmp_path: Path):
    db = tmp_path / "cli.db"
    subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db=sqlite:///{db}", "upgrade", "head"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with sqlite3.connect(db) as conn:
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert revision == head_revision()


async def test_store_migrates_on_open_and_is_idempotent(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with TradeStore(url) as store:
        assert await store.count_trades() == 0
    async with TradeStore(url) as store:  # second open: already at head, nothing lost
        assert await store.count_trades() == 0


async def test_database_from_a_newer_pairexec_is_refused(tmp_path: Path):
    path = tmp_path / "newer.db"
    async with TradeStore(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(StoreError, match="newer pairexec"):
        await TradeStore(f"sqlite:///{path}").open()


async def test_unusable_database_gives_a_clear_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open database"):
        await TradeStore(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}").open()


async def test_upgrade_from_the_first_schema_keeps_trades(tmp_path: Path):
    """A database written by the first release, with a trade in flight, upgrades in place."""
    path = tmp_path / "old.db"
    await asyncio.to_thread(command.upgrade, alembic_config(f"sqlite:///{path}"), "0001_initial")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO trades (id, signal_id, inflight_key, pair_x, side_x, amount_x, pair_y,"
            " side_y, hedge_ratio, state, reason, created_at, updated_at) VALUES ('t1', 's1',"
            " 'k', 'BTC/USDT', 'buy', 1.0, 'ETH/USDT', 'sell', 1.0, 'LEG_A_SENT', '',"
            " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    async with TradeStore(f"sqlite:///{path}") as store:
        [trade] = await store.list_trades()
        assert await store.unfinished_trade_ids() == ["t1"]
        assert trade.version == 0 and trade.created_at.year == 2026
        # and it can be driven on: claimed, then moved with a versioned write
        assert await store.claim(Lease("me", datetime.now(timezone.utc))) == ["t1"]
        moved = await store.apply(trade, Change("parked by hand", TradeState.PARKED))
        assert await store.load("t1") == moved
    assert trade.request.signal_id == "s1" and trade.state.value == "LEG_A_SENT"


async def open_together(url: str, stores: int) -> list[int]:
    """Open ``stores`` stores on ``url`` at once (60 s at most); each one's trade count."""
    opened = [TradeStore(url) for _ in range(stores)]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.open() for s in opened)), 60)
        return [await store.count_trades() for store in opened]
    finally:
        for store in opened:
            await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_processes_starting_together_on_an_empty_database_migrate_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
):
    name = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        request.getfixturevalue("pg_template")  # PostgreSQL is up
        name = new_pg_database("template0")
        url = pg_url(name)

    try:
        # without the migration lock this deadlocks on PostgreSQL: fail, don't hang
        assert asyncio.run(open_together(url, 4)) == [0, 0, 0, 0]
    finally:
        if name:
            drop_pg_database(name)


def test_many_stores_in_one_process_opening_new_databases_together(tmp_path: Path):
    """Alembic's context is process-global: stores migrating at once must take turns.

    Without the in-process migration lock this failed about one round in three (a store ran
    its migrations on another's connection: "table trades already exists", KeyError 'config',
    "database is locked"); thirty rounds make a silent pass of a broken lock very unlikely.
    """

    async def rounds() -> list[list[int]]:
        return [await open_together(f"sqlite:///{tmp_path / f'new{n}.db'}", 8) for n in range(30)]

    assert asyncio.run(rounds()) == [[0] * 8] * 30
