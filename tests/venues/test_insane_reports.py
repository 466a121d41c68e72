"""Reports are checked before they are believed ("Never assume", item 3).

A create or fetch reply that cannot be the order as it stands (a fill below zero or above the
amount, another order's client id, symbol or exchange id, "closed" without a fill) is not acted
on: the order's outcome is unknown and it is looked up again. If every lookup answers like
that, the trade is parked for a human; lookups that merely fail still leave it to ``recover``.

Through the real ccxt binance client against ``support.fake_binance`` where the lie can be told
over HTTP, with ``support.fake_exchange`` doubles for what ccxt's binance parser never produces
(``filled`` None, a negative fill), and ``parse_order`` itself for the rules one by one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderFacts, OrderStatus
from pairexec.fsm.venues.reports import FILL_TOLERANCE, MalformedOrder, NotBelievable, parse_order
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance, binance_client
from tests.support.fake_exchange import FakeExchange
from tests.support.stores import sql_store

# the fake server's fixtures, used by name
fake, binance, trades_db = fake_binance.fake, fake_binance.binance, fake_binance.trades_db


@pytest.fixture
async def engine(binance: ccxt_async.binance, trades_db: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(binance, store=TradeStore(trades_db), config=FAST) as eng:
        yield eng


def amounts(fake: FakeBinance, symbol: str) -> list[float]:
    """What the book holds on ``symbol``: each order's amount."""
    return [o.amount for o in fake.orders(symbol)]


async def path(engine: ExecutionEngine, trade_id: str) -> list[TradeState]:
    return [e.to_state for e in await sql_store(engine).events(trade_id)]


# --- through ccxt binance ---------------------------------------------------------------------


async def test_an_overfilled_create_reply_is_looked_up_and_leg_b_hedges_the_real_fill(
    engine: ExecutionEngine, fake: FakeBinance
):
    """The issue's case: 1.5 "filled" on a 1.0 order used to send a leg B of 3.0, not 2.0."""
    fake.fail("create", "BTC/USDT", "overfill_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth(amount=1.0, hedge_ratio=2.0))

    assert outcome.state is TradeState.DONE, outcome.reason
    assert (outcome.filled_x, outcome.filled_y) == (1.0, 2.0)
    assert amounts(fake, "BTC/USDT") == [1.0]  # looked up, not resent
    assert amounts(fake, "ETH/USDT") == [2.0]
    assert client_id_of(fake, "fetch", "BTC/USDT") == client_id_of(fake, "create", "BTC/USDT")
    assert TradeState.UNKNOWN in await path(engine, outcome.trade_id)


async def test_a_lookup_answered_with_leg_a_s_order_makes_no_3_eth_hedge_of_1_btc(
    engine: ExecutionEngine, fake: FakeBinance
):
    """Leg B's reply is lost; its lookup answers with leg A's order (BTC, leg A's client id,
    1.0 filled). Believed, leg B counted 1.0 done and a remainder of 1.0 went out: 3 ETH."""
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", "other_order_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth(amount=1.0, hedge_ratio=2.0))

    assert outcome.state is TradeState.DONE, outcome.reason
    assert amounts(fake, "ETH/USDT") == [2.0]
    assert outcome.filled_y == 2.0
    assert len(fake.seen("fetch", "ETH/USDT")) == 2  # the lie, then the truth
    record = await engine.store.load(outcome.trade_id)
    leg_a, leg_b = record.orders
    assert leg_b.exchange_order_id != leg_a.exchange_order_id


async def test_filled_without_an_executed_quantity_is_not_taken_for_nothing_filled(
    engine: ExecutionEngine, fake: FakeBinance
):
    """ccxt's binance reads a FILLED reply without executedQty as "closed, filled 0": leg A
    would be failed as unfilled while 60% of it stands on the book."""
    fake.behave("BTC/USDT", fill=0.6)
    fake.fail("create", "BTC/USDT", "no_fill_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.DONE, outcome.reason
    assert (outcome.filled_x, outcome.filled_y) == (0.6, 0.6)
    assert amounts(fake, "ETH/USDT") == [0.6]


async def test_a_venue_that_lies_at_every_lookup_parks_the_trade(fake: FakeBinance, trades_db: str):
    config = replace(FAST, lookup_attempts=3)
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", *["overfill_after_accept"] * 3)

    exchange = binance_client(fake.url)
    try:
        async with ExecutionEngine(exchange, store=trades_db, config=config) as engine:
            outcome = await engine.execute_pair_trade(btc_eth())
            record = await engine.store.load(outcome.trade_id)
    finally:
        await exchange.close()

    assert outcome.state is TradeState.PARKED
    assert "3 of 3 lookups" in outcome.reason and "cannot be this order" in outcome.reason
    assert record.orders[-1].client_order_id in outcome.reason
    assert "filled 1.5 of an order of 1" in outcome.reason
    assert record.orders[-1].status is OrderStatus.UNKNOWN  # its fill is for a human to read
    assert amounts(fake, "ETH/USDT") == [1.0]  # nothing more was sent


async def test_a_lie_among_failed_lookups_still_leaves_the_trade_to_recover(
    fake: FakeBinance, trades_db: str
):
    """Only lies, every time, park: a lookup that fails may succeed later."""
    config = replace(FAST, lookup_attempts=3)
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", "other_order_after_accept", "http_500", "http_500")

    exchange = binance_client(fake.url)
    try:
        async with ExecutionEngine(exchange, store=trades_db, config=config) as engine:
            outcome = await engine.execute_pair_trade(btc_eth())
            assert outcome.state is TradeState.UNKNOWN, outcome.reason
            assert "outcome still unknown after 3 lookups" in outcome.reason
            assert "run recover" in outcome.reason
            [recovered] = await engine.recover()
    finally:
        await exchange.close()

    assert recovered.state is TradeState.DONE and recovered.filled_y == 1.0
    assert amounts(fake, "ETH/USDT") == [1.0]


async def test_an_open_order_whose_reports_after_the_cancel_all_lie_parks_the_trade(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.behave("BTC/USDT", "buy", fill=0.6, leave_open=True)
    fake.fail("fetch", "BTC/USDT", *["overfill_after_accept"] * 40)  # polls, then lookups

    outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.state is TradeState.PARKED
    assert "could not be settled" in outcome.reason and "cannot be this order" in outcome.reason
    assert fake.orders("ETH/USDT") == []  # no hedge sized from "filled 1.5"
    [leg_a] = fake.orders("BTC/USDT")
    assert (leg_a.status, leg_a.filled) == ("canceled", pytest.approx(0.6))


def client_id_of(fake: FakeBinance, kind: str, symbol: str) -> str | None:
    return fake.seen(kind, symbol)[0].client_order_id


# --- through test doubles ---------------------------------------------------------------------


class LyingCreates(FakeExchange):
    """Accepts orders truthfully; its create replies carry ``lie`` (fetches tell the truth)."""

    def __init__(self, **lie: Any) -> None:
        super().__init__()
        self.lie = lie

    async def create_order(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**await super().create_order(*args, **kwargs), **self.lie}


@pytest.mark.parametrize(
    "lie",
    [
        {"filled": None},  # "closed" with no fill: used to count as the requested amount
        {"filled": -1.0},  # used to count as nothing filled
        # another order's reply, all filled: believed, leg B hedged 1.0 of a 0.6 fill
        {"symbol": "ETH/USDT", "filled": 1.0},
        {"clientOrderId": "0" * 32, "filled": 1.0},
    ],
    ids=["no fill", "negative fill", "another symbol", "another client id"],
)
async def test_a_create_reply_that_cannot_be_the_order_is_looked_up(
    lie: dict[str, Any], tmp_path: Path
):
    exchange = LyingCreates(**lie)
    exchange.behave("BTC/USDT", fill=0.6)  # the truth: "closed", 60% filled
    store = f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}"
    async with ExecutionEngine(exchange, store=store, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
        states = await path(engine, outcome.trade_id)

    assert outcome.state is TradeState.DONE, outcome.reason
    assert outcome.filled_x == pytest.approx(0.6)
    assert [o["amount"] for o in exchange.accepted("ETH/USDT")] == [pytest.approx(0.6)]
    assert TradeState.UNKNOWN in states and TradeState.RECONCILED in states
    assert len(exchange.create_calls("BTC/USDT")) == 1


# --- the rules ------------------------------------------------------------------------------

ORDER = OrderFacts(Leg.B, 1, "b" * 32, "ETH/USDT", "sell", 2.0, OrderStatus.UNKNOWN)


def reply(**fields: Any) -> dict[str, Any]:
    base = {"id": "7", "clientOrderId": "b" * 32, "symbol": "ETH/USDT", "status": "closed"}
    return {**base, "filled": 2.0, **fields}


@pytest.mark.parametrize(
    ("fields", "facts", "why"),
    [
        ({"filled": 2.0 * (1 + 10 * FILL_TOLERANCE)}, ORDER, "filled 2 of an order of 2"),
        ({"filled": 3.0}, ORDER, "filled 3 of an order of 2"),
        ({"filled": float("inf")}, ORDER, "filled inf"),
        ({"filled": -0.5, "status": "open"}, ORDER, "negative fill"),
        ({"clientOrderId": "a" * 32}, ORDER, "client id " + "a" * 32),
        ({"symbol": "BTC/USDT"}, ORDER, "symbol BTC/USDT"),
        ({"id": "8"}, replace(ORDER, exchange_order_id="7"), "exchange id 8"),
        ({"filled": 0.5, "status": "open"}, replace(ORDER, filled=1.0), "less than the 1"),
        ({"filled": 0.5, "status": "rejected"}, ORDER, "rejected, yet filled"),
        ({"filled": None}, ORDER, "closed without a fill"),
        ({"filled": None, "status": "canceled"}, ORDER, "canceled without a fill"),
        ({"filled": None, "status": "expired"}, ORDER, "expired without a fill"),
    ],
)
def test_replies_that_cannot_be_the_order_are_not_believed(
    fields: dict[str, Any], facts: OrderFacts, why: str
) -> None:
    with pytest.raises(NotBelievable, match=why.replace("(", r"\(")):
        parse_order(reply(**fields), facts)


@pytest.mark.parametrize(
    ("fields", "status", "filled"),
    [
        ({}, OrderStatus.CLOSED, 2.0),
        ({"filled": 2.0 * (1 + FILL_TOLERANCE / 10)}, OrderStatus.CLOSED, 2.0),  # float noise
        ({"clientOrderId": None, "symbol": None}, OrderStatus.CLOSED, 2.0),  # not echoed
        ({"clientOrderId": "", "symbol": ""}, OrderStatus.CLOSED, 2.0),
        ({"filled": None, "status": "open"}, OrderStatus.OPEN, 0.0),  # settle reads it again
        ({"filled": None, "status": None}, OrderStatus.OPEN, 0.0),  # an id and nothing else
        ({"filled": 0.0, "status": "canceled"}, OrderStatus.CANCELED, 0.0),
        ({"filled": None, "status": "rejected"}, OrderStatus.REJECTED, 0.0),
        ({"filled": 0.0}, OrderStatus.CLOSED, 0.0),  # a lookup's "closed, nothing": taken
    ],
)
def test_replies_that_can_be_the_order_are_read(
    fields: dict[str, Any], status: OrderStatus, filled: float
) -> None:
    report = parse_order(reply(**fields), ORDER)
    assert (report.exchange_order_id, report.status, report.filled) == ("7", status, filled)


def test_a_resend_may_get_a_new_exchange_id_a_lookup_may_not() -> None:
    """After a lookup confirmed the order absent it is sent again: a new venue order."""
    known = replace(ORDER, exchange_order_id="6")
    assert parse_order(reply(), known, new_send=True).exchange_order_id == "7"
    with pytest.raises(NotBelievable):
        parse_order(reply(), known)


def test_a_create_reply_closed_with_nothing_filled_is_looked_up_first() -> None:
    with pytest.raises(NotBelievable, match="closed without a fill"):
        parse_order(reply(filled=0.0), ORDER, new_send=True)


def test_a_reply_without_an_id_is_malformed_not_disbelieved() -> None:
    with pytest.raises(MalformedOrder) as caught:
        parse_order({"status": "closed", "filled": 2.0}, ORDER)
    assert not isinstance(caught.value, NotBelievable)
