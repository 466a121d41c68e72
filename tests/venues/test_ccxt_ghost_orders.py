"""Ghost orders through real ccxt: an order whose outcome is unknown is looked up by client id
(Binance ``origClientOrderId``), never blindly resent; a resend reuses the id, and the server's
-2010 "Duplicate order sent." for a reused id is taken as "it exists", never as a reject.

The cases of ``test_ghost_orders.py``, with real HTTP faults from ``support.fake_binance``: the
request held past ccxt's timeout (before or after the order was placed), the connection dropped,
the reply cut off or empty, 5xx, 429.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance, binance_client
from tests.support.stores import sql_store

# the fake server's fixtures, used by name
fake, binance, trades_db = fake_binance.fake, fake_binance.binance, fake_binance.trades_db


@pytest.fixture
async def engine(binance: ccxt_async.binance, trades_db: str) -> AsyncIterator[ExecutionEngine]:
    async with ExecutionEngine(binance, store=TradeStore(trades_db), config=FAST) as eng:
        yield eng


def client_ids(fake: FakeBinance, kind: str, symbol: str) -> list[str | None]:
    return [r.client_order_id for r in fake.seen(kind, symbol)]


async def test_timeout_before_reaching_the_book_is_resent_once_with_same_id(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.fail("create", "ETH/USDT", "timeout_before_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    first, resend = client_ids(fake, "create", "ETH/USDT")  # the lost one and one resend
    assert first == resend
    assert client_ids(fake, "fetch", "ETH/USDT")[0] == first  # looked up before resending
    assert len(fake.orders_with_client_id(first or "")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0
    record = await engine.store.load(outcome.trade_id)
    assert [o.sends for o in record.orders] == [1, 2]


async def test_leg_a_timeout_but_filled_60_percent_is_found_and_hedged(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.behave("BTC/USDT", fill=0.6)
    fake.fail("create", "BTC/USDT", "timeout_after_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create", "BTC/USDT")) == 1  # no resend
    assert [r.params["quantity"] for r in fake.seen("create", "ETH/USDT")] == ["0.6"]
    assert outcome.state is TradeState.DONE
    assert (outcome.filled_x, outcome.filled_y) == (0.6, 0.6)
    path = [e.to_state for e in await sql_store(engine).events(outcome.trade_id)]
    assert TradeState.UNKNOWN in path and TradeState.RECONCILED in path


async def test_lookups_that_time_out_twice_then_answer(engine: ExecutionEngine, fake: FakeBinance):
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", "timeout_before_accept", "timeout_before_accept")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("fetch", "ETH/USDT")) == 3
    assert len(fake.seen("create", "ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


async def test_lookups_that_fail_twice_on_an_absent_order_resend_once(
    engine: ExecutionEngine, fake: FakeBinance
):
    fake.fail("create", "ETH/USDT", "drop")  # never reached the book
    fake.fail("fetch", "ETH/USDT", "http_500", "maintenance")

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create", "ETH/USDT")) == 2
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE


async def test_inconclusive_lookups_leave_trade_unknown_then_recover_finishes(
    fake: FakeBinance, trades_db: str
):
    config = replace(FAST, lookup_attempts=3)
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", "http_500", "rate_limit", "timeout_before_accept")

    exchange = binance_client(fake.url)
    try:
        async with ExecutionEngine(exchange, store=trades_db, config=config) as engine:
            outcome = await engine.execute_pair_trade(btc_eth())
            assert outcome.state is TradeState.UNKNOWN and not outcome.ok
            assert "run recover" in outcome.reason
            assert len(fake.seen("create", "ETH/USDT")) == 1  # no resend while unknown
            blocked = await engine.execute_pair_trade(btc_eth())
            assert blocked.duplicate and blocked.trade_id == outcome.trade_id
    finally:
        await exchange.close()

    exchange = binance_client(fake.url)  # a new process would have a new client
    try:
        async with ExecutionEngine(exchange, store=trades_db, config=config) as engine:
            [recovered] = await engine.recover()
    finally:
        await exchange.close()

    assert recovered.trade_id == outcome.trade_id
    assert recovered.state is TradeState.DONE and recovered.filled_y == 1.0
    assert len(fake.seen("create", "ETH/USDT")) == 1
    assert len(fake.orders("ETH/USDT")) == 1


@pytest.mark.parametrize(
    "lookup_faults",
    [
        ("rate_limit",),
        ("http_418",),
        ("auth_error",),
        ("maintenance",),
        ("http_500",),
        ("no_id_after_accept",),
        # aiohttp itself retries an idempotent GET once when a kept-alive connection drops, so
        # the engine sees a dropped lookup only when the retry drops too
        ("drop", "drop"),
    ],
)
async def test_a_failed_lookup_is_never_taken_for_absence(
    engine: ExecutionEngine, fake: FakeBinance, lookup_faults: tuple[str, ...]
):
    """Only -2013 (OrderNotFound) confirms absence; throttled, refused, garbled, lost: no."""
    fake.fail("create", "ETH/USDT", "drop_after_accept")
    fake.fail("fetch", "ETH/USDT", *lookup_faults)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create", "ETH/USDT")) == 1
    assert len(fake.seen("fetch", "ETH/USDT")) == len(lookup_faults) + 1
    path = [e.to_state for e in await sql_store(engine).events(outcome.trade_id)]
    assert path.count(TradeState.RECONCILED) == 1  # one lookup failed, the next one found it
    assert outcome.state is TradeState.DONE


@pytest.mark.parametrize(
    "fault",
    [
        "drop_after_accept",
        "truncated_after_accept",  # ccxt: a bare ExchangeError *from* aiohttp's payload error
        "no_id_after_accept",
        "http_503_after_accept",
    ],
)
async def test_a_lost_reply_to_an_accepted_order_is_looked_up_not_resent(
    engine: ExecutionEngine, fake: FakeBinance, fault: str
):
    fake.fail("create", "ETH/USDT", fault)

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("fetch", "ETH/USDT")) >= 1
    assert len(fake.seen("create", "ETH/USDT")) == 1
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0


@pytest.mark.parametrize("fault", ["drop", "http_500"])
async def test_a_lost_request_is_looked_up_then_resent_with_its_id(
    engine: ExecutionEngine, fake: FakeBinance, fault: str
):
    fake.fail("create", "ETH/USDT", fault)

    outcome = await engine.execute_pair_trade(btc_eth())

    first, resend = client_ids(fake, "create", "ETH/USDT")
    assert first == resend and len(fake.seen("fetch", "ETH/USDT")) == 1
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE


async def test_reused_client_id_is_never_a_second_order(engine: ExecutionEngine, fake: FakeBinance):
    """A resend after a lookup wrongly said "absent" hits -2010 "Duplicate order sent.", which
    means the order exists: looked up again and found, never taken for a reject."""
    fake.fail("create", "ETH/USDT", "timeout_after_accept")
    fake.fail("fetch", "ETH/USDT", "not_found")  # a lying/lagging lookup

    outcome = await engine.execute_pair_trade(btc_eth())

    assert len(fake.seen("create", "ETH/USDT")) == 2  # the resend was refused by the venue
    assert len(fake.orders("ETH/USDT")) == 1
    assert outcome.state is TradeState.DONE and outcome.filled_y == 1.0
    refused = [
        e for e in await sql_store(engine).events(outcome.trade_id) if "Duplicate order" in e.cause
    ]
    assert [e.to_state for e in refused] == [TradeState.UNKNOWN]  # "exists", not "rejected"
