"""Shared fixtures: a fast engine configuration, real SQLite files, the fake exchange."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pairexec import EngineConfig, ExecutionEngine, PairTradeRequest
from pairexec.persistence import TradeStore
from tests.support.fake_exchange import FakeExchange

FAST = EngineConfig(
    lookup_backoff=0.001,
    max_backoff=0.01,
    settle_timeout=0.05,
    settle_poll_interval=0.01,
    call_timeout=2.0,
)


def btc_eth(amount: float = 1.0, hedge_ratio: float = 1.0, signal_id: str | None = None):
    return PairTradeRequest(
        pair_x="BTC/USDT",
        side_x="buy",
        amount_x=amount,
        pair_y="ETH/USDT",
        side_y="sell",
        hedge_ratio=hedge_ratio,
        signal_id=signal_id,
    )


PG_ADMIN = os.environ.get("PAIREXEC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
"""A PostgreSQL role that may create databases. PAIREXEC_TEST_PG=off runs SQLite only."""
BACKENDS = ["sqlite"] if PG_ADMIN == "off" else ["sqlite", "postgresql"]


async def _pg_admin(*statements: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def pg_url(database: str) -> str:
    return str(
        make_url(PG_ADMIN)
        .set(drivername="postgresql+asyncpg", database=database)
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """One migrated database per test run; each test gets a fresh copy of it."""
    name = f"pairexec_tmpl_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN} is not usable ({exc}); start it, or set "
            "PAIREXEC_TEST_PG=off to run the SQLite half only"
        )

    async def migrate() -> None:
        async with TradeStore(pg_url(name)):
            pass

    asyncio.run(migrate())
    yield name
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def new_pg_database(template: str) -> str:
    name = f"pairexec_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_db(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database, for tests that need PostgreSQL itself (not either store)."""
    name = new_pg_database(pg_template)
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty trades database: a SQLite file, and (second run) a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}"
        return
    name = new_pg_database(request.getfixturevalue("pg_template"))
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture
def exchange() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
async def engine(exchange: FakeExchange, db_url: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(exchange, store=TradeStore(db_url), config=FAST) as eng:
        yield eng


SLOW_FIRST = (
    "tests/store/test_store_faults.py::test_a_burst",
    "tests/system/test_scale_out.py",
    "tests/system/test_cli.py::test_trade_outcomes_map_to_exit_codes",
    "tests/system/test_cli_resolve.py",
    "tests/system/test_crash_matrix",
    "tests/store/test_store_interleavings.py",
    "tests/sim/test_simulation.py::test_scenarios_on_postgresql_keep_every_invariant",
    "tests/sim/test_simulation.py::test_scenarios_keep_every_invariant",
)
"""Tests of 15-40 s each, measured (``--durations``), the longest single ones first."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first: the xdist workers then end together, instead of one of them
    running a 40 s test alone at the end of the run (it made CI's last minute)."""

    def rank(item: pytest.Item) -> int:
        return next(
            (i for i, p in enumerate(SLOW_FIRST) if item.nodeid.startswith(p)), len(SLOW_FIRST)
        )

    items.sort(key=rank)
