"""Crashes between "intent persisted" and "create_order returned", and what recover() makes of them.

The crash is ``SimulatedCrash``, a BaseException that nothing in the engine catches, raised by
the fake exchange before or after it accepts an order: the process "dies" with the intent in
the database and the exchange in either state. A second engine on the same database file then
runs ``recover()``. (Real SIGKILLed processes come with the CLI's crash matrix.)
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pairexec import ExecutionEngine, TradeOutcome, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderStatus, TradeRecord
from pairexec.fsm.sim.crash import SimulatedCrash
from pairexec.persistence import StoreError, TradeStore
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import Call, FakeExchange
from tests.support.stores import sql_store

CRASH_POINTS = {
    # leg: (how to reach it, symbol whose create crashes, faults queued before the crash)
    "leg A": ("BTC/USDT", ()),
    "leg B": ("ETH/USDT", ()),
    "unwind": ("BTC/USDT", ("ok",)),  # leg A passes, leg B is rejected, the unwind crashes
}


def orders_per_leg(exchange: FakeExchange, trade_cids: dict[str, Leg]) -> Counter[Leg]:
    return Counter(trade_cids[o["clientOrderId"]] for o in exchange.accepted())


@pytest.mark.parametrize("when", ["crash_before", "crash_after"])
@pytest.mark.parametrize("leg", list(CRASH_POINTS))
async def test_crash_around_create_then_recover_gives_one_order_per_leg(
    exchange: FakeExchange, db_url: str, leg: str, when: str
):
    symbol, before = CRASH_POINTS[leg]
    exchange.fail("create_order", symbol, *before, when)
    if leg == "unwind":
        exchange.fail("create_order", "ETH/USDT", "reject_invalid")

    with pytest.raises(SimulatedCrash):
        async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
            await engine.execute_pair_trade(btc_eth())

    async with TradeStore(db_url) as store:
        [crashed] = await store.list_trades()
    assert crashed.orders[-1].status is OrderStatus.INTENT  # persisted before the send

    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        [outcome] = await engine.recover()
        again = await engine.recover()  # idempotent: nothing left to do
        trade = await engine.store.load(outcome.trade_id)

    assert again == []
    expected = TradeState.ABORTED if leg == "unwind" else TradeState.DONE
    assert outcome.state is expected
    legs = orders_per_leg(exchange, {o.client_order_id: o.leg for o in trade.orders})
    if leg == "unwind":
        assert legs == Counter({Leg.A: 1, Leg.UNWIND: 1})
        assert outcome.unwound_x == outcome.filled_x == 1.0
    else:
        assert legs == Counter({Leg.A: 1, Leg.B: 1})
        assert outcome.filled_y == outcome.filled_x == 1.0
    crashed_cid = crashed.orders[-1].client_order_id
    sends = [c for c in exchange.create_calls() if c.client_order_id == crashed_cid]
    assert len(sends) == (2 if when == "crash_before" else 1)  # resent only if confirmed absent


async def test_crash_during_lookup_then_recover(exchange: FakeExchange, db_url: str):
    exchange.fail("create_order", "ETH/USDT", "timeout_after_accept")
    exchange.fail("fetch_order", "ETH/USDT", "crash")
    with pytest.raises(SimulatedCrash):
        async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
            await engine.execute_pair_trade(btc_eth())

    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        [outcome] = await engine.recover()

    assert outcome.state is TradeState.DONE
    assert len(exchange.create_calls("ETH/USDT")) == 1


async def test_recover_fails_a_trade_that_was_never_sent(db_url: str, exchange: FakeExchange):
    async with TradeStore(db_url) as store:
        created = await store.create_trade(btc_eth().validated())

    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        [outcome] = await engine.recover()

    assert outcome.trade_id == created.id  # type: ignore[union-attr]
    assert outcome.state is TradeState.FAILED and "never sent" in outcome.reason
    assert exchange.calls == []


async def test_recover_resumes_a_filled_leg_a_by_sending_leg_b(db_url: str, exchange):
    exchange.fail("create_order", "ETH/USDT", "crash_before")
    with pytest.raises(SimulatedCrash):
        async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
            await engine.execute_pair_trade(btc_eth(hedge_ratio=2.5))

    async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
        [outcome] = await engine.recover()

    assert outcome.state is TradeState.DONE and outcome.filled_y == 2.5


async def test_recover_joins_a_trade_this_engine_is_already_driving(engine, exchange):
    """One driver per trade: recover() during execute_pair_trade waits for the running driver."""
    exchange.latency = 0.03
    leg_a_in_flight = asyncio.Event()
    exchange.on_create = lambda call: leg_a_in_flight.set()
    running = asyncio.create_task(engine.execute_pair_trade(btc_eth()))
    await leg_a_in_flight.wait()  # the trade is stored and being driven

    recovered = await engine.recover()
    outcome = await running

    assert [r.trade_id for r in recovered] == [outcome.trade_id]
    assert recovered[0].state is TradeState.DONE
    assert exchange.count("create_order") == 2
    assert exchange.count("fetch_order") == 0  # no second driver looked anything up


class StalledStore(TradeStore):
    """A store whose writes of a driven trade wait while ``answering`` is clear: an owner
    stalled, alive, while its lease runs out."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.answering = asyncio.Event()
        self.answering.set()

    async def apply(self, *args: Any, **kwargs: Any) -> TradeRecord:
        await self.answering.wait()
        return await super().apply(*args, **kwargs)


@asynccontextmanager
async def two_engines_mid_leg_a(
    exchange: FakeExchange, db_url: str, first_store: TradeStore | None = None
) -> AsyncIterator[tuple[ExecutionEngine, ExecutionEngine, asyncio.Task[TradeOutcome]]]:
    """Two engines on one database; the first has a trade whose leg A is on its way."""
    exchange.latency = 0.05
    leg_a_in_flight = asyncio.Event()
    exchange.on_create = lambda call: leg_a_in_flight.set()
    async with (
        ExecutionEngine(exchange, store=first_store or db_url, config=FAST) as first,
        ExecutionEngine(exchange, store=TradeStore(db_url), config=FAST) as second,
    ):
        running = asyncio.create_task(first.execute_pair_trade(btc_eth()))
        await leg_a_in_flight.wait()
        yield first, second, running


async def test_another_engine_leaves_a_live_engines_trade_alone(exchange, db_url: str):
    async with two_engines_mid_leg_a(exchange, db_url) as (_, second, running):
        assert await second.recover() == []  # leased by a live engine: not claimed
        outcome = await running

    assert outcome.state is TradeState.DONE
    assert exchange.count("fetch_order") == 0 and exchange.count("create_order") == 2


async def test_expired_lease_is_taken_over_and_the_old_driver_stops(exchange, db_url: str):
    """A stalled owner (alive, but its lease ran out) loses the trade: the compare-and-set on
    owner stops its next step, and the client id stops a second copy on the exchange."""
    stalled = StalledStore(db_url)
    stalled.answering.clear()  # leg A's answer is written only once the trade is taken over
    async with two_engines_mid_leg_a(exchange, db_url, stalled) as (first, second, running):
        await first.store.release(first.owner)  # as if the lease had run out
        [recovered] = await second.recover()
        stalled.answering.set()
        outcome = await running
        trade = await second.store.load(outcome.trade_id)
        events = await sql_store(second).events(outcome.trade_id)

    assert recovered.state is TradeState.DONE and trade.state is TradeState.DONE
    assert "another driver" in outcome.reason
    assert any(e.cause.startswith(f"claimed by {second.owner}") for e in events)
    legs = orders_per_leg(exchange, {o.client_order_id: o.leg for o in trade.orders})
    assert legs == Counter({Leg.A: 1, Leg.B: 1})


async def test_order_row_is_committed_before_create_order(exchange: FakeExchange, tmp_path):
    path = tmp_path / "trades.db"
    seen: list[tuple[str, str]] = []

    def check_db(call: Call) -> None:
        with sqlite3.connect(path) as db:  # a separate connection sees only committed rows
            row = db.execute(
                "SELECT status, leg FROM orders WHERE client_order_id = ?",
                (call.client_order_id,),
            ).fetchone()
        assert row is not None, f"create_order for {call.client_order_id} before it was persisted"
        seen.append(row)

    exchange.on_create = check_db
    exchange.fail("create_order", "ETH/USDT", "timeout_before_accept")
    async with ExecutionEngine(exchange, store=f"sqlite:///{path}", config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())

    assert outcome.ok
    assert seen == [("INTENT", "A"), ("INTENT", "B"), ("INTENT", "B")]
    for call in exchange.create_calls():
        cid = call.client_order_id
        assert cid is not None and len(cid) == 32 and cid == cid.lower()
        int(cid, 16)


async def test_a_trade_is_three_commits_each_intent_with_the_fact_before_it(
    exchange: FakeExchange, tmp_path
):
    """The trade with leg A's intent; leg A's fill with leg B's intent; leg B's fill with the
    end. Every transition is still journaled, each intent under its client order id."""
    async with TradeStore(f"sqlite:///{tmp_path / 'trades.db'}") as store:
        commits: list[str] = []
        connection = store._runner._connection  # type: ignore[union-attr]
        connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        async with ExecutionEngine(exchange, store=store, config=FAST) as engine:
            outcome = await engine.execute_pair_trade(btc_eth())
        connection.set_trace_callback(None)
        trade = await store.load(outcome.trade_id)
        events = await store.events(outcome.trade_id)

    assert outcome.state is TradeState.DONE
    assert len(commits) == 3 + 1  # the trade's three, and the engine's lease release at close
    cids = {o.leg: o.client_order_id for o in trade.orders}
    assert [(e.to_state, e.client_order_id) for e in events] == [
        (TradeState.PENDING, None),
        (TradeState.LEG_A_SENT, cids[Leg.A]),
        (TradeState.LEG_A_SENT, cids[Leg.A]),  # leg A's answer
        (TradeState.LEG_A_FILLED, None),
        (TradeState.LEG_B_SENT, cids[Leg.B]),
        (TradeState.LEG_B_SENT, cids[Leg.B]),  # leg B's answer
        (TradeState.DONE, None),
    ]


async def test_a_database_locked_by_another_writer_stops_the_trade_and_recover_finishes_it(
    exchange: FakeExchange, tmp_path
):
    """Another process holds SQLite's write lock while leg A is on the exchange: recording its
    fill fails after the URL's ?timeout with a StoreError that says so; leg B is not sent (its
    intent could not be written). Once the lock is gone, recover() finds leg A filled by
    lookup and hedges it: one order per leg."""
    path = tmp_path / "trades.db"
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lock_the_database(call: Call) -> None:
        if call.symbol == "BTC/USDT":
            blocker.execute("BEGIN IMMEDIATE")

    exchange.on_create = lock_the_database
    async with ExecutionEngine(exchange, f"sqlite:///{path}?timeout=0.2", FAST) as engine:
        connection = sql_store(engine)._runner._connection  # type: ignore[union-attr]
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (200,)
        with pytest.raises(StoreError, match=r"locked by another writer for 0\.2 s"):
            await engine.execute_pair_trade(btc_eth())
        assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT"]
        blocker.execute("ROLLBACK")
        blocker.close()
        [outcome] = await engine.recover()
        trade = await engine.store.load(outcome.trade_id)

    assert outcome.state is TradeState.DONE
    legs = orders_per_leg(exchange, {o.client_order_id: o.leg for o in trade.orders})
    assert legs == Counter({Leg.A: 1, Leg.B: 1})


async def test_recover_reports_progress_as_each_trade_ends(exchange: FakeExchange, db_url: str):
    async with TradeStore(db_url) as store:
        for pair_y in ("ETH/USDT", "SOL/USDT", "XRP/USDT"):  # PENDING: never sent
            await store.create_trade(replace(btc_eth(), pair_y=pair_y))
        calls: list[tuple[int, int]] = []
        async with ExecutionEngine(exchange, store=store, config=FAST) as engine:
            outcomes = await engine.recover(lambda done, claimed: calls.append((done, claimed)))
    assert len(outcomes) == 3
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


@asynccontextmanager
async def lock_held_elsewhere(db_url: str) -> AsyncIterator[None]:
    """Another session holds SQLite's write lock, or PostgreSQL's lock on the trades table."""
    if db_url.startswith("sqlite"):
        blocker = sqlite3.connect(str(make_url(db_url).database), isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            yield
        finally:
            blocker.close()  # ends its transaction
        return
    holder = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await holder.execute("BEGIN; LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        await holder.close()


async def test_a_lock_held_by_another_session_fails_the_trade_after_the_urls_wait(
    exchange: FakeExchange, db_url: str
):
    """SQLite (?timeout=) and PostgreSQL (?lock_timeout=): a write that cannot get its lock
    fails after the URL's wait with a StoreError naming the option, before anything is sent;
    once the lock is gone, trades go through again. (Without the bound it would wait forever:
    the test gives up after 10 s.)"""
    option = "timeout" if db_url.startswith("sqlite") else "lock_timeout"
    async with ExecutionEngine(exchange, f"{db_url}?{option}=0.3", FAST) as engine:
        async with lock_held_elsewhere(db_url):
            expected = rf"locked by another writer for 0\.3 s \(URL option \?{option}="
            with pytest.raises(StoreError, match=expected):
                await asyncio.wait_for(engine.execute_pair_trade(btc_eth()), 10)
        assert exchange.create_calls() == []
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE
