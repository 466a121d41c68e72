"""Closing a pair trade: one exit per entry, sized from what the entry's legs hold.

Against the paper exchange (its balances are the account the exit must give back) and a real
SQLite file and PostgreSQL database (the one-exit rule is the database's unique index).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pairexec import ExecutionEngine, InvalidRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import DuplicateReason
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth


async def balances(paper: PaperExchange) -> dict[str, float]:
    total = (await paper.fetch_balance())["total"]
    return {c: float(total.get(c) or 0.0) for c in ("BTC", "ETH")}


async def test_a_close_reverses_the_entrys_positions_and_gives_the_account_back(
    db_url: str,
) -> None:
    paper = PaperExchange(None)
    before = await balances(paper)
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        entry = await engine.execute_pair_trade(btc_eth(0.5, hedge_ratio=15.0))
        closed = await engine.close_pair_trade(entry.trade_id)
        orders = {o.leg: o for o in (await engine.store.load(closed.trade_id)).orders}
    assert entry.ok and closed.ok and closed.closes == entry.trade_id and entry.closes is None
    assert (orders[Leg.A].side, orders[Leg.A].amount) == ("sell", 0.5)
    assert (orders[Leg.B].side, orders[Leg.B].amount) == ("buy", pytest.approx(7.5))
    assert await balances(paper) == pytest.approx(before)


async def test_a_partly_filled_entry_with_fees_in_the_coin_is_closed_by_what_it_holds(
    db_url: str,
) -> None:
    """Leg A filled 60%, its fee charged in BTC: the entry holds 0.6 x 0.999 BTC, and leg B
    hedged that. The exit sells what is held (floored to BTC's step) and buys back leg B's
    whole net short."""
    paper = PaperExchange(None, chaos="BTC/USDT@buy:fill=0.6", taker_fee=0.001)
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        entry = await engine.execute_pair_trade(btc_eth(0.5, hedge_ratio=10.0))
        closed = await engine.close_pair_trade(entry.trade_id)
        orders = {o.leg: o for o in (await engine.store.load(closed.trade_id)).orders}
    assert entry.state is TradeState.DONE and entry.filled_x == pytest.approx(0.3)
    assert entry.net_x == pytest.approx(0.3 * 0.999)
    assert closed.ok
    assert orders[Leg.A].amount == pytest.approx(0.2997)  # 0.2997 BTC: on the 0.00001 step
    assert orders[Leg.B].amount == pytest.approx(entry.net_y)  # ETH sold, fee in USDT: 2.997
    assert closed.filled_y == pytest.approx(entry.net_y)


async def test_a_second_close_is_a_duplicate_and_sends_nothing(db_url: str) -> None:
    paper = PaperExchange(None)
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        entry = await engine.execute_pair_trade(btc_eth())
        first = await engine.close_pair_trade(entry.trade_id)
        sent = len(paper.all_orders())
        second = await engine.close_pair_trade(entry.trade_id)
    assert first.ok
    assert second.duplicate and second.duplicate_reason is DuplicateReason.ALREADY_CLOSED
    assert second.trade_id == first.trade_id and "already closed" in second.reason
    assert len(paper.all_orders()) == sent


async def test_two_concurrent_closes_make_exactly_one_exit(db_url: str) -> None:
    paper, store = PaperExchange(None, chaos="*:latency=0.01"), TradeStore(db_url)
    async with ExecutionEngine(paper, store=store, config=FAST) as engine:
        entry = await engine.execute_pair_trade(btc_eth())
        sent = len(paper.all_orders())
        both = await asyncio.gather(*(engine.close_pair_trade(entry.trade_id) for _ in "ab"))
        trades = await store.list_trades()
    assert sorted(o.duplicate for o in both) == [False, True]
    [exit_] = [o for o in both if not o.duplicate]
    [refused] = [o for o in both if o.duplicate]
    assert refused.duplicate_reason is DuplicateReason.ALREADY_CLOSED
    assert refused.trade_id == exit_.trade_id
    assert exit_.ok
    assert [t.request.closes for t in trades].count(entry.trade_id) == 1
    assert len(paper.all_orders()) == sent + 2  # one exit's two legs


async def test_an_exit_that_failed_does_not_count_the_entry_is_closed_again(db_url: str) -> None:
    paper = PaperExchange(None, chaos="BTC/USDT@sell:reject_invalid=1")
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        entry = await engine.execute_pair_trade(btc_eth())
        failed = await engine.close_pair_trade(entry.trade_id)
        again = await engine.close_pair_trade(entry.trade_id)
    assert failed.state is TradeState.FAILED and failed.closes == entry.trade_id
    assert again.ok and again.trade_id != failed.trade_id and again.closes == entry.trade_id


async def test_only_a_done_entry_is_closed(db_url: str) -> None:
    paper = PaperExchange(None, chaos="BTC/USDT@buy:reject_invalid=1")
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        failed = await engine.execute_pair_trade(btc_eth())
        assert failed.state is TradeState.FAILED
        with pytest.raises(InvalidRequest, match="is FAILED, not DONE"):
            await engine.close_pair_trade(failed.trade_id)
        with pytest.raises(InvalidRequest, match="no trade 'f00d'"):
            await engine.close_pair_trade("f00d")
        entry = await engine.execute_pair_trade(btc_eth())
        exit_ = await engine.close_pair_trade(entry.trade_id)
        with pytest.raises(InvalidRequest, match="itself an exit"):
            await engine.close_pair_trade(exit_.trade_id)
        sent = len(paper.all_orders())
        wrong_way = replace(btc_eth(), closes=entry.trade_id)  # a bot's own "exit": same sides
        with pytest.raises(InvalidRequest, match="an exit of trade"):
            await engine.execute_pair_trade(wrong_way)
    assert len(paper.all_orders()) == sent
