"""Per-venue client-order-id rules (``pairexec.fsm.venues.ccxt_ids``), checked against installed
ccxt.

The table's claims ("ccxt sends clientOrderId as orderLinkId on Bybit", "Kraken's fetch_order
would send it as userref", ...) are verified here by running the gateway on *real* ccxt
exchange classes whose HTTP layer (``Exchange.fetch``) is replaced by a recorder that answers
with canned venue replies: what ccxt would put on the wire is asserted, not assumed. A ccxt
upgrade that changes a mapping fails these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.engine import EngineError
from pairexec.fsm.model import OrderFacts, OrderStatus
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.venues import ccxt_ids
from pairexec.fsm.venues.ccxt_ids import UnsupportedExchange, check_support, rules_for
from pairexec.fsm.venues.errors import ErrorMeaning
from pairexec.fsm.venues.gateway import Answered, ExchangeGateway, Failed
from tests.support.ccxt_markets import set_btc_usdt_spot
from tests.support.fake_exchange import FakeExchange

CID = client_order_id("venues", Leg.B, 1)
CONFIG = EngineConfig(call_timeout=5.0)


def order(exchange_order_id: str | None = None) -> OrderFacts:
    return OrderFacts(
        Leg.B, 1, CID, "BTC/USDT", "buy", 0.01, OrderStatus.UNKNOWN, 0.0, 1, exchange_order_id
    )


# --- which rules for which exchange -----------------------------------------------------------

FAMILIES = {
    ccxt_ids.BINANCE: ("binance", ["binance", "binanceus", "binanceusdm", "binancecoinm"]),
    ccxt_ids.OKX: ("okx", ["okx", "myokx", "okxus"]),
    ccxt_ids.BYBIT: ("bybit", ["bybit", "bybiteu", "bybitid"]),
    ccxt_ids.KRAKEN: ("kraken", ["kraken"]),
}


@pytest.mark.parametrize("rules", list(FAMILIES), ids=lambda r: r.name)
async def test_each_listed_ccxt_id_is_that_family_and_passes_the_start_up_check(rules):
    base, ids = FAMILIES[rules]
    for exchange_id in ids:
        exchange = getattr(ccxt_async, exchange_id)()
        try:
            # a listed id must really inherit the verified create/fetch/cancel code
            assert isinstance(exchange, getattr(ccxt_async, base)), exchange_id
            assert rules_for(exchange) is rules
            check_support(exchange, rules, CID)
        finally:
            await exchange.close()


async def test_other_ccxt_exchanges_get_the_generic_scan_and_wrappers_keep_the_venue():
    kraken_futures, coinbase = ccxt_async.krakenfutures(), ccxt_async.coinbase()
    binance = ccxt_async.binance()
    try:
        assert rules_for(kraken_futures) is ccxt_ids.GENERIC  # not a kraken subclass
        assert rules_for(coinbase) is ccxt_ids.GENERIC
        check_support(coinbase, ccxt_ids.GENERIC, CID)
        assert rules_for(CallRecorder(binance)) is ccxt_ids.BINANCE  # the CLI's wrapper
    finally:
        for exchange in (kraken_futures, coinbase, binance):
            await exchange.close()


def test_the_paper_exchange_and_test_doubles_keep_the_unified_rules(tmp_path):
    paper = PaperExchange(tmp_path / "p.db")
    try:
        assert rules_for(paper) is ccxt_ids.UNIFIED
    finally:
        paper.book.close()
    assert rules_for(FakeExchange()) is ccxt_ids.UNIFIED
    assert rules_for(object()) is ccxt_ids.UNIFIED


class NoLookup:
    """A ccxt-like venue that can place orders but never list or fetch them."""

    id = "nolookup"
    has: ClassVar[dict[str, Any]] = {
        "createOrder": True,
        "fetchOpenOrders": True,
        "fetchOrder": True,
    }

    async def load_markets(self) -> dict[str, Any]:  # pragma: no cover - never reached
        raise AssertionError("the support check comes first")


def test_a_venue_without_a_way_to_find_orders_by_client_id_is_refused():
    with pytest.raises(UnsupportedExchange, match="fetchClosedOrders"):
        check_support(NoLookup(), rules_for(NoLookup()), CID)
    no_create = type("NoCreate", (), {"id": "x", "has": {"fetchOrders": True}})()
    with pytest.raises(UnsupportedExchange, match="createOrder"):
        check_support(no_create, ccxt_ids.GENERIC, CID)
    with pytest.raises(UnsupportedExchange, match="client order ids like"):
        check_support(ccxt_async.okx(), ccxt_ids.OKX, "has-dashes-" + "x" * 30)


async def test_engine_start_up_names_the_missing_capability(tmp_path):
    engine = ExecutionEngine(NoLookup(), store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    with pytest.raises(EngineError, match="cannot look orders up by client order id") as err:
        await engine.start()
    assert not str(err.value).startswith("cannot load the exchange's markets")  # said plainly


def test_our_client_ids_fit_every_verified_venue():
    for rules in (*FAMILIES, ccxt_ids.UNIFIED, ccxt_ids.GENERIC):
        assert rules.accepts(CID), rules.name


# --- real ccxt classes, HTTP replaced by a recorder ---------------------------------------------


class Wire:
    """Stands in for ccxt's HTTP transport: records requests, answers from ``reply``."""

    def __init__(self, exchange: Any, reply: Callable[[str], Any]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[str] = []
        self._reply = reply
        exchange.fetch = self.fetch

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        split = urlsplit(url)
        params = dict(parse_qsl(split.query))
        self.bodies.append(body or "")
        if body and body.startswith("{"):
            params.update(json.loads(body))
        elif body and not body.startswith("["):
            params.update(parse_qsl(body))
        self.requests.append((method, split.path, {k: str(v) for k, v in params.items()}))
        answer = self._reply(split.path)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]


def venue(name: str, market_id: str, **config: Any) -> Any:
    credentials = {"apiKey": "k" * 24, "secret": "c2VjcmV0" * 4, "enableRateLimit": False}
    exchange = getattr(ccxt_async, name)({**credentials, **config})
    set_btc_usdt_spot(exchange, market_id, limits={"amount": {"min": 0.0001}})
    return exchange


BYBIT_EMPTY = {"retCode": 0, "retMsg": "OK", "result": {"list": [], "nextPageCursor": ""}}
BYBIT_FILLED = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "nextPageCursor": "",
        "list": [
            {
                "orderId": "1789",
                "orderLinkId": CID,
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Market",
                "orderStatus": "Filled",
                "price": "0",
                "qty": "0.01",
                "cumExecQty": "0.01",
                "cumExecValue": "600",
                "avgPrice": "60000",
                "leavesQty": "0",
                "timeInForce": "IOC",
                "createdTime": "1700000000000",
                "updatedTime": "1700000000100",
            }
        ],
    },
}


@pytest.fixture
async def bybit() -> Any:
    exchange = venue("bybit", "BTCUSDT")
    exchange.options["enableUnifiedAccount"] = True  # skip the account-type probe
    exchange.options["enableUnifiedMargin"] = False
    yield exchange
    await exchange.close()


async def test_bybit_create_carries_order_link_id(bybit):
    wire = Wire(bybit, lambda path: ccxt.RequestTimeout("stop here"))
    await ExchangeGateway(bybit, CONFIG).create(order())
    [(_, path, params)] = wire.requests
    assert path == "/v5/order/create" and params["orderLinkId"] == CID


async def test_bybit_lookup_scans_open_then_closed_by_order_link_id(bybit):
    wire = Wire(bybit, lambda path: BYBIT_FILLED if path.endswith("history") else BYBIT_EMPTY)

    result = await ExchangeGateway(bybit, CONFIG).fetch(order())

    assert wire.paths() == ["/v5/order/realtime", "/v5/order/history"]
    assert all(params["orderLinkId"] == CID for _, _, params in wire.requests)
    assert "orderStatus" not in wire.requests[1][2]  # cancelled ones included, not only Filled
    assert isinstance(result, Answered), result
    assert result.report.exchange_order_id == "1789" and result.report.filled == 0.01


async def test_bybit_lookup_that_lists_nothing_is_confirmed_absent(bybit):
    Wire(bybit, lambda path: BYBIT_EMPTY)
    result = await ExchangeGateway(bybit, CONFIG).fetch(order())
    assert isinstance(result, Failed) and result.meaning is ErrorMeaning.NOT_FOUND


@pytest.mark.parametrize(
    "failure", [ccxt.RequestTimeout("t"), ccxt.OrderNotFound("n"), ccxt.RateLimitExceeded("r")]
)
async def test_bybit_lookup_with_a_failed_list_call_is_never_absence(bybit, failure):
    Wire(bybit, lambda path: failure if path.endswith("history") else BYBIT_EMPTY)
    result = await ExchangeGateway(bybit, CONFIG).fetch(order())
    assert isinstance(result, Failed) and result.meaning is ErrorMeaning.UNKNOWN


async def test_bybit_cancel_by_client_id_sends_no_order_id(bybit):
    wire = Wire(bybit, lambda path: ccxt.RequestTimeout("stop here"))
    gateway = ExchangeGateway(bybit, CONFIG)

    await gateway.cancel(order())
    await gateway.cancel(order(exchange_order_id="1789"))

    [(_, _, by_client_id), (_, _, by_id)] = wire.requests
    assert by_client_id["orderLinkId"] == CID and "orderId" not in by_client_id
    assert by_id["orderId"] == "1789" and not {"orderLinkId", "clientOrderId"} & set(by_id)


KRAKEN_CLOSED = {
    "error": [],
    "result": {
        "closed": {
            "OQCLML-BW3P3-BUCMWZ": {
                "refid": None,
                "userref": None,
                "cl_ord_id": CID,
                "status": "closed",
                "opentm": 1700000000.1,
                "closetm": 1700000000.2,
                "descr": {"pair": "XBTUSDT", "type": "buy", "ordertype": "market", "price": "0"},
                "vol": "0.01000000",
                "vol_exec": "0.01000000",
                "cost": "600.00000",
                "fee": "0.00000",
                "price": "60000.0",
            }
        }
    },
}


@pytest.fixture
async def kraken() -> Any:
    exchange = venue("kraken", "XBTUSDT")
    yield exchange
    await exchange.close()


async def test_kraken_create_carries_cl_ord_id(kraken):
    wire = Wire(kraken, lambda path: ccxt.RequestTimeout("stop here"))
    await ExchangeGateway(kraken, CONFIG).create(order())
    [(_, path, params)] = wire.requests
    assert path.endswith("/AddOrder") and params["cl_ord_id"] == CID


async def test_kraken_lookup_scans_by_cl_ord_id_never_userref(kraken):
    empty_open = {"error": [], "result": {"open": {}}}
    wire = Wire(kraken, lambda path: KRAKEN_CLOSED if "Closed" in path else empty_open)

    result = await ExchangeGateway(kraken, CONFIG).fetch(order())

    assert [p.rsplit("/", 1)[1] for p in wire.paths()] == ["OpenOrders", "ClosedOrders"]
    assert all(params["cl_ord_id"] == CID for _, _, params in wire.requests)
    assert all("userref" not in params for _, _, params in wire.requests)
    assert isinstance(result, Answered), result
    assert result.report.exchange_order_id == "OQCLML-BW3P3-BUCMWZ"
    assert result.report.status is OrderStatus.CLOSED and result.report.filled == 0.01


async def test_kraken_with_a_known_order_id_fetches_and_cancels_by_txid_alone(kraken):
    wire = Wire(kraken, lambda path: ccxt.RequestTimeout("stop here"))
    gateway = ExchangeGateway(kraken, CONFIG)

    await gateway.fetch(order(exchange_order_id="OQCLML-BW3P3-BUCMWZ"))
    await gateway.cancel(order(exchange_order_id="OQCLML-BW3P3-BUCMWZ"))

    [(_, query, queried), (_, cancel, cancelled)] = wire.requests
    assert query.endswith("/QueryOrders") and queried["txid"] == "OQCLML-BW3P3-BUCMWZ"
    assert "userref" not in queried and "cl_ord_id" not in queried
    assert cancel.endswith("/CancelOrder") and cancelled["txid"] == "OQCLML-BW3P3-BUCMWZ"


async def test_okx_passes_the_client_id_as_cl_ord_id_everywhere():
    exchange = venue("okx", "BTC-USDT", password="passphrase")
    wire = Wire(exchange, lambda path: ccxt.RequestTimeout("stop here"))
    gateway = ExchangeGateway(exchange, CONFIG)
    try:
        await gateway.create(order())
        await gateway.fetch(order())
        await gateway.cancel(order())
    finally:
        await exchange.close()

    sent = [params for _, _, params in wire.requests]
    assert [p.get("clOrdId") for p in sent[1:]] == [CID, CID]  # fetch, cancel
    [create] = json.loads(wire.bodies[0])  # ccxt okx creates through a one-order batch
    assert create["clOrdId"] == CID


# --- the generic scan, on a stub venue ---------------------------------------------------------


class ScanVenue:
    """A ccxt-like venue with only list calls, scripted per method."""

    id = "somewhere"

    def __init__(self, has: dict[str, Any], lists: dict[str, Any]) -> None:
        self.has = {"createOrder": True, **has}
        self.lists = lists
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, method: str) -> Any:
        if method not in self.lists:
            raise AttributeError(method)

        async def call(symbol: str, since: Any, limit: Any, params: dict[str, Any]) -> Any:
            self.calls.append((method, params))
            answer = self.lists[method]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


def listed(cid: str = CID, order_id: str = "9", status: str = "closed") -> dict[str, Any]:
    return {"id": order_id, "clientOrderId": cid, "status": status, "filled": 0.01}


OPEN_CLOSED = {"fetchOpenOrders": True, "fetchClosedOrders": True}


@pytest.mark.parametrize(
    ("lists", "meaning"),
    [
        ({"fetch_open_orders": [], "fetch_closed_orders": []}, ErrorMeaning.NOT_FOUND),
        (
            {"fetch_open_orders": [listed("someone-else")], "fetch_closed_orders": []},
            ErrorMeaning.NOT_FOUND,
        ),
        (
            {"fetch_open_orders": [], "fetch_closed_orders": ccxt.RequestTimeout("t")},
            ErrorMeaning.UNKNOWN,
        ),
        (
            {"fetch_open_orders": ccxt.OrderNotFound("none open"), "fetch_closed_orders": []},
            ErrorMeaning.UNKNOWN,
        ),
        ({"fetch_open_orders": [], "fetch_closed_orders": None}, ErrorMeaning.UNKNOWN),
        (
            {"fetch_open_orders": [listed(order_id="1")], "fetch_closed_orders": [listed()]},
            ErrorMeaning.UNKNOWN,  # two venue orders with our id: never pick one silently
        ),
    ],
)
async def test_generic_scan_says_absent_only_after_complete_answers(lists, meaning):
    result = await ExchangeGateway(ScanVenue(OPEN_CLOSED, lists), CONFIG).fetch(order())
    assert isinstance(result, Failed) and result.meaning is meaning, result


async def test_generic_scan_finds_the_order_open_first_and_sends_no_unknown_params():
    stub = ScanVenue(
        OPEN_CLOSED, {"fetch_open_orders": [], "fetch_closed_orders": [listed(), listed("x")]}
    )
    result = await ExchangeGateway(stub, CONFIG).fetch(order())
    assert isinstance(result, Answered) and result.report.exchange_order_id == "9"
    assert stub.calls == [("fetch_open_orders", {}), ("fetch_closed_orders", {})]


async def test_generic_scan_adds_cancelled_orders_or_uses_fetch_orders_when_it_can():
    with_cancelled = ScanVenue(
        {**OPEN_CLOSED, "fetchCanceledOrders": True},
        {
            "fetch_open_orders": [],
            "fetch_closed_orders": [],
            "fetch_canceled_orders": [listed(status="canceled")],
        },
    )
    all_in_one = ScanVenue({"fetchOrders": True}, {"fetch_orders": [listed()]})

    for stub in (with_cancelled, all_in_one):
        result = await ExchangeGateway(stub, CONFIG).fetch(order())
        assert isinstance(result, Answered), (stub.has, result)
    assert [m for m, _ in with_cancelled.calls][-1] == "fetch_canceled_orders"
    assert [m for m, _ in all_in_one.calls] == ["fetch_orders"]
