"""Orders whose outcome is unknown: looked up by client order id, never blindly resent."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.model import OrderStatus
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import FakeExchange


async def test_leg_b_timeout_before_reaching_exchange_is_resent_once_with_same_id(
    engine, exchange: FakeExchange
):
    exchange.fail("create_order", "ETH/USDT", "timeout_before_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    leg_b = exchange.create_calls("ETH/USDT")
    assert len(leg_b) == 2  # the lost one and exactly one resend
    assert leg_b[0].client_order_id == leg_b[1].client_order_id
    assert len(exchange.accepted("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0
    record = await engine.store.load(outcome.trade_id)
    assert [o.sends for o in record.orders] == [1, 2]


async def test_leg_a_timeout_but_filled_60_percent_is_found_and_hedged(
    engine, exchange: FakeExchange
):
    exchange.behave("BTC/USDT", fill=0.6)
    exchange.fail("create_order", "BTC/USDT", "timeout_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(exchange.create_calls("BTC/USDT")) == 1  # no resend
    assert [c.amount for c in exchange.create_calls("ETH/USDT")] == [0.6]
    assert outcome.state is TradeState.DONE
    assert (outcome.filled_x, outcome.filled_y) == (0.6, 0.6)
    path = [e.to_state for e in await engine.store.events(outcome.trade_id)]
    assert TradeState.UNKNOWN in path and TradeState.RECONCILED in path


async def test_lookups_that_time_out_twice_then_answer(engine, exchange: FakeExchange):
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")
    exchange.fail("fetch_order", "ETH/USDT", *["timeout_before_accept"] * 2)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("fetch_order") == 3
    assert len(exchange.create_calls("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


async def test_lookups_that_time_out_twice_on_an_absent_order_resend_once(
    engine, exchange: FakeExchange
):
    exchange.fail("create_order", "ETH/USDT", "timeout_before_accept")
    exchange.fail("fetch_order", "ETH/USDT", *["timeout_before_accept"] * 2)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(exchange.create_calls("ETH/USDT")) == 2
    assert len(exchange.accepted("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE


async def test_inconclusive_lookups_leave_trade_unknown_then_recover_finishes(
    exchange: FakeExchange, db_url: str
):
    config = replace(FAST, lookup_attempts=3)
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")
    exchange.fail("fetch_order", "ETH/USDT", *["timeout_before_accept"] * 3)

    async with ExecutionEngine(exchange, store=db_url, config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
        assert outcome.state is TradeState.UNKNOWN and not outcome.ok
        assert "run recover" in outcome.reason
        assert len(exchange.create_calls("ETH/USDT")) == 1  # no resend while unknown
        # the same pair key stays blocked while the trade is unresolved
        blocked = await engine.execute_pair_trade(btc_eth())
        assert blocked.duplicate and blocked.trade_id == outcome.trade_id

    async with ExecutionEngine(exchange, store=db_url, config=config) as engine:
        [recovered] = await engine.recover()

    assert recovered.trade_id == outcome.trade_id
    assert recovered.state is TradeState.DONE and recovered.filled_y == 1.0
    assert len(exchange.create_calls("ETH/USDT")) == 1


@pytest.mark.parametrize("lookup_error", ["rate_limit", "auth_error", "timeout_before_accept"])
async def test_a_lookup_error_is_never_taken_for_absence(
    engine, exchange: FakeExchange, lookup_error: str
):
    """Only OrderNotFound confirms absence; a throttled or refused lookup proves nothing."""
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")
    exchange.fail("fetch_order", "ETH/USDT", lookup_error)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(exchange.create_calls("ETH/USDT")) == 1
    assert exchange.count("fetch_order") == 2
    assert outcome.state is TradeState.DONE


@pytest.mark.parametrize("fault", ["drop", "no_id_after_accept"])
async def test_other_unknown_outcomes_are_looked_up(engine, exchange: FakeExchange, fault: str):
    exchange.fail("create_order", "ETH/USDT", fault)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("fetch_order") >= 1
    assert len(exchange.accepted("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE


async def test_hung_create_counts_as_timeout(exchange: FakeExchange, db_url: str):
    exchange.fail("create_order", "ETH/USDT", "hang_after")
    config = replace(FAST, call_timeout=0.1)

    async with ExecutionEngine(exchange, store=db_url, config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())

    assert len(exchange.create_calls("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE


async def test_reused_client_id_is_never_a_second_order(engine, exchange: FakeExchange):
    """A resend after a lookup wrongly said "absent" hits the exchange's client-id check."""
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")
    exchange.fail("fetch_order", "ETH/USDT", "not_found")  # a lying/lagging lookup

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(exchange.accepted("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


async def test_caller_cancelling_at_once_still_gets_the_trade_driven(
    exchange: FakeExchange, db_url: str
):
    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        task = asyncio.create_task(engine.execute_pair_trade(btc_eth()))
        await asyncio.sleep(0)  # validated, storing has begun
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with TradeStore(db_url) as store:
        trades = await store.list_trades()
    assert [t.state for t in trades] == [TradeState.DONE]


async def test_caller_timeout_does_not_interrupt_the_trade(exchange: FakeExchange, db_url: str):
    exchange.latency = 0.05
    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.execute_pair_trade(btc_eth()), 0.02)
    # close() waited for the shielded driver: the trade finished, one order per leg
    async with TradeStore(db_url) as store:
        [trade] = await store.list_trades()
    assert trade.state is TradeState.DONE
    assert [o.status for o in trade.orders] == [OrderStatus.CLOSED, OrderStatus.CLOSED]
