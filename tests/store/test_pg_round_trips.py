"""What PostgreSQL is sent for one write: BEGIN, the write's own statements, COMMIT, and
nothing else. Every round trip is CPU on the bot's event loop (a send and a receive, measured
at about a fifth of the store's CPU a trade); asyncpg's pool would add a reset query on every
release, for session state no job leaves (``db._session_unchanged``)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import Change, OrderFacts, OrderStatus, OrderUpdate, TradeRecord
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore

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


async def test_a_write_is_begin_its_statements_commit_and_nothing_more(
    pg_db: str, sent: list[str]
) -> None:
    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell").validated()
    intent = OrderFacts.intent(Leg.A, 1, "pxa1", "BTC/USDT", "buy", 1.0)
    async with TradeStore(pg_db) as store:
        created = await store.create_trade(request)
        assert isinstance(created, TradeRecord)
        sent.clear()
        sending = await store.apply(
            created, Change("leg A", TradeState.LEG_A_SENT, new_order=intent)
        )
        assert sent == ["BEGIN;", "UPDATE trades", "INSERT INTO", "INSERT INTO", "COMMIT;"]
        sent.clear()
        filled = OrderUpdate("pxa1", OrderStatus.CLOSED, filled=1.0, add_sends=1)
        await store.apply(sending, Change("leg A filled", order_update=filled))
        assert sent == ["BEGIN;", "UPDATE trades", "UPDATE orders", "INSERT INTO", "COMMIT;"]
