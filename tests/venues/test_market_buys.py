"""Venues whose spot market buys are sized by what they spend: a market buy is refused before
anything is stored, and a limit IOC leg (sized in the base currency everywhere) is not.

The venue facts are ccxt's own: its classes' options, read here from real instances (no
network), as ``ExchangeGateway.market_buy_problem`` reads them from the bot's exchange.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, InvalidRequest, OrderPolicy, PairTradeRequest, TradeState
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.venues.gateway import ExchangeGateway
from pairexec.persistence import TradeStore
from tests.conftest import FAST

IOC = OrderPolicy("limit_ioc", max_slippage_bps=30)


@pytest.mark.parametrize(
    ("venue", "options", "problem"),
    [
        ("gate", {}, "createMarketBuyOrderRequiresPrice"),
        ("htx", {}, "createMarketBuyOrderRequiresPrice"),
        ("bitget", {}, "createMarketBuyOrderRequiresPrice"),  # in options["createOrder"]
        ("okx", {"tgtCcy": "quote_ccy"}, "tgtCcy='quote_ccy'"),
        ("okx", {}, None),
        ("binance", {}, None),
        ("bybit", {}, None),  # unified accounts: ccxt sizes it in the base currency
        ("gate", {"createMarketBuyOrderRequiresPrice": False}, None),  # the bot's own choice
    ],
)
async def test_which_venues_cannot_buy_an_amount_at_market(
    venue: str, options: dict[str, object], problem: str | None
) -> None:
    exchange = getattr(ccxt_async, venue)({"options": options})
    try:
        found = ExchangeGateway(exchange, EngineConfig()).market_buy_problem("BTC/USDT")
    finally:
        await exchange.close()
    assert found is None if problem is None else problem in (found or ""), found


class QuoteSizedPaper(PaperExchange):
    """The paper exchange with a venue's option that market buys need a price (as gate's)."""

    options: ClassVar[dict[str, object]] = {"createMarketBuyOrderRequiresPrice": True}


def buy_btc(**more: object) -> PairTradeRequest:
    return PairTradeRequest("BTC/USDT", "buy", 0.01, "ETH/USDT", "sell", 20.0, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "config", "leg"),
    [
        (buy_btc(), FAST, "leg_a"),  # leg A buys at market
        (  # leg B buys at market
            PairTradeRequest("ETH/USDT", "sell", 0.2, "BTC/USDT", "buy", 0.05),
            replace(FAST, leg_a=IOC),
            "leg_b",
        ),
        (  # leg A is a sell: its unwind would buy at market
            PairTradeRequest("BTC/USDT", "sell", 0.01, "ETH/USDT", "buy", 20.0),
            replace(FAST, leg_b=IOC),
            "unwind",
        ),
        (buy_btc(), replace(FAST, leg_a=replace(IOC), leg_b=IOC), None),  # all limits: fine
        (buy_btc(price_x=70_000.0), FAST, None),  # leg A at its own limit, leg B a sell
    ],
)
async def test_a_market_buy_such_a_venue_cannot_size_is_refused_before_anything_is_stored(
    db_url: str, request_: PairTradeRequest, config: EngineConfig, leg: str | None
) -> None:
    venue = QuoteSizedPaper(None)
    async with ExecutionEngine(venue, store=TradeStore(db_url), config=config) as engine:
        if leg is None:
            outcome = await engine.execute_pair_trade(request_)
            assert outcome.state is TradeState.DONE, outcome.reason
            return
        with pytest.raises(InvalidRequest, match=f"{leg} would buy at market"):
            await engine.execute_pair_trade(request_)
    async with TradeStore(db_url) as store:
        assert await store.list_trades() == []
    assert venue.all_orders() == []
