"""Exactly-once: one trade per signal id ever, one in-flight trade per pair key, no global lock."""

from __future__ import annotations

import asyncio

from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.model import Duplicate
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import FakeExchange


async def test_signal_id_is_executed_once_even_after_restart(exchange: FakeExchange, db_url: str):
    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        first = await engine.execute_pair_trade(btc_eth(signal_id="sig-1"))
        again = await engine.execute_pair_trade(btc_eth(signal_id="sig-1"))
    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        after_restart = await engine.execute_pair_trade(btc_eth(signal_id="sig-1"))
        other = await engine.execute_pair_trade(btc_eth(signal_id="sig-2"))

    assert first.ok and not first.duplicate
    for dup in (again, after_restart):
        assert dup.duplicate and not dup.ok
        assert dup.trade_id == first.trade_id and dup.state is TradeState.DONE
        assert "sig-1" in dup.reason
    assert other.ok
    assert exchange.count("create_order") == 4


async def test_concurrent_same_signal_id_executes_once(engine, exchange: FakeExchange):
    exchange.latency = 0.02
    outcomes = await asyncio.gather(
        *(engine.execute_pair_trade(btc_eth(signal_id="spam")) for _ in range(10))
    )
    assert sum(not o.duplicate for o in outcomes) == 1
    assert exchange.count("create_order") == 2


async def test_different_pairs_run_concurrently(engine, exchange: FakeExchange):
    """No global lock: with 250 ms per call, 5 trades on 5 pairs overlap their leg A sends.
    (Not 20 ms: on PostgreSQL the pool opens a connection for each trade at once, 30-100 ms
    under load, and the first trade's leg B could go before the fifth trade's leg A.)"""
    exchange.latency = 0.25
    requests = [
        PairTradeRequest(f"X{i}/USDT", "buy", 1.0, f"Y{i}/USDT", "sell", 1.0) for i in range(5)
    ]

    outcomes = await asyncio.gather(*(engine.execute_pair_trade(r) for r in requests))

    assert all(o.ok for o in outcomes)
    first_leg_b = next(i for i, c in enumerate(exchange.calls) if (c.symbol or "").startswith("Y"))
    leg_a_before_any_leg_b = [
        c for c in exchange.calls[:first_leg_b] if (c.symbol or "").startswith("X")
    ]
    assert len(leg_a_before_any_leg_b) == 5  # a global lock would give 1


async def test_opposite_direction_on_same_pairs_is_not_a_duplicate(engine, exchange):
    exchange.latency = 0.02
    reverse = PairTradeRequest("BTC/USDT", "sell", 1.0, "ETH/USDT", "buy", 1.0)
    outcomes = await asyncio.gather(
        engine.execute_pair_trade(btc_eth()), engine.execute_pair_trade(reverse)
    )
    assert [o.duplicate for o in outcomes] == [False, False]


async def test_inflight_key_is_enforced_by_the_database_across_stores(db_url: str):
    """Two stores on one file stand for two processes: no in-process lock is shared."""
    async with TradeStore(db_url) as one, TradeStore(db_url) as two:
        first = await one.create_trade(btc_eth().validated())
        second = await two.create_trade(btc_eth().validated())
        assert not isinstance(first, Duplicate)
        assert isinstance(second, Duplicate) and second.existing is not None
        assert second.existing.id == first.id

        # Once the first trade is terminal its key is released.
        from pairexec.fsm.model import Change

        await one.apply(first, Change("test", TradeState.FAILED))
        third = await two.create_trade(btc_eth().validated())
        assert not isinstance(third, Duplicate)
