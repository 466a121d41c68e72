"""The pair lock and stale work: why a request is a duplicate, a PARKED trade holding its pair
until a human resolves it, ``max_resume_age``, and leg B's minimum value checked before leg A.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pairexec import ExecutionEngine, InvalidRequest, TradeState
from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange
from pairexec.fsm.request import DuplicateReason
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import FakeExchange
from tests.support.stores import sql_store

PARKS = replace(FAST, unwind_on_abort=False)
"""Leg B refused and no unwind allowed: the trade parks with leg A naked."""


async def parked_trade(engine: ExecutionEngine, exchange: FakeExchange) -> str:
    exchange.fail("create_order", "ETH/USDT", "reject_funds")
    outcome = await engine.execute_pair_trade(btc_eth(signal_id="first"))
    assert outcome.state is TradeState.PARKED, outcome.reason
    return outcome.trade_id


async def test_a_parked_trade_blocks_its_pair_until_a_human_resolves_it(
    exchange: FakeExchange, db_url: str
):
    async with ExecutionEngine(exchange, db_url, PARKS) as engine:
        parked = await parked_trade(engine, exchange)
        sent = exchange.count("create_order")

        again = await engine.execute_pair_trade(btc_eth(signal_id="second"))
        assert again.duplicate and again.duplicate_reason is DuplicateReason.PAIR_PARKED
        assert again.trade_id == parked and "PARKED" in again.reason
        assert exchange.count("create_order") == sent  # nothing sent on a naked leg

        resolved = await sql_store(engine).resolve(parked[:32], "sold the 1 BTC by hand")
        assert resolved.state is TradeState.RESOLVED
        events = await sql_store(engine).events(parked)
        assert events[-1].from_state is TradeState.PARKED
        assert events[-1].to_state is TradeState.RESOLVED
        assert events[-1].cause == "resolved by hand: sold the 1 BTC by hand"

        after = await engine.execute_pair_trade(btc_eth(signal_id="third"))
    assert after.state is TradeState.DONE and not after.duplicate
    assert after.duplicate_reason is None


async def test_without_the_lock_the_next_signal_trades_beside_the_parked_one(
    exchange: FakeExchange, db_url: str
):
    config = replace(PARKS, block_pair_while_parked=False)
    async with ExecutionEngine(exchange, db_url, config) as engine:
        await parked_trade(engine, exchange)
        again = await engine.execute_pair_trade(btc_eth(signal_id="second"))
    assert again.state is TradeState.DONE and not again.duplicate


async def test_resolve_refuses_an_unknown_or_unparked_trade_and_changes_nothing(
    exchange: FakeExchange, db_url: str
):
    async with ExecutionEngine(exchange, db_url, FAST) as engine:
        done = await engine.execute_pair_trade(btc_eth())
        store = sql_store(engine)
        with pytest.raises(InvalidRequest, match="not PARKED"):
            await store.resolve(done.trade_id, "nothing to do")
        with pytest.raises(InvalidRequest, match="no trade"):
            await store.resolve("no-such-trade", "nothing to do")
        with pytest.raises(InvalidRequest, match="needs a note"):
            await store.resolve(done.trade_id, "  ")
        assert (await store.load(done.trade_id)).state is TradeState.DONE
        assert [e.to_state for e in await store.events(done.trade_id)][-1] is TradeState.DONE


async def test_why_a_request_is_a_duplicate(exchange: FakeExchange, db_url: str):
    exchange.latency = 0.05
    leg_a_in_flight = asyncio.Event()
    exchange.on_create = lambda call: leg_a_in_flight.set()
    async with ExecutionEngine(exchange, db_url, FAST) as engine:
        first = asyncio.create_task(engine.execute_pair_trade(btc_eth(signal_id="s1")))
        await leg_a_in_flight.wait()
        busy = await engine.execute_pair_trade(btc_eth(signal_id="s2"))
        # a replayed signal id is named as such even while its trade is in flight
        replayed_in_flight = await engine.execute_pair_trade(btc_eth(signal_id="s1"))
        done = await first
        replayed = await engine.execute_pair_trade(btc_eth(signal_id="s1"))
    assert done.state is TradeState.DONE and done.duplicate_reason is None
    assert busy.duplicate_reason is DuplicateReason.PAIR_BUSY and busy.trade_id == done.trade_id
    assert replayed_in_flight.duplicate_reason is DuplicateReason.SIGNAL_REPLAYED
    assert replayed.duplicate_reason is DuplicateReason.SIGNAL_REPLAYED
    assert exchange.count("create_order") == 2


async def leg_a_left_unknown(exchange: FakeExchange, db_url: str, placed: bool) -> str:
    """A trade whose leg A timed out (placed or not) and whose lookups all failed: left for
    ``recover``."""
    exchange.fail(
        "create_order", "BTC/USDT", "timeout_after_accept" if placed else "timeout_before_accept"
    )
    exchange.fail("fetch_order", "BTC/USDT", *["timeout_before_accept"] * FAST.lookup_attempts)
    async with ExecutionEngine(exchange, db_url, FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.UNKNOWN, outcome.reason
    return outcome.trade_id


async def test_recover_fails_a_leg_a_confirmed_absent_past_max_resume_age(
    exchange: FakeExchange, db_url: str
):
    trade_id = await leg_a_left_unknown(exchange, db_url, placed=False)
    await asyncio.sleep(0.3)
    async with ExecutionEngine(exchange, db_url, replace(FAST, max_resume_age=0.2)) as engine:
        [outcome] = await engine.recover()
    assert outcome.trade_id == trade_id and outcome.state is TradeState.FAILED
    assert "not sent late" in outcome.reason and "max_resume_age 0.2 s" in outcome.reason
    assert exchange.count("create_order") == 1  # never resent


async def test_within_max_resume_age_a_confirmed_absent_leg_a_is_resent(
    exchange: FakeExchange, db_url: str
):
    await leg_a_left_unknown(exchange, db_url, placed=False)
    async with ExecutionEngine(exchange, db_url, replace(FAST, max_resume_age=60)) as engine:
        [outcome] = await engine.recover()
    assert outcome.state is TradeState.DONE
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT", "BTC/USDT", "ETH/USDT"]


async def test_a_placed_leg_a_is_hedged_however_old(exchange: FakeExchange, db_url: str):
    await leg_a_left_unknown(exchange, db_url, placed=True)
    await asyncio.sleep(0.3)
    async with ExecutionEngine(exchange, db_url, replace(FAST, max_resume_age=0.2)) as engine:
        [outcome] = await engine.recover()
    assert outcome.state is TradeState.DONE and outcome.filled_y == outcome.filled_x


async def test_leg_b_below_the_minimum_value_at_a_recent_price_is_refused_before_leg_a(
    tmp_path,
):
    """ETH/USDT needs orders worth 5 USDT. The first trade's driver fetched ETH's price; the
    second request's hedge (0.0005 ETH, 1.5 USDT at 3,000) is then refused up front, instead
    of buying BTC and selling it back."""
    markets = {
        "BTC/USDT": DEFAULT_MARKETS["BTC/USDT"],
        "ETH/USDT": replace(DEFAULT_MARKETS["ETH/USDT"], min_cost=5.0),
    }
    paper = PaperExchange(None, markets=markets)
    async with ExecutionEngine(paper, f"sqlite:///{tmp_path / 't.db'}", FAST) as engine:
        first = await engine.execute_pair_trade(btc_eth(0.001, hedge_ratio=15))
        sent = len(paper.all_orders())
        with pytest.raises(InvalidRequest, match=r"worth 1\.5 .* minimum order value \(5\)"):
            await engine.execute_pair_trade(btc_eth(0.0002, hedge_ratio=2.5))
        orders = paper.all_orders()
    await paper.close()
    assert first.state is TradeState.DONE
    assert len(orders) == sent  # nothing bought, nothing sold back
    assert {o["symbol"] for o in orders} == {"BTC/USDT", "ETH/USDT"}
