"""Price-protected legs through the engine and the paper exchange: what goes on the wire.

``tests/unit/test_pricing.py`` has the rules; here the engine carries them out: each limit
order is priced from the venue's best price on its side, fetched for it alone, stored with
its intent and sent as a limit IOC; a process that dies after storing a limit and before
sending it resends that very limit, even when the market has moved since.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange
from pairexec.fsm.pricing import OrderPolicy, limit_price, within_band
from pairexec.fsm.sim.crash import CrashingExchange, CrashSwitch, SimulatedCrash
from pairexec.fsm.sim.scenario import Crash
from pairexec.persistence import TradeStore
from tests.conftest import FAST

IOC = OrderPolicy("limit_ioc", max_slippage_bps=20, widen_bps=30)
BTC, ETH = DEFAULT_MARKETS["BTC/USDT"].price, DEFAULT_MARKETS["ETH/USDT"].price
"""The paper exchange's prices: its bid = ask = last."""


@dataclass(frozen=True)
class Sent:
    symbol: str
    type: str
    side: str
    amount: float
    price: float | None
    params: dict[str, Any]


class Wire:
    """The exchange as the engine calls it, with every create_order's arguments kept."""

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange
        self.sent: list[Sent] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.sent.append(Sent(symbol, type, side, amount, price, dict(params or {})))
        return await self._exchange.create_order(symbol, type, side, amount, price, params)


def btc_eth(amount_x: float = 0.1, **more: Any) -> PairTradeRequest:
    return PairTradeRequest(
        "BTC/USDT", "buy", amount_x, "ETH/USDT", "sell", hedge_ratio=15.0, **more
    )


async def test_each_leg_goes_out_as_a_limit_ioc_a_band_from_its_best_price(db_url: str) -> None:
    paper = PaperExchange(None)
    wire = Wire(paper)
    config = replace(FAST, leg_a=IOC, leg_b=IOC)
    async with ExecutionEngine(wire, store=TradeStore(db_url), config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
        record = await engine.store.load(outcome.trade_id)

    assert outcome.state is TradeState.DONE, outcome.reason
    a, b = wire.sent
    tick_a = paper.markets["BTC/USDT"]["precision"]["price"]
    tick_b = paper.markets["ETH/USDT"]["precision"]["price"]
    assert (a.type, a.side, a.params.get("timeInForce")) == ("limit", "buy", "IOC")
    assert a.price == limit_price("buy", BTC, 20, tick_a) and a.price > BTC  # above the ask
    assert (b.type, b.side, b.params.get("timeInForce")) == ("limit", "sell", "IOC")
    assert b.price == limit_price("sell", ETH, 20, tick_b) and b.price < ETH  # below the bid
    stored = {o.leg: o for o in record.orders}
    assert (stored[Leg.A].reference_price, stored[Leg.A].limit_price) == (BTC, a.price)
    assert (stored[Leg.B].reference_price, stored[Leg.B].limit_price) == (ETH, b.price)


async def test_a_market_policy_sends_market_orders_and_stores_no_limit(db_url: str) -> None:
    wire = Wire(PaperExchange(None))
    async with ExecutionEngine(wire, store=TradeStore(db_url), config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
        record = await engine.store.load(outcome.trade_id)
    assert [(s.type, s.price) for s in wire.sent] == [("market", None), ("market", None)]
    assert all(o.limit_price is None and o.reference_price is None for o in record.orders)


async def test_the_requests_limit_for_leg_a_is_sent_as_given(db_url: str) -> None:
    wire = Wire(PaperExchange(None))
    async with ExecutionEngine(wire, store=TradeStore(db_url), config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth(price_x=BTC * 1.001))
        record = await engine.store.load(outcome.trade_id)
    assert outcome.ok, outcome.reason
    assert (wire.sent[0].type, wire.sent[0].price) == ("limit", BTC * 1.001)
    assert record.request.price_x == BTC * 1.001  # stored with the trade
    assert wire.sent[1].type == "market"  # leg B as its own policy says


async def test_a_restart_mid_ladder_resends_the_limit_it_stored(db_url: str) -> None:
    """Leg B's first IOC fills half; the second's intent (a wider band from a new quote) is
    stored, then the process dies before sending it. The market moves; recovery finds the
    order absent and resends it with the stored limit, not one from the new price."""
    paper = PaperExchange(None, chaos="ETH/USDT@sell:fill=0.5")
    config = replace(FAST, leg_b=IOC, leg_attempts=3)
    wire = Wire(paper)
    # exchange calls: leg A's create (1), leg B's first create (2), the second's (3): dies first
    dying = CrashingExchange(wire, CrashSwitch(Crash("exchange", 3, after=False)))
    async with ExecutionEngine(dying, store=TradeStore(db_url), config=config) as engine:
        with pytest.raises(SimulatedCrash):
            await engine.execute_pair_trade(btc_eth())
    async with TradeStore(db_url) as store:
        [trade] = await store.list_trades()
    second = next(o for o in trade.orders if (o.leg, o.attempt) == (Leg.B, 2))
    assert second.limit_price == pytest.approx(ETH * (1 - 50 / 10_000))  # the second rung

    paper.book.set_price("ETH/USDT", ETH * 1.05)  # a fresh quote would price it 5% higher
    recovering = Wire(PaperExchange(book=paper.book))  # the same venue, its chaos gone
    async with ExecutionEngine(recovering, store=TradeStore(db_url), config=config) as engine:
        [outcome] = await engine.recover()

    [resent] = recovering.sent
    assert (resent.type, resent.price) == ("limit", second.limit_price)
    assert resent.params.get("clientOrderId") == second.client_order_id
    assert outcome.state is TradeState.DONE, outcome.reason


THIN_ETH = "ETH/USDT:spread_bps=10,depth=2000,level_bps=5,levels=10"
"""ETH/USDT's book: 5 bps either side of the price, then a level every 5 bps, ~2,000 USDT
each: leg B's 7.5 ETH (about 15,000 USDT) takes several levels."""


async def test_in_a_thin_book_the_ladder_widens_until_the_hedge_is_complete(db_url: str) -> None:
    paper = PaperExchange(None, chaos=THIN_ETH, seed=3)
    wire = Wire(paper)
    config = replace(FAST, leg_b=OrderPolicy("limit_ioc", 10, widen_bps=40), leg_attempts=4)
    async with ExecutionEngine(wire, store=TradeStore(db_url), config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth(amount_x=0.5))
        record = await engine.store.load(outcome.trade_id)

    assert outcome.state is TradeState.DONE, outcome.reason
    rungs = [o for o in record.orders if o.leg is Leg.B]
    assert len(rungs) >= 2 and rungs[0].filled < rungs[0].amount  # the first band ran dry
    bands = [(o.reference_price - o.limit_price) / o.reference_price for o in rungs]  # type: ignore[operator]
    assert bands == sorted(bands) and bands[0] < bands[-1]  # each rung wider
    for o in rungs:
        assert o.average is not None and within_band("sell", o.limit_price, o.average)  # type: ignore[arg-type]
    assert outcome.filled_y == pytest.approx(15 * outcome.filled_x)  # and never above it


async def test_at_the_cap_a_park_policy_parks_with_what_is_open(db_url: str) -> None:
    paper = PaperExchange(None, chaos=THIN_ETH, seed=3)
    band = OrderPolicy("limit_ioc", 10, widen_bps=5, cap_bps=15, after_cap="park")
    config = replace(FAST, leg_b=band, leg_attempts=2)
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth(amount_x=0.5))

    assert outcome.state is TradeState.PARKED, outcome.reason
    assert "cap reached" in outcome.reason and "unhedged" in outcome.reason
    assert 0 < outcome.filled_y < 15 * outcome.filled_x  # hedged in part, never over
    assert outcome.unwound_x == 0.0  # parked: nothing unwound
