"""Definite rejects, partial legs, open orders and unwinds: never end with a naked leg."""

from __future__ import annotations

from dataclasses import replace

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.model import OrderStatus
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import FakeExchange


async def test_leg_a_rejected_fails_and_sends_nothing_else(engine, exchange: FakeExchange):
    exchange.fail("create_order", "BTC/USDT", "reject_funds")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.FAILED
    assert exchange.count("create_order") == 1
    assert exchange.count("fetch_order") == 0
    [order] = (await engine.store.load(outcome.trade_id)).orders
    assert order.status is OrderStatus.REJECTED and order.filled == 0
    assert "rejected" in outcome.reason


async def test_leg_b_rejected_unwinds_leg_a(engine, exchange: FakeExchange):
    exchange.fail("create_order", "ETH/USDT", "reject_invalid")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.ABORTED
    buys = [c for c in exchange.create_calls("BTC/USDT") if c.side == "buy"]
    sells = [c for c in exchange.create_calls("BTC/USDT") if c.side == "sell"]
    assert [c.amount for c in buys] == [1.0] and [c.amount for c in sells] == [1.0]
    assert len(exchange.create_calls("ETH/USDT")) == 1  # a definite reject is not retried
    assert outcome.unwound_x == 1.0


async def test_unwind_rejected_parks_trade_for_a_human(engine, exchange: FakeExchange):
    exchange.fail("create_order", "ETH/USDT", "reject_invalid")
    exchange.fail("create_order", "BTC/USDT", "ok", "reject_funds")  # the unwind is refused

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.PARKED
    assert "still open" in outcome.reason and "BTC/USDT" in outcome.reason


async def test_leg_b_partial_fill_sends_the_remainder(engine, exchange: FakeExchange):
    exchange.behave("ETH/USDT", fill=0.5)  # every leg-B order fills half

    outcome = await engine.execute_pair_trade(btc_eth(amount=1.0, hedge_ratio=2.0))

    amounts = [c.amount for c in exchange.create_calls("ETH/USDT")]
    assert amounts == [2.0, 1.0, 0.5]  # remainder each time, leg_attempts=3
    cids = {c.client_order_id for c in exchange.create_calls("ETH/USDT")}
    assert len(cids) == 3  # new attempts get new client ids
    # 1.75 of 2.0 hedged after 3 attempts: leg A's unhedged 0.125 is unwound
    assert outcome.state is TradeState.ABORTED
    assert abs(outcome.filled_y - 1.75) < 1e-12
    assert abs(outcome.unwound_x - 0.125) < 1e-12


async def test_leg_b_remainder_that_fills_completes_the_hedge(engine, exchange: FakeExchange):
    exchange.behave("ETH/USDT", fill=0.7, leave_open=True)  # first leg B: 70%, cancelled

    async def fill_everything_after_first_order() -> None:
        exchange.behave("ETH/USDT", fill=1.0)

    exchange.after_cancel = fill_everything_after_first_order
    outcome = await engine.execute_pair_trade(btc_eth())

    assert [round(c.amount or 0.0, 9) for c in exchange.create_calls("ETH/USDT")] == [1.0, 0.3]
    assert outcome.state is TradeState.DONE and abs(outcome.filled_y - 1.0) < 1e-12


async def test_open_leg_a_partly_filled_is_cancelled_and_hedged_to_final_fill(
    engine, exchange: FakeExchange
):
    exchange.behave("BTC/USDT", "buy", fill=0.7, leave_open=True)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("cancel_order") == 1
    assert outcome.state is TradeState.DONE
    assert outcome.filled_x == 0.7
    assert [c.amount for c in exchange.create_calls("ETH/USDT")] == [0.7]


async def test_open_order_that_fills_while_settling_is_not_cancelled(
    engine, exchange: FakeExchange
):
    exchange.behave("BTC/USDT", "buy", fill=0.5, leave_open=True, fills_while_open=0.5)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert exchange.count("cancel_order") == 0
    assert outcome.state is TradeState.DONE and outcome.filled_x == 1.0


async def test_abort_without_unwind_leaves_leg_a(exchange: FakeExchange, db_url: str):
    exchange.behave("BTC/USDT", fill=0.2)
    config = replace(FAST, unwind_on_abort=False)
    async with ExecutionEngine(exchange, store=db_url, config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.ABORTED
    assert exchange.count("create_order") == 1
    assert "unwind_on_abort=False" in outcome.reason


async def test_zero_fill_leg_a_fails(engine, exchange: FakeExchange):
    exchange.behave("BTC/USDT", fill=0.0)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.FAILED
    assert exchange.count("create_order") == 1


async def test_rate_limited_create_is_retried_after_backoff(engine, exchange: FakeExchange):
    exchange.fail("create_order", "ETH/USDT", "rate_limit", "rate_limit")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.DONE
    assert len(exchange.create_calls("ETH/USDT")) == 3
    assert len(exchange.accepted("ETH/USDT")) == 1
    assert exchange.count("fetch_order") == 0  # a rate limit is a definite "not accepted"
    record = await engine.store.load(outcome.trade_id)
    assert record.orders[1].status is OrderStatus.CLOSED and record.orders[1].sends == 3


async def test_persistent_rate_limit_on_leg_a_fails_cleanly(exchange: FakeExchange, db_url: str):
    exchange.fail("create_order", "BTC/USDT", *["rate_limit"] * 2)
    config = replace(FAST, rate_limit_attempts=2)
    async with ExecutionEngine(exchange, store=db_url, config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.FAILED
    assert exchange.count("create_order") == 2
