"""A local fake of Binance's spot REST API, for driving the real ccxt library over real HTTP.

An aiohttp server on 127.0.0.1 (a free port) that speaks the subset of Binance spot ccxt uses
to trade: ``GET /api/v3/ping|time|exchangeInfo|ticker/24hr``, signed ``GET /api/v3/account``,
``POST|GET|DELETE /api/v3/order``, ``GET /api/v3/openOrders`` and ``GET /api/v3/allOrders``.
Signed requests are checked like Binance does (``X-MBX-APIKEY`` header, HMAC-SHA256
``signature`` over the query or body, ``timestamp`` within ``recvWindow``). Orders are matched
by the paper exchange's book (``pairexec.fsm.paper.PaperBook``), so a client order id can be
used once: a reused ``newClientOrderId`` is answered -2010 "Duplicate order sent.".

Faults are scripted per request kind and symbol, consumed in order, like
``tests/support/fake_exchange.py``: ``fake.fail("create", "ETH/USDT", "timeout_after_accept")``.
See ``FAULTS`` for what each does: the ones every simulated venue has are named by
``pairexec.fsm.paper.Fault``, the rest are Binance's HTTP answers. ``binance_client(fake)``
returns a real ``ccxt.async_support.binance`` pointed at the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from aiohttp import web

from pairexec.fsm.paper import (
    DEFAULT_MARKETS,
    LIES,
    Fault,
    Fills,
    MarketSpec,
    PaperBook,
    PaperOrder,
)
from tests.support.fake_exchange import Script

API_KEY = "pk-test-4f1d9c7e2b8a6d3f0e5c9b7a1d2e3f4a"
SECRET = "sk-test-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"

KINDS = (
    "create",
    "fetch",
    "cancel",
    "open_orders",
    "all_orders",
    "account",
    "exchange_info",
    "ticker",
)

FAULTS: dict[str, str] = {
    Fault.OK: "pass this request through unharmed (to fault a later one)",
    Fault.TIMEOUT_BEFORE_ACCEPT: "hold the request past the client's timeout, never process it",
    Fault.TIMEOUT_AFTER_ACCEPT: "process it, then answer only after the client's timeout",
    Fault.DROP: "close the connection without processing or answering",
    Fault.DROP_AFTER_ACCEPT: "process it, then close the connection without an answer",
    Fault.NOT_FOUND: "answer 400 -2013 'Order does not exist.' (-2011 for a cancel)",
    Fault.AUTH_ERROR: "answer 401 -2015 'Invalid API-key, IP, or permissions for action.'",
    Fault.OVERFILL_AFTER_ACCEPT: "process it, then report 1.5 x its amount as executed",
    Fault.OTHER_ORDER_AFTER_ACCEPT: "process it, then answer with the book's newest other order",
    Fault.NO_FILL_AFTER_ACCEPT: "process it, then answer FILLED without executedQty or fills",
    Fault.NO_ID_AFTER_ACCEPT: "process it, then answer 200 {} (no order id)",
    Fault.RATE_LIMIT: "answer 429 -1003 'Too many requests', not processed",
    Fault.REJECT_FUNDS: "answer 400 -2010 insufficient balance, not processed",
    Fault.REJECT_INVALID: "answer 400 -1013 'Filter failure: LOT_SIZE', not processed",
    # Binance's own answers, as the HTTP client sees them
    "truncated_after_accept": "process it, then cut the (200) reply off mid-body",
    "http_500": "answer 500 with an HTML body, not processed",
    "http_503_after_accept": "process it, then answer 503 -1007 'execution status unknown'",
    "http_418": "answer 418 -1003 'IP banned', not processed",
    "maintenance": "answer 503 'System is under maintenance.', not processed",
}


@dataclass
class Seen:
    """One request the server received (signed or not), for assertions."""

    kind: str
    symbol: str | None
    """Unified symbol ("BTC/USDT") if the request named one."""
    params: dict[str, str]
    fault: str | None = None

    @property
    def client_order_id(self) -> str | None:
        return self.params.get("newClientOrderId") or self.params.get("origClientOrderId")


class _BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


_ERRORS = {
    Fault.RATE_LIMIT: (429, -1003, "Too many requests; current limit of IP(127.0.0.1) is 6000 "
                       "requests per minute. Please use the websocket for live updates to avoid "
                       "polling the API."),
    "http_418": (418, -1003, "Way too many requests; IP(127.0.0.1) banned until 1900000000000. "
                 "Please use the websocket for live updates to avoid bans."),
    "maintenance": (503, -1, "System is under maintenance."),
    Fault.REJECT_FUNDS: (400, -2010, "Account has insufficient balance for requested action."),
    Fault.REJECT_INVALID: (400, -1013, "Filter failure: LOT_SIZE"),
    Fault.AUTH_ERROR: (401, -2015, "Invalid API-key, IP, or permissions for action."),
}  # fmt: skip


@dataclass
class FakeBinance:
    markets: dict[str, MarketSpec] = field(default_factory=lambda: dict(DEFAULT_MARKETS))
    balances: dict[str, float] | None = None
    path: Path | None = None
    """The book's SQLite file (None: in memory). A file lets ``PaperExchange(path)`` read the
    same book, e.g. for ``pairexec.fsm.sim.invariants.check_invariants``."""
    api_key: str = API_KEY
    secret: str = SECRET
    hang: float = 1.2
    """How long a "timeout_*" fault holds a request: longer than the client's timeout."""
    book: PaperBook = field(init=False)
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    on_request: Callable[[Seen], Awaitable[None]] | None = None
    """Test hook awaited when a request arrives, before anything else happens."""
    script: Script = field(default_factory=lambda: Script(frozenset(FAULTS)))
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    _trade_ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.book = PaperBook(self.path, markets=self.markets, balances=self.balances)
        self._by_id = {spec.symbol.replace("/", ""): spec.symbol for spec in self.markets.values()}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> FakeBinance:
        app = web.Application()
        for method, path, handler in (
            ("GET", "/api/v3/ping", self._ping),
            ("GET", "/api/v3/time", self._time),
            ("GET", "/api/v3/exchangeInfo", self._exchange_info),
            ("GET", "/api/v3/ticker/24hr", self._ticker),
            ("GET", "/api/v3/account", self._account),
            ("POST", "/api/v3/order", self._create),
            ("GET", "/api/v3/order", self._fetch),
            ("DELETE", "/api/v3/order", self._cancel),
            ("GET", "/api/v3/openOrders", self._open_orders),
            ("GET", "/api/v3/allOrders", self._all_orders),
        ):
            app.router.add_route(method, path, self._tracked(handler))
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        await self.listen()
        return self

    async def listen(self) -> None:
        """(Re)open the listening socket, on the same port after ``stop_listening``."""
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        """Close the listening socket and every open connection: from now on connections are
        refused (nothing listens) until ``listen()``."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        assert self._runner is not None and self._runner.server is not None
        for connection in self._runner.server.connections:
            connection.force_close()  # kept-alive client connections too, or they are reused
        await asyncio.sleep(0)  # let the clients see their connections close

    async def close(self) -> None:
        for task in list(self._handlers):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.book.close()

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scripting -----------------------------------------------------------------------

    def fail(self, kind: str, symbol: str | None, *faults: str) -> None:
        """Queue faults for the next ``kind`` requests on ``symbol`` (None: any symbol)."""
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}: {KINDS}")
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}: {sorted(FAULTS)}")
        self.script.queue(kind, symbol, faults)

    def behave(self, symbol: str, side: str | None = None, **fills: Any) -> None:
        """How orders on ``symbol`` (only ``side`` ones, if given) fill: ``Fills``' keys."""
        self.script.fills[(symbol, side)] = Fills(**fills)

    # --- views for assertions ------------------------------------------------------------

    def seen(self, kind: str, symbol: str | None = None) -> list[Seen]:
        return [r for r in self.requests if r.kind == kind and symbol in (None, r.symbol)]

    def orders(self, symbol: str | None = None) -> list[PaperOrder]:
        return self.book.orders(symbol)

    def orders_with_client_id(self, client_order_id: str) -> list[PaperOrder]:
        return self.book.orders_with_client_id(client_order_id)

    # --- plumbing ------------------------------------------------------------------------

    def _tracked(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                return await handler(request)
            except _BinanceError as error:
                return _error(error.status, error.code, error.msg)
            finally:
                self._handlers.discard(task)

        return run

    async def _signed(self, request: web.Request) -> dict[str, str]:
        """The request's parameters, after Binance's API-key, signature and time checks."""
        payload = request.rel_url.raw_query_string
        if request.method == "POST":
            body = await request.text()
            payload = f"{payload}&{body}" if payload and body else payload or body
        signed, _, signature = payload.rpartition("&signature=")
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise _BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        expected = hmac.new(self.secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(signature, expected):
            raise _BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(signed, keep_blank_values=True))
        window = int(params.get("recvWindow", "5000"))
        if abs(time.time() * 1000 - int(params.get("timestamp", "0"))) > window:
            raise _BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return params

    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        market_id = params.get("symbol")
        if market_id is None and not required:
            return None
        if market_id not in self._by_id:
            raise _BinanceError(400, -1121, "Invalid symbol.")
        return self._by_id[market_id]

    async def _arrive(self, kind: str, params: dict[str, str], symbol: str | None) -> Seen:
        seen = Seen(kind, symbol, params, self.script.next_fault(kind, symbol))
        self.requests.append(seen)
        if self.on_request is not None:
            await self.on_request(seen)
        return seen

    async def _before(self, request: web.Request, seen: Seen) -> web.StreamResponse | None:
        """Faults that strike before the request is processed (None: process it)."""
        fault = seen.fault
        if fault in (None, Fault.OK) or fault.endswith("_after_accept"):
            return None
        if fault == Fault.TIMEOUT_BEFORE_ACCEPT:
            await asyncio.sleep(self.hang)
            raise _BinanceError(503, -1007, "Timeout waiting for response from backend server.")
        if fault == Fault.DROP:
            return _drop(request)
        if fault == "http_500":
            return web.Response(
                status=500, text="<html><body>500 Internal Server Error</body></html>"
            )
        if fault == Fault.NOT_FOUND:
            if seen.kind == "cancel":
                raise _BinanceError(400, -2011, "Unknown order sent.")
            raise _BinanceError(400, -2013, "Order does not exist.")
        status, code, msg = _ERRORS[fault]
        response = _error(status, code, msg)
        if status in (418, 429):
            response.headers["Retry-After"] = "1"
        return response

    async def _after(self, request: web.Request, seen: Seen, body: Any) -> web.StreamResponse:
        """The reply to a processed request, or a fault that strikes after processing."""
        fault = seen.fault
        if fault == Fault.TIMEOUT_AFTER_ACCEPT:
            await asyncio.sleep(self.hang)
        elif fault == Fault.DROP_AFTER_ACCEPT:
            return _drop(request)
        elif fault == "truncated_after_accept":
            text = json.dumps(body).encode()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(text)
            await response.prepare(request)
            await response.write(text[: len(text) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        elif fault == Fault.NO_ID_AFTER_ACCEPT:
            return web.json_response({})
        elif fault in LIES:
            body = self._lie(fault, body)
        elif fault == "http_503_after_accept":
            return _error(
                503,
                -1007,
                "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
            )
        return web.json_response(body)

    def _lie(self, fault: str, body: Any) -> Any:
        """An order reply that is not the order's truth (the ``LIES`` faults)."""
        if fault == Fault.OVERFILL_AFTER_ACCEPT:
            executed = _num(float(body["origQty"]) * 1.5)
            fills = [{**f, "qty": executed} for f in body.get("fills", [])[:1]]
            return {**body, "executedQty": executed, **({"fills": fills} if fills else {})}
        if fault == Fault.NO_FILL_AFTER_ACCEPT:
            lie = {k: v for k, v in body.items() if k not in ("executedQty", "fills")}
            return {**lie, "status": "FILLED"}
        others = [o for o in self.book.orders() if o.client_order_id != body["clientOrderId"]]
        return self._order_json(others[-1], full="fills" in body) if others else body

    # --- endpoints -----------------------------------------------------------------------

    async def _ping(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, request: web.Request) -> web.StreamResponse:
        seen = await self._arrive("exchange_info", {}, None)
        early = await self._before(request, seen)
        if early is not None:
            return early
        info = {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_symbol_info(spec) for spec in self.book.markets().values()],
        }
        return await self._after(request, seen, info)

    async def _ticker(self, request: web.Request) -> web.StreamResponse:
        market_id = request.query.get("symbol", "")
        symbol = self._by_id.get(market_id)
        seen = await self._arrive("ticker", dict(request.query), symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        if symbol is None:
            raise _BinanceError(400, -1121, "Invalid symbol.")
        price = _num(self.book.market(symbol).price)
        now = int(time.time() * 1000)
        ticker = {
            "symbol": market_id,
            "lastPrice": price,
            "bidPrice": price,
            "askPrice": price,
            "openPrice": price,
            "highPrice": price,
            "lowPrice": price,
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86_400_000,
            "closeTime": now,
        }
        return await self._after(request, seen, ticker)

    async def _account(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        seen = await self._arrive("account", params, None)
        early = await self._before(request, seen)
        if early is not None:
            return early
        balances = [
            {"asset": asset, "free": _num(b.free), "locked": _num(b.used)}
            for asset, b in self.book.balances().items()
        ]
        body = {
            "makerCommission": 0,
            "takerCommission": 0,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "updateTime": int(time.time() * 1000),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
        }
        return await self._after(request, seen, body)

    async def _create(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        symbol = self._symbol(params)
        assert symbol is not None
        seen = await self._arrive("create", params, symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        side = params.get("side", "").lower()
        order_type = params.get("type", "").lower()
        fills = self.script.fills_for(symbol, side)
        try:
            order = self.book.place(
                symbol,
                order_type,
                side,
                float(params.get("quantity", "nan")),
                float(params["price"]) if "price" in params else None,
                params.get("newClientOrderId"),
                fill=fills.fill,
                leave_open=fills.leave_open,
            )
        except ccxt.BaseError as exc:
            raise _as_binance_error(exc) from exc
        return await self._after(request, seen, self._order_json(order, full=True))

    async def _fetch(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        symbol = self._symbol(params)
        seen = await self._arrive("fetch", params, symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        target = self.book.find(params.get("orderId"), params.get("origClientOrderId"))
        fill_more = 0.0
        if target is not None:
            fill_more = self.script.fills_for(target.symbol, target.side).fills_while_open
        try:
            order = self.book.fetch(
                params.get("orderId"),
                params.get("origClientOrderId"),
                symbol=symbol,
                fill_more=fill_more,
            )
        except ccxt.OrderNotFound:
            raise _BinanceError(400, -2013, "Order does not exist.") from None
        return await self._after(request, seen, self._order_json(order))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        symbol = self._symbol(params)
        seen = await self._arrive("cancel", params, symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        try:
            order = self.book.cancel(
                params.get("orderId"), params.get("origClientOrderId"), symbol=symbol
            )
        except ccxt.OrderNotFound:
            raise _BinanceError(400, -2011, "Unknown order sent.") from None
        return await self._after(request, seen, self._order_json(order))

    async def _open_orders(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        symbol = self._symbol(params, required=False)
        seen = await self._arrive("open_orders", params, symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        orders = self.book.orders(symbol, "open")
        return await self._after(request, seen, [self._order_json(o) for o in orders])

    async def _all_orders(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        symbol = self._symbol(params)
        seen = await self._arrive("all_orders", params, symbol)
        early = await self._before(request, seen)
        if early is not None:
            return early
        orders = self.book.orders(symbol)[-int(params.get("limit", "500")) :]
        return await self._after(request, seen, [self._order_json(o) for o in orders])

    def _order_json(self, order: PaperOrder, *, full: bool = False) -> dict[str, Any]:
        """An order as Binance spot reports it (``newOrderRespType=FULL`` adds the fills)."""
        if order.status == "open":
            status = "PARTIALLY_FILLED" if order.filled > 0 else "NEW"
        elif order.status == "closed":
            # a market order that filled only in part ends EXPIRED on Binance, with its fill
            status = "FILLED" if order.filled >= order.amount * (1 - 1e-9) else "EXPIRED"
        else:
            status = "EXPIRED" if order.type == "market" else "CANCELED"
        body: dict[str, Any] = {
            "symbol": order.symbol.replace("/", ""),
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id or "",
            "price": _num(order.price or 0.0),
            "origQty": _num(order.amount),
            "executedQty": _num(order.filled),
            "cummulativeQuoteQty": _num(order.cost),
            "origQuoteOrderQty": _num(0.0),
            "status": status,
            "timeInForce": "GTC",
            "type": order.type.upper(),
            "side": order.side.upper(),
            "workingTime": order.timestamp,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if full:
            body["transactTime"] = order.timestamp
            body["fills"] = (
                [
                    {
                        "price": _num(order.fill_price),
                        "qty": _num(order.filled),
                        "commission": _num(0.0),
                        "commissionAsset": order.symbol.split("/")[1],
                        "tradeId": next(self._trade_ids),
                    }
                ]
                if order.filled > 0
                else []
            )
        else:
            body.update(
                stopPrice=_num(0.0),
                icebergQty=_num(0.0),
                time=order.timestamp,
                updateTime=order.timestamp,
                isWorking=True,
            )
        return body


def _num(value: float) -> str:
    return f"{value:.8f}"


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with no reply at all (the client sees a disconnect)."""
    assert request.transport is not None
    request.transport.close()
    raise asyncio.CancelledError  # nothing can be written any more; aiohttp drops the request


def _as_binance_error(exc: ccxt.BaseError) -> _BinanceError:
    """The paper book's refusal, as Binance spot words it."""
    text = str(exc)
    if isinstance(exc, ccxt.DuplicateOrderId):
        return _BinanceError(400, -2010, "Duplicate order sent.")
    if isinstance(exc, ccxt.InsufficientFunds):
        return _BinanceError(400, -2010, "Account has insufficient balance for requested action.")
    if isinstance(exc, ccxt.BadSymbol):
        return _BinanceError(400, -1121, "Invalid symbol.")
    if "minimum cost" in text:
        return _BinanceError(400, -1013, "Filter failure: NOTIONAL")
    if "minimum" in text or "step" in text:
        return _BinanceError(400, -1013, "Filter failure: LOT_SIZE")
    return _BinanceError(400, -1102, f"Mandatory parameter was not sent or malformed: {text}")


def _symbol_info(spec: MarketSpec) -> dict[str, Any]:
    return {
        "symbol": spec.symbol.replace("/", ""),
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _num(spec.price_step),
                "maxPrice": _num(1_000_000.0),
                "tickSize": _num(spec.price_step),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _num(spec.min_amount),
                "maxQty": _num(9_000_000.0),
                "stepSize": _num(spec.amount_step),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _num(spec.min_cost),
                "applyMinToMarket": True,
                "maxNotional": _num(9_000_000_000.0),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


# --- the ccxt side ----------------------------------------------------------------------------

_SPOT_APIS = ("public", "private")
"""The ``urls["api"]`` entries ccxt binance uses for spot: api/v3 public and signed."""


def point_at(exchange: ccxt_async.binance, base_url: str) -> None:
    """Send a ccxt binance exchange's spot REST calls to ``base_url`` instead of binance.com."""
    api = dict(exchange.urls["api"])
    for name in _SPOT_APIS:
        api[name] = f"{base_url}/api/v3"
    api["v1"] = f"{base_url}/api/v1"
    for name, version in (("sapi", 1), ("sapiV2", 2), ("sapiV3", 3), ("sapiV4", 4)):
        api[name] = f"{base_url}/sapi/v{version}"  # not served: spot trading never calls it
    exchange.urls["api"] = api


def binance_client(
    base_url: str,
    *,
    api_key: str = API_KEY,
    secret: str = SECRET,
    timeout_ms: int = 500,
    **config: Any,
) -> ccxt_async.binance:
    """A real ``ccxt.async_support.binance`` talking to the fake server at ``base_url``.

    Test-only settings: short timeouts, no client-side throttling or close() delay, no
    margin/currency/futures market loading (options ``fetchCurrencies``/``fetchMargins``/
    ``fetchMarkets``), and ccxt's spot error table applied to our host: ccxt picks that table
    by URL prefix (``binance.py::get_exceptions_by_url`` only knows ``https://api.binance.com/``
    and the testnets), so it is re-pointed here, never in production code.
    """
    exchange = ccxt_async.binance(
        {
            "apiKey": api_key,
            "secret": secret,
            "timeout": timeout_ms,
            "enableRateLimit": False,
            "timeout_on_exit": 0,  # close() sleeps 250 ms by default
            "options": {
                "fetchCurrencies": False,
                "fetchMargins": False,
                "fetchMarkets": {"types": ["spot"]},
                "adjustForTimeDifference": False,
            },
            **config,
        }
    )
    point_at(exchange, base_url)
    spot_by_url = exchange.get_exceptions_by_url

    def exceptions_by_url(url: str | None, exact_or_broad: str) -> dict[str, Any]:
        if url is not None and url.startswith(base_url + "/api/"):
            return dict(exchange.exceptions["spot"].get(exact_or_broad, {}))
        return dict(spot_by_url(url, exact_or_broad))

    exchange.get_exceptions_by_url = exceptions_by_url
    return exchange


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- fixtures (import them into a test module by name) -----------------------------------------


@pytest.fixture
def trades_db(tmp_path: Path) -> str:
    """The engine's database for these tests: a SQLite file (the exchange path is under test,
    not the store; the store's backends have their own suite)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    """A started fake Binance server with the paper exchange's default markets."""
    async with FakeBinance() as server:
        yield server


@pytest.fixture
async def binance(fake: FakeBinance) -> AsyncIterator[ccxt_async.binance]:
    """A real ccxt binance client on the ``fake`` server (closed after the test)."""
    exchange = binance_client(fake.url)
    try:
        yield exchange
    finally:
        await exchange.close()


async def _serve_forever(port: int) -> None:  # pragma: no cover - manual use
    async with FakeBinance(port=port) as fake:
        print(f"fake binance on {fake.url} (key {fake.api_key})", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover - `python -m tests.support.fake_binance [PORT]`
    import sys

    asyncio.run(_serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
