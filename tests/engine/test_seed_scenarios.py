"""The seven chaos scenarios of ../shared/seed/chaos-tests-summary.md, with the seed's counts.

The prototype failed 5 and 7 (concurrent duplicate signals); the seed's proposed fix was a
global lock. Here the database's in-flight key does it, and different pairs still overlap.
"""

from __future__ import annotations

import asyncio

from pairexec import ExecutionEngine, TradeState
from tests.conftest import btc_eth
from tests.support.fake_exchange import FakeExchange


async def test_1_partial_fill_60_percent_hedges_actual_fill(engine, exchange: FakeExchange):
    exchange.behave("BTC/USDT", fill=0.6)  # "closed" with filled=0.6

    outcome = await engine.execute_pair_trade(btc_eth(1.0))

    assert outcome.state is TradeState.DONE and outcome.ok
    assert outcome.filled_x == 0.6
    leg_b = exchange.create_calls("ETH/USDT")
    assert [c.amount for c in leg_b] == [0.6]  # not 1.0
    assert outcome.filled_y == 0.6


async def test_2_severe_partial_fill_aborts_without_hedge(engine, exchange: FakeExchange):
    exchange.behave("BTC/USDT", "buy", fill=0.1)

    outcome = await engine.execute_pair_trade(btc_eth(1.0))

    assert outcome.state is TradeState.ABORTED and outcome.ok is False and not outcome
    assert exchange.create_calls("ETH/USDT") == []  # leg B never sent
    # unwind_on_abort: the 0.1 bought is sold back, itself with a persisted client id
    unwind = [c for c in exchange.create_calls("BTC/USDT") if c.side == "sell"]
    assert [c.amount for c in unwind] == [0.1]
    assert outcome.unwound_x == 0.1


async def test_3_ghost_order_is_looked_up(engine, exchange: FakeExchange):
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("create_order") == 2  # leg A + leg B attempt
    lookups = [c for c in exchange.calls if c.method == "fetch_order"]
    leg_b_cid = exchange.create_calls("ETH/USDT")[0].client_order_id
    assert lookups and lookups[0].client_order_id == leg_b_cid
    assert outcome.state is TradeState.DONE


async def test_4_ghost_order_that_filled_prevents_duplicate(engine, exchange: FakeExchange):
    exchange.fail(
        "create_order", "ETH/USDT", "timeout_after_accept"
    )  # it DID go through, filled 1.0

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("create_order") == 2
    assert len(exchange.accepted("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


async def test_5_concurrent_spam_executes_once(engine, exchange: FakeExchange):
    exchange.latency = 0.02  # executions really overlap

    outcomes = await asyncio.gather(*(engine.execute_pair_trade(btc_eth()) for _ in range(5)))

    executed = [o for o in outcomes if not o.duplicate]
    assert len(executed) == 1 and executed[0].state is TradeState.DONE
    assert sum(o.duplicate for o in outcomes) == 4
    assert exchange.count("create_order") == 2
    assert await engine.store.count_trades() == 1


async def test_6_sequential_signals_all_execute(engine, exchange: FakeExchange):
    outcomes = [await engine.execute_pair_trade(btc_eth()) for _ in range(5)]

    assert all(o.ok for o in outcomes)
    assert exchange.count("create_order") == 10


async def test_7_partial_fill_plus_concurrent_spam(engine: ExecutionEngine, exchange: FakeExchange):
    exchange.latency = 0.02
    exchange.behave("BTC/USDT", fill=0.6)

    outcomes = await asyncio.gather(*(engine.execute_pair_trade(btc_eth()) for _ in range(3)))

    executed = [o for o in outcomes if not o.duplicate]
    assert len(executed) == 1
    assert executed[0].filled_x == 0.6 and executed[0].filled_y == 0.6
    assert sum(o.duplicate for o in outcomes) == 2
    assert exchange.count("create_order") == 2
    assert [c.amount for c in exchange.create_calls("ETH/USDT")] == [0.6]
