"""The seed's seven chaos scenarios again, through the real ccxt binance client over HTTP.

Same scenarios and counts as ``test_seed_scenarios.py``, but every exchange call is real ccxt
(``ccxt.async_support.binance``: request signing, Binance's order format and error codes)
talking to ``support.fake_binance`` on 127.0.0.1, and what is asserted is what the server saw
and what its book holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance

# the fake server's fixtures, used by name
fake, binance, trades_db = fake_binance.fake, fake_binance.binance, fake_binance.trades_db


@pytest.fixture
async def engine(binance: ccxt_async.binance, trades_db: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(binance, store=TradeStore(trades_db), config=FAST) as eng:
        yield eng


def quantities(fake: FakeBinance, symbol: str) -> list[str]:
    return [r.params["quantity"] for r in fake.seen("create", symbol)]


async def test_1_partial_fill_60_percent_hedges_actual_fill(engine, fake: FakeBinance):
    fake.behave("BTC/USDT", fill=0.6)  # Binance: EXPIRED with executedQty 0.6

    outcome = await engine.execute_pair_trade(btc_eth(1.0))

    assert outcome.state is TradeState.DONE and outcome.ok, outcome.reason
    assert outcome.filled_x == 0.6
    assert quantities(fake, "ETH/USDT") == ["0.6"]  # not 1.0
    assert outcome.filled_y == 0.6


async def test_2_severe_partial_fill_aborts_without_hedge(engine, fake: FakeBinance):
    fake.behave("BTC/USDT", "buy", fill=0.1)

    outcome = await engine.execute_pair_trade(btc_eth(1.0))

    assert outcome.state is TradeState.ABORTED and not outcome
    assert fake.seen("create", "ETH/USDT") == []  # leg B never sent
    unwind = [r for r in fake.seen("create", "BTC/USDT") if r.params["side"] == "SELL"]
    assert [r.params["quantity"] for r in unwind] == ["0.1"]
    assert outcome.unwound_x == 0.1


async def test_3_ghost_order_is_looked_up(engine, fake: FakeBinance):
    fake.fail("create", "ETH/USDT", "timeout_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create")) == 2  # leg A + leg B attempt
    [leg_b] = fake.seen("create", "ETH/USDT")
    lookups = fake.seen("fetch", "ETH/USDT")
    assert lookups and lookups[0].params["origClientOrderId"] == leg_b.params["newClientOrderId"]
    assert outcome.state is TradeState.DONE


async def test_4_ghost_order_that_filled_prevents_duplicate(engine, fake: FakeBinance):
    fake.fail("create", "ETH/USDT", "timeout_after_accept")  # it DID go through, filled 1.0

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create")) == 2
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


async def test_5_concurrent_spam_executes_once(engine, fake: FakeBinance):
    outcomes = await asyncio.gather(*(engine.execute_pair_trade(btc_eth()) for _ in range(5)))

    executed = [o for o in outcomes if not o.duplicate]
    assert len(executed) == 1 and executed[0].state is TradeState.DONE
    assert sum(o.duplicate for o in outcomes) == 4
    assert len(fake.seen("create")) == 2
    assert len(fake.orders()) == 2
    assert await engine.store.count_trades() == 1


async def test_6_sequential_signals_all_execute(engine, fake: FakeBinance):
    outcomes = [await engine.execute_pair_trade(btc_eth()) for _ in range(5)]

    assert all(o.ok for o in outcomes)
    assert len(fake.seen("create")) == 10
    assert len(fake.orders()) == 10


async def test_7_partial_fill_plus_concurrent_spam(engine, fake: FakeBinance):
    fake.behave("BTC/USDT", fill=0.6)

    outcomes = await asyncio.gather(*(engine.execute_pair_trade(btc_eth()) for _ in range(3)))

    executed = [o for o in outcomes if not o.duplicate]
    assert len(executed) == 1
    assert executed[0].filled_x == 0.6 and executed[0].filled_y == 0.6
    assert sum(o.duplicate for o in outcomes) == 2
    assert len(fake.seen("create")) == 2
    assert quantities(fake, "ETH/USDT") == ["0.6"]
