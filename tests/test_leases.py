"""Trade leases in the store: who may drive a trade, and how a trade changes hands."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from fsm import PairTradeRequest, TradeState
from persistence import Change, Lease, StaleTrade, TradeRecord, TradeStore


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
        assert await store.renew(lease("owner", seconds=30), [trade.id]) == 1  # type: ignore[union-attr]
        assert await store.renew(lease("other"), [trade.id]) == 0  # type: ignore[union-attr]
        await asyncio.sleep(0.3)
        assert await store.claim(lease("other")) == []  # renewed: still held
        await store.release("owner")
        assert await store.claim(lease("other")) == [trade.id]  # type: ignore[union-attr]
