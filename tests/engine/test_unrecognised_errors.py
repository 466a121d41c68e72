"""Never assume: an answer we do not recognise is not a rejection, and ccxt never resends.

Each venue error here is produced by that venue's real ccxt class (``handle_errors``, fed the
venue's JSON body the way ``Exchange.fetch`` does), not built by hand, so what is classified is
exactly the exception class and text ccxt would raise. Bodies follow the samples in ccxt's own
code tables and ``handle_errors`` comments (ccxt 4.5.90).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.engine import EngineError
from pairexec.fsm.model import OrderStatus
from pairexec.fsm.venues import ccxt_ids
from pairexec.fsm.venues.ccxt_ids import UnsupportedExchange, check_support
from pairexec.fsm.venues.errors import (
    DEFINITE_ANSWERS,
    OUTCOME_UNKNOWN_CODES,
    VENUE_FAMILIES,
    ErrorMeaning,
    classify,
)
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance, binance_client
from tests.support.fake_exchange import Call, FakeExchange

# the fake server's fixtures, used by name
fake, binance = fake_binance.fake, fake_binance.binance

REJECTED, UNKNOWN = ErrorMeaning.REJECTED, ErrorMeaning.UNKNOWN
CID = "0123456789abcdef0123456789abcdef"

URLS = {
    "binance": "https://api.binance.com/api/v3/order",
    "binanceusdm": "https://fapi.binance.com/fapi/v1/order",
    "binance-options": "https://eapi.binance.com/eapi/v1/order",
    "okx": "https://www.okx.com/api/v5/trade/batch-orders",
    "bybit": "https://api.bybit.com/v5/order/create",
    "kucoin": "https://api.kucoin.com/api/v1/hf/orders",
}


async def venue_error(
    exchange_id: str, body: dict[str, Any], *, status: int = 200, url: str | None = None
) -> ccxt.BaseError:
    """What ccxt's ``exchange_id`` raises for ``body``: ``handle_errors`` is called with the
    arguments ``Exchange.fetch`` passes it (status, reason, url, method, response headers, raw
    body, parsed body, request headers, request body)."""
    exchange = getattr(ccxt_async, exchange_id)()
    text = json.dumps(body, separators=(",", ":"))
    try:
        exchange.handle_errors(
            status, "", url or URLS[exchange_id], "POST", {}, text, json.loads(text), {}, ""
        )
    except ccxt.BaseError as error:
        return error
    finally:
        await exchange.close()
    raise AssertionError(f"{exchange_id} raised nothing for {text}")


def bybit_body(code: int, message: str) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": {}, "time": 1700000000000}


def okx_body(code: str, message: str) -> dict[str, Any]:
    """OKX's order endpoints: a top-level "1" and each order's own code in ``data[]``."""
    order = {"clOrdId": CID, "ordId": "", "sCode": code, "sMsg": message, "tag": ""}
    return {"code": "1", "data": [order], "msg": "All operations failed"}


# --- 1. an error we do not recognise is not a rejection ---------------------------------------


@pytest.mark.parametrize(
    ("exchange_id", "body", "status", "url"),
    [
        # mapped to a bare ExchangeError in bybit's own table
        ("bybit", bybit_body(10016, "System error"), 200, None),
        ("bybit", bybit_body(5004, "Server Timeout"), 200, None),
        # not in bybit's table at all: handle_errors' "unknown message"
        ("bybit", bybit_body(10000, "Server Timeout"), 200, None),
        # Binance's options API overrides the common -1007 RequestTimeout with ExchangeError
        (
            "binance",
            {
                "code": -1007,
                "msg": "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
            },
            503,
            URLS["binance-options"],
        ),
        # an OKX per-order code ccxt does not know
        ("okx", okx_body("59999", "Order placement failed"), 200, None),
    ],
    ids=["bybit-10016", "bybit-5004", "bybit-10000", "binance-options-1007", "okx-unmapped"],
)
async def test_a_bare_exchange_error_from_the_venue_is_unknown(
    exchange_id: str, body: dict[str, Any], status: int, url: str | None
) -> None:
    error = await venue_error(exchange_id, body, status=status, url=url)

    assert type(error) is ccxt.ExchangeError, error
    assert classify(error) is UNKNOWN


def test_a_ccxt_class_nobody_decided_about_is_unknown_even_under_a_definite_one() -> None:
    class Later(ccxt.InvalidOrder):
        """Stands for a class a ccxt upgrade adds under InvalidOrder."""

    assert classify(ccxt.InvalidOrder("x")) is REJECTED
    assert classify(Later("x")) is UNKNOWN


async def test_an_order_placed_behind_a_system_error_is_found_not_left_behind(
    tmp_path: Path,
) -> None:
    exchange = FakeExchange()
    system_error = await venue_error("bybit", bybit_body(10016, "System error"))

    def answer_leg_b_with_the_error(call: Call) -> None:  # the venue placed it, then said so
        if call.symbol == "ETH/USDT":
            exchange.after_accept = None
            raise system_error

    exchange.after_accept = answer_leg_b_with_the_error
    store = TradeStore(f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}")

    async with ExecutionEngine(exchange, store=store, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
        record = await engine.store.load(outcome.trade_id)

    # read as a reject, leg A would be unwound and the placed ETH sell left naked
    assert outcome.state is TradeState.DONE, outcome.reason
    assert len(exchange.create_calls("ETH/USDT")) == 1 and len(exchange.accepted("ETH/USDT")) == 1
    assert exchange.count("fetch_order") >= 1
    assert [o.status for o in record.orders] == [OrderStatus.CLOSED, OrderStatus.CLOSED]


# --- 2. "this client id is taken" (and "creation timed out") mean the order may exist ----------

# (ccxt id, body, HTTP status, URL or None, the class ccxt raises: a definite one)
VENUE_ANSWERS: dict[str, tuple[str, dict[str, Any], int, str | None, type[ccxt.BaseError]]] = {
    "binance -2010 duplicate": (
        "binance",
        {"code": -2010, "msg": "Duplicate order sent."},
        400,
        None,
        ccxt.InvalidOrder,
    ),
    "binanceusdm -4116": (
        "binanceusdm",
        {"code": -4116, "msg": "ClientOrderId is duplicated."},
        400,
        None,
        ccxt.InvalidOrder,
    ),
    "okx 51016": ("okx", okx_body("51016", "Duplicated clOrdId"), 200, None, ccxt.InvalidOrder),
    "bybit 110072": (
        "bybit",
        bybit_body(110072, "OrderLinkedID is duplicate"),
        200,
        None,
        ccxt.InvalidOrder,
    ),
    "bybit 12141": (
        "bybit",
        bybit_body(12141, "Duplicate clientOrderId."),
        200,
        None,
        ccxt.BadRequest,
    ),
    "bybit 170141": (
        "bybit",
        bybit_body(170141, "Duplicate clientOrderId"),
        200,
        None,
        ccxt.InvalidOrder,
    ),
    "bybit 170146": (
        "bybit",
        bybit_body(170146, "Order creation timeout"),
        200,
        None,
        ccxt.InvalidOrder,
    ),
    "bybit 170035": (
        "bybit",
        bybit_body(170035, "Submitted to the system for processing!"),
        200,
        None,
        ccxt.BadRequest,
    ),
    "kucoin 126044": (
        "kucoin",
        {"code": "126044", "msg": "clientOid duplicate"},
        200,
        None,
        ccxt.InvalidOrder,
    ),
    "kucoin 400100 duplicate": (
        "kucoin",
        {"code": "400100", "msg": "validation.createOrder.clientOidDuplicated"},
        400,
        URLS["kucoin"].replace("/hf", ""),
        ccxt.BadRequest,
    ),
    "kucoin 408000": (
        "kucoin",
        {"code": "408000", "msg": "Network timeout, please try again later"},
        200,
        None,
        ccxt.BadRequest,
    ),
}


@pytest.mark.parametrize("case", list(VENUE_ANSWERS))
async def test_the_venue_saying_the_order_may_exist_is_unknown(case: str) -> None:
    exchange_id, body, status, url, ccxt_class = VENUE_ANSWERS[case]

    error = await venue_error(exchange_id, body, status=status, url=url)

    assert type(error) is ccxt_class, error  # ccxt alone would make it a reject
    assert classify(error) is UNKNOWN


ANY_WORDING = "操作失败"  # "operation failed": no word a text match could catch


@pytest.mark.parametrize(
    ("exchange_id", "body"),
    [
        ("binanceusdm", {"code": -4116, "msg": ANY_WORDING}),
        ("okx", okx_body("51016", ANY_WORDING)),
        ("bybit", bybit_body(110072, ANY_WORDING)),
        ("bybit", bybit_body(12141, ANY_WORDING)),
        ("bybit", bybit_body(170146, ANY_WORDING)),
        ("kucoin", {"code": "126044", "msg": ANY_WORDING}),
    ],
    ids=["binanceusdm-4116", "okx-51016", "bybit-110072", "bybit-12141", "bybit-170146", "kucoin"],
)
async def test_the_venue_code_counts_whatever_the_wording(
    exchange_id: str, body: dict[str, Any]
) -> None:
    """Binance's error-code page: "Codes are universal, but messages can vary"."""
    error = await venue_error(exchange_id, body, status=400)

    assert isinstance(error, (ccxt.InvalidOrder, ccxt.BadRequest)), error
    assert classify(error) is UNKNOWN


@pytest.mark.parametrize(
    ("exchange_id", "body", "url"),
    [
        # -2010 is NEW_ORDER_REJECTED for every reason: only its duplicate message means "exists"
        ("binance", {"code": -2010, "msg": "Filter failure: MAX_NUM_ORDERS"}, None),
        (
            "binance",
            {"code": -2010, "msg": "Account has insufficient balance for requested action."},
            None,
        ),
        # 400100 is KuCoin's generic bad-parameter code
        ("kucoin", {"code": "400100", "msg": "account.available.amount"}, None),
        ("okx", okx_body("51008", "Order failed. Insufficient USDT balance in account."), None),
        ("bybit", bybit_body(110007, "Available balance is insufficient"), None),
        ("bybit", bybit_body(10001, "params error: side invalid"), None),
    ],
    ids=[
        "binance-2010-filter",
        "binance-2010-funds",
        "kucoin-400100",
        "okx-51008",
        "bybit-110007",
        "bybit-10001",
    ],
)
async def test_a_definite_reject_stays_a_reject(
    exchange_id: str, body: dict[str, Any], url: str | None
) -> None:
    error = await venue_error(exchange_id, body, status=400, url=url)

    assert type(error) in DEFINITE_ANSWERS, error
    assert classify(error) is REJECTED


def test_each_family_id_inherits_its_venue_error_handling() -> None:
    for exchange_id, family in VENUE_FAMILIES.items():
        exchange = getattr(ccxt_async, exchange_id)()
        assert isinstance(exchange, getattr(ccxt_async, family)), exchange_id
        assert type(exchange).handle_errors is getattr(ccxt_async, family).handle_errors


def test_each_listed_code_is_one_ccxt_would_read_as_a_definite_reject() -> None:
    """If ccxt maps one of them to DuplicateOrderId or a timeout one day, the entry is moot."""
    for family, codes in OUTCOME_UNKNOWN_CODES.items():
        exchange = getattr(ccxt_async, family)()
        tables = [exchange.exceptions.get("exact", {})] + [
            table.get("exact", {})
            for table in exchange.exceptions.values()
            if isinstance(table, dict) and "exact" in table
        ]
        for code in codes:
            mapped = {table[code] for table in tables if code in table}
            assert mapped & DEFINITE_ANSWERS, f"{family} {code}: ccxt maps it to {mapped or None}"


# --- 3. ccxt must not resend on its own -----------------------------------------------------


async def test_ccxt_resends_a_timed_out_create_when_max_retries_on_failure_is_set(
    binance: ccxt_async.binance, fake: FakeBinance
) -> None:
    """Why the setting is refused: fetch2 sends the same create again after a timeout."""
    binance.options["maxRetriesOnFailure"] = 1
    await binance.load_markets()
    fake.fail("create", "BTC/USDT", "timeout_after_accept")

    with pytest.raises(ccxt.BaseError):
        await binance.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": CID})

    assert [s.client_order_id for s in fake.seen("create")] == [CID, CID]


@pytest.mark.parametrize(
    "configure",
    [
        lambda ex: ex.options.__setitem__("maxRetriesOnFailure", 1),
        lambda ex: ex.options.__setitem__("defaultMaxRetriesOnFailure", 2),
        lambda ex: ex.options.__setitem__("order", {"maxRetriesOnFailure": 1}),  # one endpoint
        lambda ex: setattr(ex, "maxRetriesOnFailure", 1),  # ccxt({"maxRetriesOnFailure": 1})
    ],
    ids=["options", "options-default", "options-per-endpoint", "attribute"],
)
async def test_start_refuses_an_exchange_ccxt_would_resend_on_and_sends_nothing(
    fake: FakeBinance, tmp_path: Path, configure: Any
) -> None:
    exchange = binance_client(fake.url)
    configure(exchange)
    try:
        engine = ExecutionEngine(exchange, store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
        with pytest.raises(EngineError, match="maxRetriesOnFailure") as refused:
            await engine.start()
    finally:
        await exchange.close()

    assert "set it to 0" in str(refused.value)
    assert fake.requests == []  # not even the markets were loaded


async def test_start_accepts_max_retries_on_failure_zero(fake: FakeBinance, tmp_path: Path) -> None:
    exchange = binance_client(fake.url)
    exchange.options["maxRetriesOnFailure"] = 0
    try:
        engine = ExecutionEngine(exchange, store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
        await engine.start()
        await engine.close()
    finally:
        await exchange.close()

    assert fake.seen("exchange_info")  # it went on to load the markets


def test_check_support_names_the_setting_and_the_fix() -> None:
    exchange = ccxt_async.binance({"options": {"maxRetriesOnFailure": 3}})

    with pytest.raises(UnsupportedExchange) as refused:
        check_support(exchange, ccxt_ids.BINANCE, CID)

    text = str(refused.value)
    assert text.startswith("binance: options['maxRetriesOnFailure']=3: ccxt resends")
    assert "exchange.options['maxRetriesOnFailure'] = 0" in text
    check_support(ccxt_async.binance(), ccxt_ids.BINANCE, CID)  # ccxt's default: no resends
