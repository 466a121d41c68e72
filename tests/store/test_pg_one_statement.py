"""What PostgreSQL is sent for one write: one statement, which it commits by itself, and
nothing else. Every round trip is CPU on the bot's event loop (a send and a receive); a write
was BEGIN, three statements and COMMIT (``sql.write_in_one`` makes them one), and asyncpg's
pool added a reset query on every release, for session state no job leaves
(``db._session_unchanged``)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    Change,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    Transition,
)
from pairexec.fsm.ports import StoreError
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore
from pairexec.persistence.db import AsyncpgRunner, Db

_SENDERS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first word of every query any asyncpg connection sends, in order."""
    queries: list[str] = []
    for name in _SENDERS:
        original = getattr(asyncpg.connection.Connection, name)

        async def recorded(
            self: Any, query: str, *args: Any, _send: Any = original, **kw: Any
        ) -> Any:
            queries.append(" ".join(query.split()[:2]))
            return await _send(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.connection.Connection, name, recorded)
    return queries


async def test_a_write_is_one_statement_and_nothing_more(pg_db: str, sent: list[str]) -> None:
    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell").validated()
    intent = OrderFacts.intent(Leg.A, 1, "pxa1", "BTC/USDT", "buy", 1.0)
    async with TradeStore(pg_db) as store:
        sent.clear()
        created = await store.create_trade(request)
        assert isinstance(created, TradeRecord)
        assert sent == ["WITH t"]
        sent.clear()
        leg_a = Change("leg A", TradeState.LEG_A_SENT, new_order=intent)
        sending = await store.apply(created, leg_a)
        assert sent == ["WITH t"]
        sent.clear()
        filled = OrderUpdate("pxa1", OrderStatus.CLOSED, filled=1.0, add_sends=1)
        done = await store.apply(sending, Change("leg A filled", order_update=filled))
        assert sent == ["WITH t"]
        assert await store.load(created.id) == done  # what was written is what apply returned


async def _two_orders(store: TradeStore, pair: str = "BTC/USDT") -> tuple[TradeRecord, Change]:
    request = PairTradeRequest(pair, "buy", 1.0, "ETH/USDT", "sell").validated()
    created = await store.create_trade(request)
    assert isinstance(created, TradeRecord)
    a = OrderFacts.intent(Leg.A, 1, "pxa1", "BTC/USDT", "buy", 1.0, "binance")
    b = OrderFacts.intent(Leg.B, 1, "pxb1", "ETH/USDT", "sell", 2.0, limit_price=1.5)
    then = (Transition(TradeState.LEG_B_SENT, "and leg B", b),)
    return created, Change("leg A", TradeState.LEG_A_SENT, new_order=a, then=then)


async def test_orders_and_journal_rows_of_one_statement_keep_their_order(pg_db: str) -> None:
    async with TradeStore(pg_db) as store:
        created, change = await _two_orders(store)
        written = await store.apply(created, change)
        assert [o.client_order_id for o in written.orders] == ["pxa1", "pxb1"]
        assert await store.load(created.id) == written
        causes = [e.cause for e in await store.events(created.id)]
        assert causes[1:] == ["leg A", "and leg B"]


async def test_a_refused_part_writes_nothing(pg_db: str) -> None:
    """A client id already taken (a unique constraint) or an order that is not there: the
    whole statement fails, the trade row and the journal stay as they were."""
    async with TradeStore(pg_db) as store:
        created, change = await _two_orders(store)
        first = await store.apply(created, change)
        other, _ = await _two_orders(store, "SOL/USDT")
        reused = OrderFacts.intent(Leg.A, 2, "pxa1", "SOL/USDT", "buy", 1)
        taken = Change("reuses pxa1", new_order=reused)
        with pytest.raises(StoreError, match="refused"):
            await store.apply(other, taken)
        missing = Change("no such order", order_update=OrderUpdate("nope", OrderStatus.OPEN))
        with pytest.raises(StoreError, match=r"order nope of trade \w+ not found"):
            await store.apply(first, missing)
        assert await store.load(other.id) == other
        assert await store.load(created.id) == first
        assert [e.cause for e in await store.events(other.id)] == ["trade accepted"]
        assert len(await store.events(created.id)) == 3


async def test_a_change_updating_an_order_it_inserts_runs_in_a_transaction(
    pg_db: str, sent: list[str]
) -> None:
    """One statement's parts do not see each other's rows: such a change is not made one."""
    async with TradeStore(pg_db) as store:
        created, _ = await _two_orders(store)
        a = OrderFacts.intent(Leg.A, 1, "pxa1", "BTC/USDT", "buy", 1.0)
        sent_at_once = OrderUpdate("pxa1", OrderStatus.UNKNOWN, add_sends=1)
        change = Change("leg A", TradeState.LEG_A_SENT, new_order=a, order_update=sent_at_once)
        sent.clear()
        written = await store.apply(created, change)
        assert sent[0] == "BEGIN;" and sent[-1] == "COMMIT;"
        assert written.orders[0].status is OrderStatus.UNKNOWN
        assert await store.load(created.id) == written


async def test_a_job_outside_a_transaction_cannot_send_a_second_statement(
    pg_db: str, sent: list[str]
) -> None:
    """The guard under ``alone``: a second statement would commit apart from the first."""
    async with TradeStore(pg_db) as store:
        runner = store._runner
        assert runner is not None

        def two(db: Db) -> None:
            db.execute("UPDATE trades SET reason = 'x' WHERE id = 'none'")
            db.execute("UPDATE trades SET reason = 'y' WHERE id = 'none'")

        sent.clear()
        with pytest.raises(StoreError, match="second statement"):
            await runner.run(two, writes=True, alone=True)
        assert sent == ["UPDATE trades"]


@pytest.mark.parametrize("committed", [True, False], ids=["reply lost", "never ran"])
async def test_a_new_trade_whose_one_statement_failed_unknown_is_read_back_or_written_again(
    pg_db: str, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    """A connection lost under the statement (a backend killed while it ran) leaves it
    unknown whether it committed; the new trade's id is ours, so the store asks, and writes
    it again (in a transaction) only if it is not there."""
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    real = AsyncpgRunner._alone
    failures: list[bool] = []

    async def alone_once(self: AsyncpgRunner, job: Any, began: float) -> Any:
        if not failures:
            failures.append(committed)
            if committed:
                await real(self, job, began)
            raise lost
        return await real(self, job, began)

    monkeypatch.setattr(AsyncpgRunner, "_alone", alone_once)
    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell").validated()
    async with TradeStore(pg_db) as store:
        created = await store.create_trade(request)
        assert failures == [committed]
        assert isinstance(created, TradeRecord)
        assert await store.list_trades() == [created]  # once, as written
        assert [e.cause for e in await store.events(created.id)] == ["trade accepted"]


async def test_a_connection_still_taking_in_a_servers_error_is_dropped_and_the_write_retried(
    pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend terminated while its connection sat idle: its FATAL is being read, the close
    not yet, and asyncpg refuses the next operation before sending it (seen under load in
    test_store_faults). Nothing reached the server: the write goes again on a new connection,
    and the refused one is not handed back to the pool."""
    real = asyncpg.connection.Connection.fetch
    refused: list[Any] = []

    async def fetch(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        if query.startswith("WITH t") and not refused:
            refused.append(self)
            raise asyncpg.InternalClientError(
                "cannot switch to state 11; another operation (2) is in progress"
            )
        return await real(self, query, *args, **kw)

    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell").validated()
    async with TradeStore(pg_db) as store:
        monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetch)
        created = await store.create_trade(request)
        assert isinstance(created, TradeRecord) and len(refused) == 1
        assert refused[0].is_closed()
        assert await store.list_trades() == [created]


async def test_a_new_trade_that_committed_after_the_look_is_not_refused(
    pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost statement was still running when the store looked (absent), and committed
    before the write again: that one meets our own id, and the trade is ours, not refused."""
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    real_alone, real_load = AsyncpgRunner._alone, TradeStore.load_many
    looks: list[int] = []

    async def alone(self: AsyncpgRunner, job: Any, began: float) -> Any:
        await real_alone(self, job, began)  # commits...
        raise lost  # ...its reply lost

    async def load_many(self: TradeStore, ids: Any) -> Any:
        looks.append(len(ids))
        return {} if len(looks) == 1 else await real_load(self, ids)  # the first look: too early

    monkeypatch.setattr(AsyncpgRunner, "_alone", alone)
    monkeypatch.setattr(TradeStore, "load_many", load_many)
    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell").validated()
    async with TradeStore(pg_db) as store:
        created = await store.create_trade(request)
        assert isinstance(created, TradeRecord) and looks == [1, 1]
        monkeypatch.setattr(TradeStore, "load_many", real_load)
        assert await store.list_trades() == [created]
