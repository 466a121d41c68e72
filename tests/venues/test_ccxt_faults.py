"""Throttling, refused connections, rejects, open orders and market rules through real ccxt.

What each fault must mean for an order (``pairexec.fsm.venues.errors.classify``), seen end to end:
429/418/maintenance and a refused connection mean "not accepted, retry later" (same client id,
no lookup); -2010 insufficient balance and filter failures are definite rejects (no lookup, no
resend); an order left open is settled with a real DELETE /api/v3/order by client id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, InvalidRequest, PairTradeRequest, TradeState
from pairexec.fsm.engine import EngineError
from pairexec.fsm.markets import TICK_SIZE, MarketRules
from pairexec.fsm.model import OrderStatus
from pairexec.fsm.paper import DEFAULT_MARKETS
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance, Seen, binance_client
from tests.support.stores import sql_store

# the fake server's fixtures, used by name
fake, binance, trades_db = fake_binance.fake, fake_binance.binance, fake_binance.trades_db


@pytest.fixture
async def engine(binance: ccxt_async.binance, trades_db: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(binance, store=TradeStore(trades_db), config=FAST) as eng:
        yield eng


async def path(engine: ExecutionEngine, trade_id: str) -> list[TradeState]:
    return [e.to_state for e in await sql_store(engine).events(trade_id)]


# --- retry later: throttled, in maintenance, never sent --------------------------------------


@pytest.mark.parametrize("fault", ["rate_limit", "http_418", "maintenance"])
async def test_a_throttled_burst_is_waited_out_with_the_same_id_and_no_duplicate(
    engine: ExecutionEngine, fake: FakeBinance, fault: str
):
    fake.fail("create", "ETH/USDT", fault, fault, fault)

    outcome = await engine.execute_pair_trade(btc_eth())

    sends = fake.seen("create", "ETH/USDT")
    assert len(sends) == 4 and len({s.client_order_id for s in sends}) == 1
    assert fake.seen("fetch") == []  # "not accepted": nothing to look up
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0
    assert TradeState.UNKNOWN not in await path(engine, outcome.trade_id)
    record = await engine.store.load(outcome.trade_id)
    assert [o.sends for o in record.orders] == [1, 4]


async def test_throttled_beyond_the_budget_is_a_reject_and_leg_a_is_unwound(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.fail("create", "ETH/USDT", *["rate_limit"] * FAST.rate_limit_attempts)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create", "ETH/USDT")) == FAST.rate_limit_attempts
    assert fake.orders("ETH/USDT") == []
    assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 1.0
    [_, unwind] = fake.orders("BTC/USDT")
    assert (unwind.side, unwind.filled) == ("sell", 1.0)


async def test_a_refused_connection_is_retried_later_not_looked_up(
    binance: ccxt_async.binance, fake: FakeBinance, trades_db: str
):
    """Nothing listening: the request never left, so the create is simply retried (same id)
    once the venue is back; the order never becomes UNKNOWN and is never looked up."""
    config = replace(FAST, lookup_backoff=0.1, max_backoff=0.2)  # retries after 0.1, 0.2, 0.2 s
    async with ExecutionEngine(binance, store=trades_db, config=config) as engine:
        await fake.stop_listening()

        async def back_after(seconds: float) -> None:
            await asyncio.sleep(seconds)
            await fake.listen()

        reopened = asyncio.create_task(back_after(0.15))
        outcome = await engine.execute_pair_trade(btc_eth())
        await reopened

        assert outcome.state is TradeState.DONE, outcome.reason
        assert TradeState.UNKNOWN not in await path(engine, outcome.trade_id)
        record = await engine.store.load(outcome.trade_id)
    assert fake.seen("fetch") == []
    assert record.orders[0].sends >= 2  # refused at least once, then accepted
    assert len(fake.orders()) == 2


async def test_a_venue_that_stays_unreachable_fails_the_trade_cleanly(
    engine: ExecutionEngine, fake: FakeBinance
):
    await fake.stop_listening()

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.FAILED
    assert TradeState.UNKNOWN not in await path(engine, outcome.trade_id)
    record = await engine.store.load(outcome.trade_id)
    [leg_a] = record.orders
    assert leg_a.status is OrderStatus.REJECTED and leg_a.sends == FAST.rate_limit_attempts
    assert fake.orders() == []


# --- definite rejects ------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["reject_funds", "reject_invalid", "auth_error"])
async def test_a_rejected_leg_a_fails_the_trade_without_lookup_or_resend(
    binance: ccxt_async.binance, fake: FakeBinance, trades_db: str, fault: str
):
    fake.fail("create", "BTC/USDT", fault)
    async with ExecutionEngine(binance, store=trades_db, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.FAILED
    assert len(fake.seen("create")) == 1 and fake.seen("fetch") == []
    assert fake.orders() == []


async def test_real_insufficient_balance_on_leg_b_unwinds_leg_a(trades_db: str):
    async with FakeBinance(balances={"USDT": 100_000.0, "ETH": 0.5}) as fake:
        exchange = binance_client(fake.url)
        try:
            async with ExecutionEngine(exchange, store=trades_db, config=FAST) as engine:
                outcome = await engine.execute_pair_trade(btc_eth())  # sell 1 ETH, holds 0.5
        finally:
            await exchange.close()

        assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 1.0
        assert len(fake.seen("create", "ETH/USDT")) == 1 and fake.seen("fetch") == []
        assert fake.orders("ETH/USDT") == []


# --- open orders: settle, cancel by client id --------------------------------------------------


async def test_an_open_partly_filled_leg_a_is_cancelled_by_client_id_and_hedged(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.behave("BTC/USDT", "buy", fill=0.6, leave_open=True)

    outcome = await engine.execute_pair_trade(btc_eth())

    [cancel] = fake.seen("cancel", "BTC/USDT")
    [leg_a] = fake.seen("create", "BTC/USDT")
    assert cancel.client_order_id == leg_a.client_order_id
    assert outcome.state is TradeState.DONE
    assert (outcome.filled_x, outcome.filled_y) == (0.6, 0.6)
    assert fake.orders("BTC/USDT")[0].status == "canceled"


async def test_an_open_order_that_fills_while_polled_is_not_cancelled(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.behave("BTC/USDT", "buy", fill=0.5, leave_open=True, fills_while_open=0.5)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert fake.seen("cancel") == []
    assert outcome.state is TradeState.DONE and outcome.filled_x == 1.0


async def test_a_hedge_below_binance_min_notional_is_never_sent(
    engine: ExecutionEngine, fake: FakeBinance
):
    """ETH/USDT's NOTIONAL filter (5 USDT) as ccxt reads it, ETH's price from the 24h ticker:
    0.0002 BTC (12 USDT) hedged 2.5x is 0.0005 ETH = 1.5 USDT, so leg A is unwound instead."""
    outcome = await engine.execute_pair_trade(
        PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 2.5)
    )

    assert fake.seen("ticker", "ETH/USDT")  # the price came from the venue
    assert fake.seen("create", "ETH/USDT") == []
    assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 0.0002


async def test_no_ticker_leaves_min_notional_to_the_venue(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.fail("ticker", None, *["http_500"] * 10)

    outcome = await engine.execute_pair_trade(
        PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 2.5)
    )

    assert len(fake.seen("create", "ETH/USDT")) == 1  # sent: the engine could not know its value
    assert fake.orders("ETH/USDT") == []  # Binance refused it: NOTIONAL
    assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 0.0002


# --- markets: Binance filters as ccxt reads them ------------------------------------------------


async def test_binance_markets_give_the_engine_steps_and_minimums(engine: ExecutionEngine):
    assert engine.gateways[None].exchange.precisionMode == TICK_SIZE
    ticks = {s: DEFAULT_MARKETS[s].price_step for s in ("BTC/USDT", "DOGE/USDT")}
    assert engine._markets["BTC/USDT"] == MarketRules(
        amount_step=0.00001, min_amount=0.00001, min_cost=5.0, price_step=ticks["BTC/USDT"]
    )
    assert engine._markets["DOGE/USDT"] == MarketRules(
        amount_step=1.0, min_amount=1.0, min_cost=5.0, price_step=ticks["DOGE/USDT"]
    )  # PRICE_FILTER's tickSize: the grid a limit is rounded to


async def test_amounts_are_floored_to_the_lot_step_before_sending(
    engine: ExecutionEngine, fake: FakeBinance
):
    outcome = await engine.execute_pair_trade(btc_eth(0.01, hedge_ratio=15.123456))

    assert outcome.state is TradeState.DONE
    assert [r.params["quantity"] for r in fake.seen("create", "ETH/USDT")] == ["0.1512"]


async def test_a_request_below_the_lot_minimum_is_refused_before_anything_is_sent(
    engine: ExecutionEngine, fake: FakeBinance
):
    with pytest.raises(InvalidRequest, match="minimum"):
        await engine.execute_pair_trade(btc_eth(0.000001))
    assert fake.seen("create") == []


async def test_min_notional_is_not_checked_by_the_engine_the_venue_rejects_it(
    engine: ExecutionEngine, fake: FakeBinance
):
    """Known limit: the engine checks lot step and minimum, not Binance's NOTIONAL filter
    (ccxt: ``limits.cost.min``). 0.1 XRP (= 0.06 USDT < 5) goes out and is refused (-1013):
    a definite reject, so nothing is left behind."""
    request = PairTradeRequest("XRP/USDT", "buy", 0.1, "ADA/USDT", "sell", 1.0)

    outcome = await engine.execute_pair_trade(request)

    [sent] = fake.seen("create", "XRP/USDT")
    assert isinstance(sent, Seen) and sent.params["quantity"] == "0.1"
    assert outcome.state is TradeState.FAILED
    causes = " ".join(e.cause for e in await sql_store(engine).events(outcome.trade_id))
    assert "Filter failure: NOTIONAL" in causes
    assert fake.orders() == []


# --- start-up ----------------------------------------------------------------------------------


async def test_an_unreachable_venue_at_start_up_is_a_clear_engine_error(trades_db: str):
    exchange = binance_client(fake_binance.closed_port_url())
    try:
        with pytest.raises(EngineError, match="markets"):
            async with ExecutionEngine(exchange, store=trades_db, config=FAST):
                pass
    finally:
        await exchange.close()
