"""A write whose reply is lost: did it commit? The engine reads the trade back and goes on only
if the database holds exactly that write and confirms its lease; otherwise the drive stops
with nothing sent on it, for ``recover``. On SQLite and PostgreSQL, through the real store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.engine import TradeInterrupted
from pairexec.fsm.model import Change, Lease, TradeRecord, after, same_facts
from pairexec.persistence import StoreError, TradeStore
from tests.conftest import FAST, btc_eth
from tests.support.fake_exchange import FakeExchange
from tests.support.records import trade


class OneWriteFails(TradeStore):
    """A real store whose apply number ``at`` fails: after its commit ("lost", the reply of a
    COMMIT that went through) or before it ("refused"). ``renewals`` False: the database no
    longer gives this owner the trade's lease."""

    def __init__(self, url: str, at: int, how: str, renewals: bool = True) -> None:
        super().__init__(url)
        self.at, self.how, self.renewals = at, how, renewals
        self.applies = 0

    async def apply(
        self, record: TradeRecord, change: Change, lease: Lease | None = None
    ) -> TradeRecord:
        self.applies += 1
        if self.applies != self.at:
            return await super().apply(record, change, lease)
        if self.how == "refused":
            raise StoreError("simulated: database is locked (nothing written)")
        await super().apply(record, change, lease)
        raise StoreError("simulated: the connection dropped after the commit")

    async def renew(self, lease: Lease, trade_ids: Any) -> set[str]:
        return await super().renew(lease, trade_ids) if self.renewals else set()


async def _applies_of_a_clean_trade(db_url: str) -> int:
    store = OneWriteFails(db_url, at=0, how="lost")
    async with store, ExecutionEngine(FakeExchange(), store=store, config=FAST) as engine:
        assert (await engine.execute_pair_trade(btc_eth())).state is TradeState.DONE
    return store.applies


async def test_every_write_whose_reply_is_lost_after_its_commit_is_read_back_and_the_trade_goes_on(
    db_url: str,
) -> None:
    writes = await _applies_of_a_clean_trade(db_url)
    assert writes >= 2  # leg A's answer (with leg B's intent), leg B's answer
    for at in range(1, writes + 1):
        exchange = FakeExchange()
        store = OneWriteFails(db_url, at=at, how="lost")
        async with store, ExecutionEngine(exchange, store=store, config=FAST) as engine:
            outcome = await engine.execute_pair_trade(btc_eth(signal_id=f"lost-{at}"))
        assert outcome.state is TradeState.DONE, (at, outcome)
        creates = exchange.create_calls()
        assert [c.symbol for c in creates] == ["BTC/USDT", "ETH/USDT"], (at, creates)
        assert len({c.client_order_id for c in creates}) == 2


async def test_a_write_that_did_not_commit_stops_the_drive_and_recover_finishes_it(
    db_url: str,
) -> None:
    exchange = FakeExchange()
    store = OneWriteFails(db_url, at=1, how="refused")  # leg A's answer, leg B's intent
    async with store, ExecutionEngine(exchange, store=store, config=FAST) as engine:
        with pytest.raises(TradeInterrupted):
            await engine.execute_pair_trade(btc_eth())
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT"]  # nothing sent on it
    plain = TradeStore(db_url)
    async with plain, ExecutionEngine(exchange, store=plain, config=FAST) as again:
        [outcome] = await again.recover()
    assert outcome.state is TradeState.DONE
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT", "ETH/USDT"]


async def test_a_committed_write_is_not_gone_on_with_once_the_lease_is_anothers(
    db_url: str,
) -> None:
    exchange = FakeExchange()
    store = OneWriteFails(db_url, at=1, how="lost", renewals=False)
    async with store, ExecutionEngine(exchange, store=store, config=FAST) as engine:
        with pytest.raises(TradeInterrupted):
            await engine.execute_pair_trade(btc_eth())
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT"]


def test_same_facts_tells_our_write_from_another_drivers_of_the_same_version() -> None:
    record = trade(TradeState.PENDING)
    ours = after(record, Change("ours", TradeState.LEG_A_SENT))
    assert same_facts(replace(ours, updated_at=record.created_at), ours)
    theirs = after(record, Change("theirs", TradeState.ABORTED))
    assert ours.version == theirs.version and not same_facts(theirs, ours)
