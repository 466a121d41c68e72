"""Trade leases: who may drive a trade, how a trade changes hands, and why the engine sends
nothing for a trade it may no longer hold."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

import pairexec.persistence.sql
import pairexec.persistence.store
from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import Change, Lease, TradeRecord
from pairexec.persistence import StaleTrade, StoreError, TradeStore
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import Call, FakeExchange
from tests.support.stores import insert_trades, sql_store


def lease(owner: str, seconds: float = 30) -> Lease:
    return Lease(owner, datetime.now(timezone.utc) + timedelta(seconds=seconds))


def request(n: int) -> PairTradeRequest:
    return PairTradeRequest(f"X{n}/USDT", "buy", 1.0, f"Y{n}/USDT", "sell", 1.0).validated()


async def test_concurrent_claimers_never_share_a_trade(db_url: str):
    async with TradeStore(db_url) as setup:
        ids = set()
        for n in range(120):
            trade = await setup.create_trade(request(n))  # no owner: free for anyone
            ids.add(trade.id)  # type: ignore[union-attr]

    stores = [TradeStore(db_url) for _ in range(4)]
    for store in stores:
        await store.open()

    async def claimer(store: TradeStore, name: str) -> list[str]:
        mine: list[str] = []
        # a new owner name per batch: claim() also returns the caller's own trades
        for batch_number in range(1000):
            batch = await store.claim(lease(f"{name}-{batch_number}"), limit=7)
            if not batch:
                return mine
            mine += batch
            await asyncio.sleep(0)
        raise AssertionError("claiming never ran out of trades")

    try:
        results = await asyncio.gather(*(claimer(s, f"w{i}") for i, s in enumerate(stores)))
    finally:
        for store in stores:
            await store.close()

    claimed = [tid for batch in results for tid in batch]
    assert sorted(claimed) == sorted(ids)  # every trade once, none twice
    if db_url.startswith("postgresql"):  # SQLite serialises claimers: one may take them all
        assert len([r for r in results if r]) >= 2  # the claimers really did overlap


async def test_claim_respects_live_leases_and_takes_expired_or_dead_ones(db_url: str):
    async with TradeStore(db_url) as store:
        live = await store.create_trade(request(1), lease("alive"))
        expired = await store.create_trade(request(2), lease("stalled", seconds=-1))
        dead = await store.create_trade(request(3), lease("killed"))
        done = await store.create_trade(request(4))
        assert isinstance(done, TradeRecord)
        await store.apply(done, Change("x", TradeState.FAILED))

        claimed = await store.claim(lease("me"), dead_owners=["killed"])

        assert set(claimed) == {expired.id, dead.id}  # type: ignore[union-attr]
        assert live.id not in claimed  # type: ignore[union-attr]
        events = await store.events(expired.id)  # type: ignore[union-attr]
        assert events[-1].cause == "claimed by me (lease of stalled expired)"
        dead_events = await store.events(dead.id)  # type: ignore[union-attr]
        assert dead_events[-1].cause == "claimed by me (killed is gone)"


async def test_a_step_under_someone_elses_lease_is_refused(db_url: str):
    async with TradeStore(db_url) as store:
        trade = await store.create_trade(request(1), lease("owner"))
        assert isinstance(trade, TradeRecord)
        with pytest.raises(StaleTrade):
            await store.apply(trade, Change("x", TradeState.FAILED), lease("intruder"))
        moved = await store.apply(trade, Change("x", TradeState.FAILED), lease("owner"))
        assert moved.state is TradeState.FAILED


async def test_renew_keeps_and_release_frees(db_url: str):
    async with TradeStore(db_url) as store:
        trade = await store.create_trade(request(1), lease("owner", seconds=0.2))
        assert await store.renew(lease("owner", seconds=30), [trade.id]) == {trade.id}  # type: ignore[union-attr]
        assert await store.renew(lease("other"), [trade.id]) == set()  # type: ignore[union-attr]
        await asyncio.sleep(0.3)
        assert await store.claim(lease("other")) == []  # renewed: still held
        await store.release("owner")
        assert await store.claim(lease("other")) == [trade.id]  # type: ignore[union-attr]


async def test_renewing_more_trades_than_one_statement_can_bind(db_url: str):
    """33,000 trades held by one owner (PostgreSQL binds at most 32,767 parameters in one
    statement): the heartbeat's renewal of them all goes through, in lists of ids."""
    n = 33_000
    now = datetime.now(timezone.utc)
    async with TradeStore(db_url) as store:
        expired = now - timedelta(seconds=1)
        await insert_trades(store, n, "LEG_A_SENT", now, owner="me", lease_expires_at=expired)
        ids = [f"t{i}" for i in range(1, n + 1)]
        assert await store.renew(Lease("me", seconds=60), ids) == set(ids)
        assert await store.claim(lease("other")) == []  # every one renewed


def run_clock_ahead(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """This worker's clock, as the store reads it (its API and its SQL), runs ``by`` ahead."""
    ahead = datetime.now(timezone.utc) + by
    for module in (pairexec.persistence.store, pairexec.persistence.sql):
        monkeypatch.setattr(module, "utc_now", lambda: ahead)


async def test_a_lease_is_judged_by_the_databases_clock_not_the_workers(
    db_url: str, monkeypatch: pytest.MonkeyPatch
):
    """A worker whose clock runs an hour ahead sees every lease as long expired. On PostgreSQL
    the server's now() sets and compares lease times, so it claims nothing live; on SQLite
    (one machine, one clock) the test only checks that an honest clock gets the same answer."""
    async with TradeStore(db_url) as store:
        live = await store.create_trade(request(1), Lease("alive", seconds=30))
        assert isinstance(live, TradeRecord)
        if db_url.startswith("postgresql"):
            run_clock_ahead(monkeypatch, timedelta(hours=1))
        assert await store.claim(Lease("skewed", seconds=30)) == []
        # and its own lease, written with the server's clock, is not an hour long
        mine = await store.create_trade(request(2), Lease("skewed", seconds=0.2))
        monkeypatch.undo()
        await asyncio.sleep(0.3)
        assert await store.claim(Lease("other", seconds=30)) == [mine.id]  # type: ignore[union-attr]


async def test_the_store_knows_until_when_a_lease_is_surely_held(db_url: str):
    async with TradeStore(db_url) as store:
        before = time.monotonic()
        trade = await store.create_trade(request(1), Lease("me", seconds=30))
        assert isinstance(trade, TradeRecord)
        deadline = store.lease_deadline("me", trade.id)
        assert before - 0.001 < deadline - 30 <= time.monotonic()
        assert store.lease_deadline("other", trade.id) == -math.inf
        await store._run(lambda db: db.execute("UPDATE trades SET owner = 'thief'"))
        assert await store.renew(Lease("me", seconds=30), [trade.id]) == set()
        assert store.lease_deadline("me", trade.id) == -math.inf  # lost at once


# --- the engine: nothing is sent for a trade whose lease may be gone -----------------------


def legs_on_exchange(exchange: FakeExchange, trade: TradeRecord) -> Counter[Leg]:
    cids = {o.client_order_id: o.leg for o in trade.orders}
    return Counter(cids[o["clientOrderId"]] for o in exchange.accepted())


async def test_a_driver_whose_renewals_fail_stops_before_its_next_send(
    exchange: FakeExchange, db_url: str
):
    """Leg B is rate limited, and retried after 0.5 s and 1 s more. Meanwhile every lease
    renewal fails: 1 s after the last write (1.5 s lease, minus its last third) this process
    can no longer be sure it holds the trade, so the third send is not made. recover()
    finishes the trade later with one order per leg."""
    config = replace(FAST, lease_seconds=1.5, lookup_backoff=0.5, max_backoff=2.0)
    exchange.fail("create_order", "ETH/USDT", "rate_limit", "rate_limit")
    async with ExecutionEngine(exchange, db_url, config) as engine:

        async def renew_fails(lease: Lease, trade_ids: object) -> set[str]:
            raise StoreError("renewal refused (test)")

        real_renew = engine.store.renew
        engine.store.renew = renew_fails  # type: ignore[method-assign]
        outcome = await engine.execute_pair_trade(btc_eth())
        assert outcome.state is TradeState.LEG_B_SENT
        assert "lease on the trade may have run out" in outcome.reason
        assert len(exchange.create_calls("ETH/USDT")) == 2  # not the third

        engine.store.renew = real_renew  # type: ignore[method-assign]
        [recovered] = await engine.recover()
        trade = await engine.store.load(outcome.trade_id)
    assert recovered.state is TradeState.DONE
    assert legs_on_exchange(exchange, trade) == Counter({Leg.A: 1, Leg.B: 1})


async def test_with_working_renewals_the_same_retries_go_out(exchange: FakeExchange, db_url: str):
    """The heartbeat's renewals keep the lease surely held through the same retries."""
    config = replace(FAST, lease_seconds=1.5, lookup_backoff=0.5, max_backoff=2.0)
    exchange.fail("create_order", "ETH/USDT", "rate_limit", "rate_limit")
    async with ExecutionEngine(exchange, db_url, config) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE
    assert len(exchange.create_calls("ETH/USDT")) == 3


async def test_a_trade_whose_renewal_no_longer_matches_is_not_sent_for(
    exchange: FakeExchange, db_url: str
):
    """Another owner took the trade while leg B waited to be retried: the next renewal does
    not match it, and the retry is not sent (it would be a second driver's order)."""
    # The retry waits 2 s: ample for the takeover and the renewal below to land first even on
    # a loaded machine (at 0.5 s a slow PostgreSQL let the retry go out before the renewal).
    config = replace(FAST, lookup_backoff=2.0, max_backoff=2.0)
    exchange.fail("create_order", "ETH/USDT", "rate_limit")
    leg_b_refused = asyncio.Event()
    exchange.on_create = lambda call: leg_b_refused.set() if call.symbol == "ETH/USDT" else None
    async with ExecutionEngine(exchange, db_url, config) as engine:
        running = asyncio.create_task(engine.execute_pair_trade(btc_eth()))
        await leg_b_refused.wait()
        await sql_store(engine)._run(lambda db: db.execute("UPDATE trades SET owner = 'thief'"))
        await engine.store.renew(engine._lease(), sorted(engine._held))  # what the heartbeat does
        outcome = await running
        assert "lease on the trade may have run out or been taken" in outcome.reason
        assert len(exchange.create_calls("ETH/USDT")) == 1

        await sql_store(engine)._run(lambda db: db.execute("UPDATE trades SET owner = NULL"))
        [recovered] = await engine.recover()
        trade = await engine.store.load(outcome.trade_id)
    assert recovered.state is TradeState.DONE
    assert legs_on_exchange(exchange, trade) == Counter({Leg.A: 1, Leg.B: 1})


async def test_a_worker_an_hour_ahead_does_not_take_a_trade_during_a_slow_leg_b(
    exchange: FakeExchange, db_url: str, monkeypatch: pytest.MonkeyPatch
):
    """While leg B's create_order takes its time, a second worker whose clock runs an hour
    ahead recovers: on PostgreSQL the lease is judged by the server's clock, and it takes
    nothing. (On SQLite, one machine, the second worker has an honest clock.)"""
    leg_b_slow = asyncio.Event()

    def slow_leg_b(call: Call) -> None:
        if call.symbol == "ETH/USDT":
            exchange.latency = 0.5
            leg_b_slow.set()

    exchange.on_create = slow_leg_b
    async with (
        ExecutionEngine(exchange, db_url, FAST) as first,
        ExecutionEngine(exchange, TradeStore(db_url), FAST) as skewed,
    ):
        running = asyncio.create_task(first.execute_pair_trade(btc_eth()))
        await leg_b_slow.wait()
        if db_url.startswith("postgresql"):
            run_clock_ahead(monkeypatch, timedelta(hours=1))
        assert await skewed.recover() == []
        monkeypatch.undo()
        outcome = await running
        events = await sql_store(first).events(outcome.trade_id)
        trade = await first.store.load(outcome.trade_id)
    assert outcome.state is TradeState.DONE
    assert not [e for e in events if e.cause.startswith("claimed by")]
    assert legs_on_exchange(exchange, trade) == Counter({Leg.A: 1, Leg.B: 1})
