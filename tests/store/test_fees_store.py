"""An order's fees are stored with it (migration 0004) on SQLite and PostgreSQL: written by
the update that reports them, kept by one that reports none, read back as they were."""

from __future__ import annotations

from pairexec import PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import Change, Fee, OrderFacts, OrderStatus, OrderUpdate, TradeRecord
from pairexec.persistence import TradeStore


async def test_fees_are_stored_per_order_and_kept_when_a_later_report_has_none(db_url: str):
    async with TradeStore(db_url) as store:
        created = await store.create_trade(
            PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell", 15.0).validated()
        )
        assert isinstance(created, TradeRecord)
        record = await store.apply(
            created,
            Change(
                "a intent",
                TradeState.LEG_A_SENT,
                new_order=OrderFacts.intent(Leg.A, 1, "ca", "BTC/USDT", "buy", 1.0),
            ),
        )
        assert record.orders[0].fees == ()
        fees = (Fee("BTC", 0.0001), Fee("BNB", -1.5e-05), Fee("USDT", 0.1 + 0.2))
        record = await store.apply(
            record,
            Change(
                "a open",
                order_update=OrderUpdate(
                    "ca", OrderStatus.OPEN, 0.1, "x-1", average=60_000.5, fees=fees
                ),
            ),
        )
        assert record == await store.load(record.id)
        record = await store.apply(  # a reply without fees (an id only) keeps them
            record, Change("a closed", order_update=OrderUpdate("ca", OrderStatus.CLOSED, 0.1))
        )
        loaded = await store.load(record.id)
        assert loaded == record
        assert loaded.orders[0].fees == fees  # floats exactly as written
        assert loaded.orders[0].average == 60_000.5
        assert loaded.orders[0].net == 0.1 - 0.0001
