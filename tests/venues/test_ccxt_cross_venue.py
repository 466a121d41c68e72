"""Two venues in one trade, through real ccxt over HTTP: every call goes to its leg's venue only.

``tests/engine/test_cross_venue.py`` proves the routing with in-memory fakes. Here each venue is
its own ``support.fake_binance`` server (own port, own book file) behind its own real
``ccxt.async_support.binance`` client, so what is asserted is what each server received and
what each book holds. Two instances of one ccxt class are the hard case for routing: the same
markets, the same client-id rules, the same error codes, and (for the arbitrage, the main use)
the same symbol on both venues: a lookup, a resend or an unwind sent to the wrong venue is told
apart only by which server saw it, and every test names the server it is about.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderStatus, TradeRecord
from pairexec.persistence import TradeStore
from tests.conftest import FAST
from tests.support.fake_binance import FakeBinance, Seen, binance_client
from tests.support.stores import sql_store

LOOKUPS = ("fetch", "open_orders", "all_orders")
"""The request kinds by which an order can be looked up on Binance."""


@dataclass
class Venues:
    a: FakeBinance
    b: FakeBinance
    engine: ExecutionEngine


@pytest.fixture
async def venues(tmp_path: Path) -> AsyncIterator[Venues]:
    """Venue "a" and venue "b": two independent fake Binance servers, each with its own book
    file and its own ccxt client, and an engine on both with a SQLite file for its store."""
    async with (
        FakeBinance(path=tmp_path / "a.book.db") as a,
        FakeBinance(path=tmp_path / "b.book.db") as b,
    ):
        client_a, client_b = binance_client(a.url), binance_client(b.url)
        try:
            store = TradeStore(f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}")
            async with ExecutionEngine(
                {"a": client_a, "b": client_b}, store=store, config=FAST
            ) as engine:
                yield Venues(a, b, engine)
        finally:
            await client_a.close()
            await client_b.close()


def across(pair_y: str = "BTC/USDT", amount: float = 1.0) -> PairTradeRequest:
    """Buy BTC/USDT on venue a, sell ``pair_y`` on venue b (BTC/USDT: the arbitrage)."""
    return PairTradeRequest(
        pair_x="BTC/USDT",
        side_x="buy",
        amount_x=amount,
        pair_y=pair_y,
        side_y="sell",
        venue_x="a",
        venue_y="b",
    )


def client_id(record: TradeRecord, leg: Leg) -> str:
    [order] = [o for o in record.orders if o.leg is leg]
    return order.client_order_id


def naming(fake: FakeBinance, cid: str) -> list[Seen]:
    """Every request the server received that carries ``cid`` in any parameter."""
    return [r for r in fake.requests if any(cid in value for value in r.params.values())]


def created(fake: FakeBinance) -> list[str | None]:
    return [r.client_order_id for r in fake.seen("create")]


def book_fills(fake: FakeBinance) -> dict[str | None, float]:
    return {o.client_order_id: o.filled for o in fake.orders()}


def db_fills(record: TradeRecord, venue: str) -> dict[str | None, float]:
    """The stored fills of the orders that reached ``venue``'s book (not the rejected)."""
    return {
        o.client_order_id: o.filled
        for o in record.orders
        if o.venue == venue and o.status is not OrderStatus.REJECTED
    }


@pytest.mark.parametrize("pair_y", ["BTC/USDT", "ETH/USDT"])
async def test_each_leg_is_sent_to_its_own_server_only(venues: Venues, pair_y: str) -> None:
    a, b = venues.a, venues.b

    outcome = await venues.engine.execute_pair_trade(across(pair_y, 0.5))

    assert outcome.state is TradeState.DONE, outcome.reason
    record = await venues.engine.store.load(outcome.trade_id)
    assert [(o.leg, o.venue) for o in record.orders] == [(Leg.A, "a"), (Leg.B, "b")]
    leg_a, leg_b = client_id(record, Leg.A), client_id(record, Leg.B)
    assert created(a) == [leg_a] and created(b) == [leg_b]
    assert [r.params["side"] for r in a.seen("create")] == ["BUY"]
    assert [(r.symbol, r.params["side"]) for r in b.seen("create")] == [(pair_y, "SELL")]
    assert naming(a, leg_b) == [] and naming(b, leg_a) == []
    assert book_fills(a) == db_fills(record, "a") == {leg_a: 0.5}
    assert book_fills(b) == db_fills(record, "b") == {leg_b: 0.5}


async def test_leg_b_ghost_is_looked_up_on_its_server_only_and_never_resent(
    venues: Venues,
) -> None:
    a, b = venues.a, venues.b
    b.fail("create", "BTC/USDT", "timeout_after_accept")  # placed on b, the reply never comes

    outcome = await venues.engine.execute_pair_trade(across())

    record = await venues.engine.store.load(outcome.trade_id)
    leg_a, leg_b = client_id(record, Leg.A), client_id(record, Leg.B)
    # where the calls went first: a misrouted lookup also ends the trade wrong, but this says why
    assert naming(a, leg_b) == []  # leg A's server was never asked about leg B
    assert [r for kind in LOOKUPS for r in a.seen(kind)] == []  # nor about anything else
    first, *lookups = naming(b, leg_b)
    assert first.kind == "create" and lookups  # the create, then lookups by its id only
    assert {r.kind for r in lookups} <= set(LOOKUPS)
    assert created(b) == [leg_b] and len(b.orders_with_client_id(leg_b)) == 1  # not resent
    assert created(a) == [leg_a]
    assert outcome.state is TradeState.DONE, outcome.reason
    path = [e.to_state for e in await sql_store(venues.engine).events(outcome.trade_id)]
    assert TradeState.UNKNOWN in path and TradeState.RECONCILED in path  # a ghost, found
    assert (outcome.filled_x, outcome.filled_y) == (1.0, 1.0)
    assert book_fills(a) == db_fills(record, "a") == {leg_a: 1.0}
    assert book_fills(b) == db_fills(record, "b") == {leg_b: 1.0}


@pytest.mark.parametrize("reject", ["reject_funds", "reject_invalid"])
async def test_leg_b_rejected_on_its_server_is_unwound_on_leg_a_server(
    venues: Venues, reject: str
) -> None:
    a, b = venues.a, venues.b
    b.fail("create", "BTC/USDT", reject)

    outcome = await venues.engine.execute_pair_trade(across())

    assert outcome.state is TradeState.ABORTED
    record = await venues.engine.store.load(outcome.trade_id)
    assert [(o.leg, o.venue) for o in record.orders] == [
        (Leg.A, "a"),
        (Leg.B, "b"),
        (Leg.UNWIND, "a"),
    ]
    leg_a, leg_b, unwind = (client_id(record, leg) for leg in (Leg.A, Leg.B, Leg.UNWIND))
    assert created(a) == [leg_a, unwind]
    assert [r.params["side"] for r in a.seen("create")] == ["BUY", "SELL"]
    assert created(b) == [leg_b]  # a definite reject: not retried
    assert b.orders() == []  # nothing reached b's book, nothing filled there
    assert naming(a, leg_b) == []
    assert naming(b, leg_a) == [] and naming(b, unwind) == []
    assert outcome.filled_x == 1.0 and outcome.filled_y == 0.0
    assert outcome.unwound_x == outcome.filled_x
    assert book_fills(a) == db_fills(record, "a") == {leg_a: 1.0, unwind: 1.0}
    assert db_fills(record, "b") == {}
