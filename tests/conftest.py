"""Shared fixtures: a fast engine configuration, real SQLite files, the fake exchange."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fsm import EngineConfig, ExecutionEngine, PairTradeRequest
from persistence import TradeStore
from tests.fake_exchange import FakeExchange

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


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}"


@pytest.fixture
def exchange() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
async def engine(exchange: FakeExchange, db_url: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(exchange, store=TradeStore(db_url), config=FAST) as eng:
        yield eng
