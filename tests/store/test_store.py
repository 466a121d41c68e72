"""The trade store's own promises: what ``apply`` returns is what is stored, a write on an
out-of-date record is refused, and SQLite's group commit keeps each caller's fate its own."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

import pairexec.persistence.sql
from pairexec import PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    Change,
    Duplicate,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    Transition,
)
from pairexec.persistence import (
    StaleTrade,
    StoreError,
    TradeStore,
    head_revision,
    schema_revision,
)
from tests.support.stores import insert_trades


def request(n: int) -> PairTradeRequest:
    return PairTradeRequest(f"X{n}/USDT", "buy", 1.0, f"Y{n}/USDT", "sell", 0.5).validated()


async def new_trade(store: TradeStore, n: int) -> TradeRecord:
    created = await store.create_trade(request(n))
    assert isinstance(created, TradeRecord)
    return created


STEPS = [
    Change(
        "a intent",
        TradeState.LEG_A_SENT,
        new_order=OrderFacts.intent(Leg.A, 1, "ca", "X/U", "buy", 1),
    ),
    Change(
        "a unknown",
        TradeState.UNKNOWN,
        order_update=OrderUpdate("ca", OrderStatus.UNKNOWN, add_sends=1, error="timeout"),
    ),
    Change(
        "a found",
        TradeState.RECONCILED,
        order_update=OrderUpdate("ca", OrderStatus.OPEN, 0.4, "x-1", 101.5),
    ),
    Change("a settled", order_update=OrderUpdate("ca", OrderStatus.CLOSED, 0.9, add_sends=2)),
    Change("partial", TradeState.LEG_A_PARTIAL),
    Change(
        "b intent",
        TradeState.LEG_B_SENT,
        new_order=OrderFacts.intent(Leg.B, 1, "cb", "Y/U", "sell", 1),
    ),
    Change("b stuck", order_update=OrderUpdate("cb", OrderStatus.UNKNOWN, error="down")),
    Change("parked", TradeState.PARKED),
]


async def test_apply_returns_exactly_what_a_fresh_load_reads(db_url: str):
    async with TradeStore(db_url) as store:
        record = await new_trade(store, 1)
        assert record == await store.load(record.id)
        for change in STEPS:
            record = await store.apply(record, change)
            assert record == await store.load(record.id), change.cause
        assert record.state is TradeState.PARKED
        assert record.reason == "parked"
        assert [o.filled for o in record.orders] == [0.9, 0.0]
        assert [o.sends for o in record.orders] == [3, 0]
        assert record.orders[0].exchange_order_id == "x-1"


def leg_a_intent(pending: TradeRecord) -> Change:
    return Change(
        "a intent",
        TradeState.LEG_A_SENT,
        new_order=OrderFacts.intent(Leg.A, 1, f"{pending.id}a", "X/U", "buy", 1),
    )


async def test_a_new_trade_is_stored_with_its_first_step(db_url: str):
    async with TradeStore(db_url) as store:
        created = await store.create_trade(request(1), first=leg_a_intent)
        assert isinstance(created, TradeRecord)
        assert created == await store.load(created.id)
        assert created.state is TradeState.LEG_A_SENT
        assert [(o.client_order_id, o.status) for o in created.orders] == [
            (f"{created.id}a", OrderStatus.INTENT)
        ]
        journal = [
            (e.from_state, e.to_state, e.client_order_id) for e in await store.events(created.id)
        ]
        assert journal == [
            (None, TradeState.PENDING, None),
            (TradeState.PENDING, TradeState.LEG_A_SENT, f"{created.id}a"),
        ]
        # a duplicate writes neither the trade nor its first step
        again = await store.create_trade(request(1), first=leg_a_intent)
        assert isinstance(again, Duplicate) and again.existing == created
        assert len(await store.list_trades()) == 1


async def test_a_submit_folded_into_a_fact_is_stored_with_it(db_url: str):
    """Leg A's fill, the move it makes certain and leg B's intent: one write, each journaled."""
    async with TradeStore(db_url) as store:
        created = await store.create_trade(request(1), first=leg_a_intent)
        assert isinstance(created, TradeRecord)
        leg_b = OrderFacts.intent(Leg.B, 1, "cb", "Y/U", "sell", 0.5)
        filled = Change(
            "a filled",
            order_update=OrderUpdate(f"{created.id}a", OrderStatus.CLOSED, 1.0, "x-1", 100.0),
            then=(
                Transition(TradeState.LEG_A_FILLED, "classified"),
                Transition(TradeState.LEG_B_SENT, "b intent", leg_b),
            ),
        )
        record = await store.apply(created, filled)
        assert record == await store.load(record.id)
        assert record.state is TradeState.LEG_B_SENT and record.reason == "b intent"
        assert [(o.leg, o.status) for o in record.orders] == [
            (Leg.A, OrderStatus.CLOSED),
            (Leg.B, OrderStatus.INTENT),
        ]
        journal = [(e.to_state, e.cause, e.client_order_id) for e in await store.events(record.id)]
        assert journal[2:] == [
            (TradeState.LEG_A_SENT, "a filled", f"{created.id}a"),
            (TradeState.LEG_A_FILLED, "classified", None),
            (TradeState.LEG_B_SENT, "b intent", "cb"),
        ]


async def test_a_write_on_an_out_of_date_record_is_refused(db_url: str):
    """Same state, older version: someone else wrote in between (an order fact, a reason)."""
    async with TradeStore(db_url) as store:
        seen = await new_trade(store, 1)
        await store.apply(seen, Change("another driver's note"))
        with pytest.raises(StaleTrade):
            await store.apply(seen, Change("gives up", TradeState.FAILED))
        assert (await store.load(seen.id)).state is TradeState.PENDING
        assert [e.cause for e in await store.events(seen.id)][-1] == "another driver's note"


async def test_one_refused_write_in_a_group_commit_undoes_only_itself(tmp_path: Path):
    db = tmp_path / "trades.db"
    async with TradeStore(f"sqlite:///{db}") as store:
        trades = [await new_trade(store, n) for n in range(20)]
        stale, broken = trades[7], trades[11]
        await store.apply(stale, Change("moved meanwhile"))
        # fails half-way: the trade row is updated before the order turns out to be missing
        bad = Change(
            "done", TradeState.FAILED, order_update=OrderUpdate("no-such", OrderStatus.OPEN)
        )

        commits: list[str] = []
        connection = store._runner._connection  # type: ignore[union-attr]
        connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        results = await asyncio.gather(
            *(
                store.apply(t, bad if t is broken else Change("done", TradeState.FAILED))
                for t in trades
            ),
            return_exceptions=True,
        )
        connection.set_trace_callback(None)

    assert len(commits) <= 2, "20 writes at once should share a commit or two"
    refused = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    assert refused == ["StaleTrade", "StoreError"]
    with sqlite3.connect(db) as check:
        states = dict(check.execute("SELECT id, state FROM trades").fetchall())
        journal = check.execute("SELECT count(*) FROM trade_events WHERE cause = 'done'")
        assert journal.fetchone()[0] == 18
    assert states[stale.id] == states[broken.id] == "PENDING"
    assert sorted(states.values()) == ["FAILED"] * 18 + ["PENDING"] * 2


async def test_a_caller_that_stopped_waiting_does_not_lose_the_others(tmp_path: Path):
    async with TradeStore(f"sqlite:///{tmp_path / 'trades.db'}") as store:
        trades = [await new_trade(store, n) for n in range(5)]
        tasks = [
            asyncio.create_task(store.apply(t, Change("x", TradeState.FAILED))) for t in trades
        ]
        tasks[2].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[2], asyncio.CancelledError)
        assert [r.state for r in results if isinstance(r, TradeRecord)] == [TradeState.FAILED] * 4
        assert (await store.load(trades[2].id)).state is TradeState.PENDING  # never ran


async def test_a_closed_store_says_so(tmp_path: Path):
    store = TradeStore(f"sqlite:///{tmp_path / 'trades.db'}")
    with pytest.raises(Exception, match="not open"):
        await store.load("x")


@pytest.mark.parametrize("bad", ["abc", "-1"])
async def test_the_lock_wait_option_is_honoured_and_a_bad_one_refused(db_url: str, bad: str):
    option = "timeout" if db_url.startswith("sqlite") else "lock_timeout"
    async with TradeStore(f"{db_url}?{option}=5") as store:  # the driver never sees ours
        await new_trade(store, 1)
    assert await schema_revision(f"{db_url}?{option}=5") == head_revision()
    store = TradeStore(f"{db_url}?{option}={bad}")
    with pytest.raises(StoreError, match=f"{option}='{bad}' in the database URL"):
        await store.open()
    assert not store.is_open


async def test_load_many_reads_every_asked_trade_in_chunks(db_url: str, monkeypatch):
    monkeypatch.setattr(pairexec.persistence.sql, "IDS_PER_QUERY", 2)  # 5 ids: 3 queries
    async with TradeStore(db_url) as store:
        trades = [await new_trade(store, n) for n in range(5)]
        asked = [t.id for t in trades] + ["no-such-trade"]
        found = await store.load_many(asked)
        assert found == {t.id: t for t in trades}
        assert await store.load_many([]) == {}


async def test_count_by_state(db_url: str):
    async with TradeStore(db_url) as store:
        first, _ = await new_trade(store, 1), await new_trade(store, 2)
        await store.apply(first, Change("gave up", TradeState.FAILED))
        assert await store.count_by_state() == {TradeState.PENDING: 1, TradeState.FAILED: 1}


async def test_list_trades_beyond_the_drivers_parameter_limit(db_url: str):
    """33,000 trades (asyncpg binds at most 32,767 parameters): each still comes with its
    order, which a single IN list of their ids could not fetch."""
    n = 33_000
    now = datetime.now(timezone.utc)
    async with TradeStore(db_url) as store:
        await insert_trades(store, n, "DONE", now)
        await store._run(
            lambda db: db.execute(
                "INSERT INTO orders (trade_id, leg, attempt, client_order_id, symbol, side,"
                " amount, status, filled, sends, last_error, created_at, updated_at)"
                " SELECT id, 'A', 1, 'c' || id, 'X/USDT', 'buy', 1, 'CLOSED', 1, 1, '', :now,"
                " :now FROM trades",
                {"now": now},
            )
        )
        trades = await store.list_trades(limit=n)
    assert len(trades) == n
    assert all([o.client_order_id for o in t.orders] == [f"c{t.id}"] for t in trades)
