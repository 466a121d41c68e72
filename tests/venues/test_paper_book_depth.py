"""The paper exchange's price-protected orders: limit IOC, an opt-in book of levels, slippage.

Through the ccxt-shaped API only. The default market (one price, infinite depth) is checked
too: the simulation and the demo rely on it not changing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pairexec.fsm.paper import ChaosConfig, PaperExchange

Make = Callable[..., PaperExchange]
PRICE = 60_000.0  # BTC/USDT's paper price
RICH = {"USDT": 1_000_000.0, "BTC": 10.0}


@pytest.fixture
def make() -> Iterator[Make]:
    """In-memory paper exchanges with deep balances (closed at the end); kwargs as
    PaperExchange's."""
    opened: list[PaperExchange] = []

    def factory(**kwargs: Any) -> PaperExchange:
        exchange = PaperExchange(None, **{"balances": RICH, **kwargs})
        opened.append(exchange)
        return exchange

    yield factory
    for exchange in opened:
        exchange.book.close()


IOC = {"timeInForce": "IOC"}


def beyond(side: str, price: float, fraction: float) -> float:
    """A limit ``fraction`` on the far side of ``price`` for ``side`` (> 0: marketable)."""
    return price * (1 + fraction) if side == "buy" else price * (1 - fraction)


async def free(exchange: PaperExchange, asset: str) -> float:
    return float((await exchange.fetch_balance())[asset]["free"])


# --- the default market is today's --------------------------------------------------------


async def test_default_market_has_no_spread_and_fills_market_orders_at_the_price(
    make: Make,
) -> None:
    ex = make()
    ticker = await ex.fetch_ticker("BTC/USDT")
    assert ticker["bid"] == ticker["ask"] == ticker["last"] == PRICE
    order = await ex.create_order("BTC/USDT", "market", "buy", 5.0)  # 300k USDT: no depth limit
    assert (order["status"], order["filled"], order["average"]) == ("closed", 5.0, PRICE)
    assert await free(ex, "USDT") == pytest.approx(RICH["USDT"] - 5.0 * PRICE)


async def test_default_gtc_limit_that_does_not_cross_still_rests_open(make: Make) -> None:
    ex = make()
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, PRICE * 0.99)
    assert (order["status"], order["filled"]) == ("open", 0.0)


# --- limit IOC ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_ioc_inside_the_band_fills_at_once_at_the_price(make: Make, side: str) -> None:
    ex = make()
    order = await ex.create_order("BTC/USDT", "limit", side, 0.01, beyond(side, PRICE, 0.01), IOC)
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, PRICE)


@pytest.mark.parametrize("side", ["buy", "sell"])
@pytest.mark.parametrize("tif", ["IOC", "ioc"])
async def test_ioc_outside_the_band_is_canceled_unfilled_never_open(
    make: Make, side: str, tif: str
) -> None:
    ex = make()
    before = await free(ex, "USDT"), await free(ex, "BTC")
    placed = await ex.create_order(
        "BTC/USDT", "limit", side, 0.01, beyond(side, PRICE, -0.01), {"timeInForce": tif}
    )
    assert (placed["status"], placed["filled"], placed["remaining"]) == ("canceled", 0.0, 0.01)
    fetched = await ex.fetch_order(placed["id"], "BTC/USDT")
    assert (fetched["status"], fetched["filled"]) == ("canceled", 0.0)
    assert await ex.fetch_open_orders("BTC/USDT") == []
    assert (await free(ex, "USDT"), await free(ex, "BTC")) == before  # nothing reserved


async def test_ioc_partly_filled_by_chaos_fill_is_canceled_with_its_fill(make: Make) -> None:
    ex = make(chaos="BTC/USDT:fill=0.5,leave_open=1")  # leave_open cannot keep an IOC open
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, PRICE, IOC)
    assert (order["status"], order["filled"]) == ("canceled", 0.005)
    assert await free(ex, "BTC") == pytest.approx(RICH["BTC"] + 0.005)


async def test_an_unknown_time_in_force_is_rejected(make: Make) -> None:
    import ccxt

    with pytest.raises(ccxt.InvalidOrder, match="timeInForce"):
        await make().create_order("BTC/USDT", "limit", "buy", 0.01, PRICE, {"timeInForce": "X"})


# --- a book of levels -----------------------------------------------------------------------

BOOK = "BTC/USDT:spread_bps=10,depth=1000,level_bps=5"
"""Best bid/ask 5 bps either side of the price, levels of ~1000 USDT (~0.017 BTC) 5 bps apart."""


async def test_a_book_gives_the_ticker_its_best_bid_and_ask(make: Make) -> None:
    ticker = await make(chaos=BOOK).fetch_ticker("BTC/USDT")
    assert ticker["last"] == PRICE
    assert ticker["bid"] == pytest.approx(PRICE * (1 - 0.0005))
    assert ticker["ask"] == pytest.approx(PRICE * (1 + 0.0005))


async def test_a_market_buy_walks_the_asks_and_pays_their_average(make: Make) -> None:
    ex = make(chaos=BOOK, taker_fee=0.001)
    ask = (await ex.fetch_ticker("BTC/USDT"))["ask"]
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.05)  # ~3 levels
    assert (order["status"], order["filled"]) == ("closed", 0.05)
    assert order["average"] > ask * (1 + 0.0004)  # beyond the first level: slippage
    assert order["average"] < ask * (1 + 0.0005 * 10)  # within the book
    assert order["cost"] == pytest.approx(0.05 * order["average"])
    assert await free(ex, "USDT") == pytest.approx(RICH["USDT"] - order["cost"])
    assert await free(ex, "BTC") == pytest.approx(RICH["BTC"] + 0.05 * (1 - 0.001))


async def test_a_market_sell_walks_the_bids_and_receives_their_average(make: Make) -> None:
    ex = make(chaos=BOOK, taker_fee=0.001)
    bid = (await ex.fetch_ticker("BTC/USDT"))["bid"]
    order = await ex.create_order("BTC/USDT", "market", "sell", 0.05)
    assert (order["status"], order["filled"]) == ("closed", 0.05)
    assert bid * (1 - 0.005) < order["average"] < bid * (1 - 0.0004)
    assert await free(ex, "USDT") == pytest.approx(RICH["USDT"] + order["cost"] * (1 - 0.001))
    assert order["fee"]["cost"] == pytest.approx(0.001 * 0.05 * order["average"])


async def test_a_market_order_that_exhausts_the_book_closes_partly_filled(make: Make) -> None:
    ex = make(chaos="BTC/USDT:depth=1000,levels=3")  # ~0.05 BTC in all
    order = await ex.create_order("BTC/USDT", "market", "buy", 1.0)
    assert order["status"] == "closed"
    assert 0.02 < order["filled"] < 0.1
    assert await free(ex, "BTC") == pytest.approx(RICH["BTC"] + order["filled"])


@pytest.mark.parametrize("side", ["buy", "sell"])
async def test_ioc_on_a_book_takes_only_the_levels_within_its_limit(make: Make, side: str) -> None:
    ex = make(chaos=BOOK)
    ticker = await ex.fetch_ticker("BTC/USDT")
    best = ticker["ask" if side == "buy" else "bid"]
    limit = beyond(side, best, 0.0012)  # the first three levels (0, 5 and 10 bps)
    order = await ex.create_order("BTC/USDT", "limit", side, 0.5, limit, IOC)
    assert order["status"] == "canceled"
    assert 0.02 < order["filled"] < 0.1
    if side == "buy":
        assert best < order["average"] <= limit
    else:
        assert limit <= order["average"] < best
    assert await ex.fetch_open_orders("BTC/USDT") == []
    # a GTC order with the same limit keeps the rest open at its limit
    rest = await ex.create_order("BTC/USDT", "limit", side, 0.5, limit)
    assert (rest["status"], rest["filled"]) == ("open", order["filled"])
    assert rest["average"] == pytest.approx(order["average"])  # the levels', not its limit


async def test_an_ioc_limit_short_of_the_best_ask_gets_nothing_on_a_book(make: Make) -> None:
    ex = make(chaos=BOOK)
    # crosses the mid (it would fill without a book) but not the best ask
    order = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, PRICE * 1.0001, IOC)
    assert (order["status"], order["filled"]) == ("canceled", 0.0)


async def test_the_book_is_seeded(make: Make) -> None:
    async def average(seed: int) -> float:
        ex = make(chaos="BTC/USDT:depth=1000", seed=seed)
        return float((await ex.create_order("BTC/USDT", "market", "buy", 0.05))["average"])

    assert await average(1) == await average(1)
    assert await average(1) != await average(2)


# --- chaos: thin_book and price_jump ------------------------------------------------------


async def test_thin_book_slips_market_orders_and_fills_ioc_partly(make: Make) -> None:
    ex = make(chaos="BTC/USDT:thin_book=1")
    ask = (await ex.fetch_ticker("BTC/USDT"))["ask"]
    ioc = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, ask * 1.01, IOC)  # 600 USDT
    assert ioc["status"] == "canceled"
    assert 0 < ioc["filled"] < 0.01
    market = await ex.create_order("BTC/USDT", "market", "buy", 0.0005)  # 30 USDT
    assert market["filled"] == 0.0005
    assert market["average"] > ask


async def test_price_jump_makes_the_ticker_stale_for_the_next_order(make: Make) -> None:
    ex = make(chaos="*:price_jump=0.02", seed=3)
    quoted = (await ex.fetch_ticker("BTC/USDT"))["last"]
    assert quoted == PRICE
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.01)
    assert order["average"] == pytest.approx(PRICE * 1.02) or order["average"] == pytest.approx(
        PRICE * 0.98
    )
    assert (await ex.fetch_ticker("BTC/USDT"))["last"] == pytest.approx(order["average"])
    # an IOC priced at the stale quote: canceled if the price went up, filled if it went down
    ioc = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, order["average"], IOC)
    moved_up = (await ex.fetch_ticker("BTC/USDT"))["last"] > order["average"]
    assert ioc["status"] == ("canceled" if moved_up else "closed")


async def test_price_jump_sign_is_seeded_and_both_ways(make: Make) -> None:
    async def moves(seed: int) -> list[bool]:
        ex = make(chaos="BTC/USDT:price_jump=0.01", seed=seed)
        ups = []
        for _ in range(8):
            before = (await ex.fetch_ticker("BTC/USDT"))["last"]
            await ex.create_order("BTC/USDT", "market", "buy", 0.001)
            ups.append((await ex.fetch_ticker("BTC/USDT"))["last"] > before)
        return ups

    first = await moves(5)
    assert first == await moves(5)
    assert True in first and False in first


@pytest.mark.parametrize(
    "text",
    ["BTC/USDT:levels=1.5", "BTC/USDT:levels=0", "BTC/USDT:price_jump=1", "BTC/USDT:thin_book=2"],
)
def test_bad_book_keys_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="chaos key"):
        ChaosConfig.parse(text)
