"""A bot following its trades: ``submit`` / ``wait``, ``find_by_signal``, and the committed
events of ``events()`` and ``subscribe()``.

The venue is the paper exchange (in memory, or a file where a second engine must see the same
orders), the store a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pairexec import EventsLost, ExecutionEngine, InvalidRequest, TradeEvent, TradeState
from pairexec.fsm.paper import PaperExchange
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth

SLOW_LEGS = "*:latency=0.05"


def chained(events: list[TradeEvent]) -> bool:
    """Each event starts where the one before ended, and time never runs back."""
    return all(e.from_state is p.to_state and e.at >= p.at for p, e in itertools.pairwise(events))


def by_trade(events: list[TradeEvent]) -> dict[str, list[TradeEvent]]:
    out: dict[str, list[TradeEvent]] = {}
    for event in events:
        out.setdefault(event.trade_id, []).append(event)
    return out


async def drain(stream: object) -> list[TradeEvent]:
    return [e async for e in stream]  # type: ignore[attr-defined]


# --- submit / wait --------------------------------------------------------------------------


async def test_submit_returns_once_stored_and_wait_returns_the_end(db_url: str) -> None:
    paper = PaperExchange(None, chaos=SLOW_LEGS)
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        submitted = await engine.submit(btc_eth(signal_id="sig-1"))
        assert submitted.trade_id and not submitted.duplicate
        assert submitted.state in (TradeState.PENDING, TradeState.LEG_A_SENT)
        assert paper.all_orders() == []  # leg A is still on its way (50 ms a call)
        stored = await engine.store.load(submitted.trade_id)
        assert stored.state is submitted.state
        done = await engine.wait(submitted.trade_id)
        again = await engine.wait(submitted.trade_id)  # a finished trade: read back
    assert done.state is TradeState.DONE and done.filled_y == 1.0
    assert (again.state, again.filled_x, again.filled_y) == (done.state, 1.0, 1.0)


async def test_a_cancelled_call_loses_no_trade_it_is_found_by_its_signal(db_url: str) -> None:
    store = TradeStore(db_url)
    async with ExecutionEngine(
        PaperExchange(None, chaos=SLOW_LEGS), store=store, config=FAST
    ) as engine:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(engine.execute_pair_trade(btc_eth(signal_id="sig-2")), 0.02)
        found = None
        for _ in range(500):  # its store write may still be under way on a loaded database
            found = await store.find_by_signal("sig-2")
            if found is not None:
                break
            await asyncio.sleep(0.01)
        assert found is not None
        outcome = await engine.wait(found.id)
        assert outcome.state is TradeState.DONE
        assert await store.find_by_signal("never-sent") is None


async def test_a_duplicate_submit_is_refused_with_the_trade_it_duplicates(db_url: str) -> None:
    async with ExecutionEngine(
        PaperExchange(None), store=TradeStore(db_url), config=FAST
    ) as engine:
        first = await engine.execute_pair_trade(btc_eth(signal_id="sig-3"))
        stream = engine.events()
        second = await engine.submit(btc_eth(signal_id="sig-3"))
        stream.close()
        assert await drain(stream) == []  # nothing was written, so nothing is told
    assert second.duplicate and second.trade_id == first.trade_id


async def test_wait_for_an_unknown_trade_is_an_invalid_request(db_url: str) -> None:
    async with ExecutionEngine(PaperExchange(None), store=TradeStore(db_url), config=FAST) as e:
        with pytest.raises(InvalidRequest, match="no trade 'nope'"):
            await e.wait("nope")


async def test_wait_follows_a_trade_another_engine_drives_and_one_left_unresolved(
    db_url: str, tmp_path: Path
) -> None:
    """Engine 1 loses leg B's answer and every lookup: the trade stops UNKNOWN, held by no
    one, and ``wait`` says so at once. After a restart (engine 2, the venue healthy again)
    recovers it, ``wait`` from a third engine follows it to DONE through the database."""
    book = tmp_path / "paper.db"
    stuck = "ETH/USDT:timeout_after_accept=1,lookup_timeouts=99"
    config = replace(FAST, lookup_attempts=2)
    async with ExecutionEngine(
        PaperExchange(book, chaos=stuck), store=TradeStore(db_url), config=config
    ) as first:
        submitted = await first.submit(btc_eth())
        stopped = await first.wait(submitted.trade_id)
    assert stopped.state is TradeState.UNKNOWN
    async with ExecutionEngine(
        PaperExchange(book), store=TradeStore(db_url), config=FAST
    ) as watcher:
        assert (await watcher.wait(stopped.trade_id)).state is TradeState.UNKNOWN
        async with ExecutionEngine(
            PaperExchange(book, chaos=SLOW_LEGS), store=TradeStore(db_url), config=FAST
        ) as restarted:
            recovering = asyncio.create_task(restarted.recover())
            for _ in range(500):  # until it is claimed: held by a live engine
                if await restarted.store.lease_holders(stopped.trade_id) or recovering.done():
                    break
                await asyncio.sleep(0.01)
            followed = await watcher.wait(stopped.trade_id, poll_interval=0.02)
            [recovered] = await recovering
    assert followed.state is TradeState.DONE and recovered.state is TradeState.DONE
    assert followed.filled_y == 1.0


# --- events -----------------------------------------------------------------------------------


async def test_events_of_concurrent_trades_are_each_trades_journal_in_order(db_url: str) -> None:
    pairs = [("BTC/USDT", "ETH/USDT"), ("SOL/USDT", "BNB/USDT"), ("XRP/USDT", "LTC/USDT")]
    requests = [
        replace(btc_eth(), pair_x=x, pair_y=y, amount_x=a, hedge_ratio=1.0)
        for (x, y), a in zip(pairs, (0.01, 1.0, 100.0), strict=True)
    ]
    paper = PaperExchange(None, chaos="*:latency=0.01;ETH/USDT:fill=0.5,leave_open=1")
    async with ExecutionEngine(paper, store=TradeStore(db_url), config=FAST) as engine:
        stream = engine.events()
        outcomes = await asyncio.gather(*(engine.execute_pair_trade(r) for r in requests))
    events = await drain(stream)  # the engine closed: the stream ended after its last event
    per_trade = by_trade(events)
    assert set(per_trade) == {o.trade_id for o in outcomes}
    async with TradeStore(db_url) as store:
        for outcome in outcomes:
            mine = per_trade[outcome.trade_id]
            journal = await store.events(outcome.trade_id)
            assert [(e.from_state, e.to_state, e.cause, e.client_order_id) for e in mine] == [
                (j.from_state or j.to_state, j.to_state, j.cause, j.client_order_id)
                for j in journal
            ]
            assert chained(mine), mine
            assert mine[0].cause.startswith("trade accepted")
            assert mine[-1].to_state is outcome.state
    assert {o.state for o in outcomes} == {TradeState.DONE}
    fills = [e for e in events if e.client_order_id and e.filled]
    assert fills and all(e.leg is not None and e.status is not None for e in fills)


async def test_no_event_for_a_write_the_database_rolled_back(tmp_path: Path) -> None:
    """The write that would make the trade DONE is refused by the database (a trigger aborts
    it): the trade stays LEG_B_SENT and no subscriber hears of DONE, nor of the fill."""
    path = tmp_path / "trades.db"
    async with TradeStore(f"sqlite:///{path}"):
        pass  # created at the newest revision
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER refuse_done BEFORE UPDATE OF state ON trades"
            " WHEN NEW.state = 'DONE' BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"
        )
    async with ExecutionEngine(
        PaperExchange(None), store=TradeStore(f"sqlite:///{path}"), config=FAST
    ) as engine:
        stream = engine.events()
        with pytest.raises(Exception, match="disk full"):
            await engine.execute_pair_trade(btc_eth())
    events = await drain(stream)
    async with TradeStore(f"sqlite:///{path}") as store:
        [trade] = await store.list_trades()
        journal = await store.events(trade.id)
    assert trade.state is TradeState.LEG_B_SENT
    assert [e.to_state for e in events] == [j.to_state for j in journal]
    assert TradeState.DONE not in {e.to_state for e in events}


async def test_a_subscriber_that_falls_behind_is_told_and_trading_goes_on(db_url: str) -> None:
    async with ExecutionEngine(
        PaperExchange(None), store=TradeStore(db_url), config=FAST
    ) as engine:
        behind = engine.events(maxsize=3)
        keeping_up = engine.events()
        outcomes = [await engine.execute_pair_trade(btc_eth()) for _ in range(3)]
    assert all(o.state is TradeState.DONE for o in outcomes)  # never waited for `behind`
    given = []
    with pytest.raises(EventsLost) as lost:
        async for event in behind:
            given.append(event)
    everything = await drain(keeping_up)
    assert given == everything[:3]
    assert lost.value.lost == len(everything) - 3 > 0


async def test_callbacks_sync_and_async_get_every_event_in_order(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen_sync: list[TradeEvent] = []
    seen_async: list[TradeEvent] = []
    threads: set[int] = set()

    def slow_and_failing(event: TradeEvent) -> None:
        threads.add(threading.get_ident())
        seen_sync.append(event)
        if len(seen_sync) == 2:
            raise RuntimeError("a bot's bug")

    async def collect(event: TradeEvent) -> None:
        seen_async.append(event)

    async with ExecutionEngine(
        PaperExchange(None), store=TradeStore(db_url), config=FAST
    ) as engine:
        engine.subscribe(slow_and_failing)
        engine.subscribe(collect)
        stream = engine.events()
        await asyncio.gather(*(engine.execute_pair_trade(r) for r in (btc_eth(),)))
    everything = await drain(stream)
    assert seen_sync == everything and seen_async == everything and everything
    assert threading.get_ident() not in threads  # a plain callback never runs on the loop
    assert "a bot's bug" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)


async def test_another_engines_trades_are_not_this_engines_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trades.db'}"
    paper = PaperExchange(tmp_path / "paper.db")
    async with ExecutionEngine(paper, store=TradeStore(url), config=FAST) as listener:
        theirs = listener.events()
        async with ExecutionEngine(paper, store=TradeStore(url), config=FAST) as other:
            mine = other.events()
            outcome = await other.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE
    assert await drain(theirs) == []
    assert {e.trade_id for e in await drain(mine)} == {outcome.trade_id}
