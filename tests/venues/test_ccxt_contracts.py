"""Contract markets on real ccxt classes (binanceusdm, okx, bybit; binance and okx spot), whose
HTTP layer answers canned venue replies (``Wire``, as in ``test_ccxt_venues``): what ccxt puts
on the wire for contract amounts, reduceOnly and hedge mode is asserted, fills reported in
contracts come back as base units, and id-only create replies (okx, bybit) are settled by a
lookup, end to end through the engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from pairexec import ExecutionEngine, InvalidRequest, PairTradeRequest, TradeOutcome, TradeState
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.model import OrderFacts
from pairexec.fsm.venues.gateway import Answered, ExchangeGateway, Failed
from tests.venues.test_ccxt_venues import Wire

SPOT, PERP, INVERSE = "BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC"
ONEWAY, HEDGE = (
    EngineConfig(call_timeout=5.0),
    EngineConfig(call_timeout=5.0, position_mode="hedge"),
)
STOP = ccxt.RequestTimeout("stop here")

# (ccxt class, spot id, swap id, contract size, contract step, extra config)
VENUES = {
    "binanceusdm": ("BTCUSDT", "BTCUSDT", 0.01, 1, {}),
    "okx": ("BTC-USDT", "BTC-USDT-SWAP", 0.01, 0.01, {"password": "passphrase"}),
    "bybit": ("BTCUSDT", "BTCUSDT", 0.01, 1, {}),
    "binance": ("BTCUSDT", "BTCUSDT", 0.01, 1, {}),
}


def venue(name: str) -> Any:
    """A real ccxt exchange with a spot, a linear swap and an inverse swap BTC market."""
    spot_id, swap_id, size, step, config = VENUES[name]
    credentials = {"apiKey": "k" * 24, "secret": "c2VjcmV0" * 4, "enableRateLimit": False}
    exchange = getattr(ccxt_async, name)({**credentials, **config})
    common = {"base": "BTC", "baseId": "BTC", "active": True}
    info = {"orderTypes": ["LIMIT", "MARKET"]}  # binance checks the market's order types
    swap = {"type": "swap", "swap": True, "spot": False, "contract": True, "info": info}
    markets = [
        {
            **common,
            "id": spot_id,
            "symbol": SPOT,
            "quote": "USDT",
            "quoteId": "USDT",
            "type": "spot",
            "spot": True,
            "precision": {"amount": 0.0001, "price": 0.01},
            "limits": {"amount": {"min": 0.0001}},
            "info": info,
        },
        {
            **common,
            **swap,
            "id": swap_id,
            "symbol": PERP,
            "quote": "USDT",
            "quoteId": "USDT",
            "settle": "USDT",
            "settleId": "USDT",
            "linear": True,
            "inverse": False,
            "contractSize": size,
            "precision": {"amount": step, "price": 0.1},
            "limits": {"amount": {"min": step}},
        },
        {
            **common,
            **swap,
            "id": "BTC-USD-SWAP" if name == "okx" else "BTCUSD",
            "symbol": INVERSE,
            "quote": "USD",
            "quoteId": "USD",
            "settle": "BTC",
            "settleId": "BTC",
            "linear": False,
            "inverse": True,
            "contractSize": 100,
            "precision": {"amount": 1, "price": 0.1},
            "limits": {"amount": {"min": 1}},
        },
    ]
    exchange.set_markets([exchange.safe_market_structure(m) for m in markets])
    if name == "bybit":
        exchange.options["enableUnifiedAccount"] = True  # skip the account-type probe
        exchange.options["enableUnifiedMargin"] = False
    return exchange


def intent(leg: Leg, symbol: str = PERP, side: str = "sell", amount: float = 0.05) -> OrderFacts:
    return OrderFacts.intent(leg, 1, client_order_id("contracts", leg, 1), symbol, side, amount)


async def sent(name: str, config: EngineConfig, *orders: OrderFacts) -> list[dict[str, Any]]:
    """What ccxt put on the wire for each create (the request's fields)."""
    exchange = venue(name)
    wire = Wire(exchange, lambda path: STOP)
    gateway = ExchangeGateway(exchange, config)
    try:
        await gateway.market_rules()
        for order in orders:
            await gateway.create(order)
    finally:
        await exchange.close()
    if name == "okx":  # ccxt okx creates through a one-order batch: a JSON list body
        return [json.loads(body)[0] for body in wire.bodies]
    return [params for _, _, params in wire.requests]


def flag(value: Any) -> bool:
    return str(value).lower() == "true"


# --- what goes on the wire --------------------------------------------------------------------

AMOUNT_FIELD = {"binanceusdm": "quantity", "okx": "sz", "bybit": "qty"}


@pytest.mark.parametrize("name", ["binanceusdm", "okx", "bybit"])
async def test_one_way_mode_sends_contracts_and_reduce_only_on_the_unwind_alone(name):
    leg_b, unwind = await sent(name, ONEWAY, intent(Leg.B), intent(Leg.UNWIND))

    field = AMOUNT_FIELD[name]
    assert float(leg_b[field]) == 5 and float(unwind[field]) == 5  # 0.05 BTC = 5 x 0.01
    assert "reduceOnly" not in leg_b and flag(unwind["reduceOnly"])
    for request in (leg_b, unwind):  # one-way: no position side at all
        assert not {"positionSide", "posSide", "positionIdx"} & set(request), request


async def test_hedge_mode_names_the_position_side_the_ccxt_way():
    # a sell that opens (leg B) is the short side; a sell that reduces (unwind of a buy) the long
    binance_b, binance_unwind = await sent("binanceusdm", HEDGE, intent(Leg.B), intent(Leg.UNWIND))
    assert binance_b["positionSide"] == "SHORT" and binance_unwind["positionSide"] == "LONG"
    assert "reduceOnly" not in binance_unwind  # binance refuses reduceOnly in hedge mode

    okx_b, okx_unwind = await sent("okx", HEDGE, intent(Leg.B), intent(Leg.UNWIND))
    assert okx_b["posSide"] == "short" and okx_unwind["posSide"] == "long"
    assert "reduceOnly" not in okx_unwind

    bybit_b, bybit_unwind = await sent("bybit", HEDGE, intent(Leg.B), intent(Leg.UNWIND))
    assert bybit_b["positionIdx"] == "2" and bybit_unwind["positionIdx"] == "1"
    assert "reduceOnly" not in bybit_unwind


@pytest.mark.parametrize("name", ["binance", "okx"])
@pytest.mark.parametrize("config", [ONEWAY, HEDGE], ids=["oneway", "hedge"])
async def test_spot_orders_never_carry_position_flags(name, config):
    [unwind] = await sent(name, config, intent(Leg.UNWIND, SPOT, "sell", 0.0537))

    assert float(unwind["quantity" if name == "binance" else "sz"]) == 0.0537  # base units
    assert not {"reduceOnly", "positionSide", "posSide", "hedged"} & set(unwind), unwind


async def test_an_inverse_market_is_never_sent_to():
    exchange = venue("okx")
    wire = Wire(exchange, lambda path: STOP)
    gateway = ExchangeGateway(exchange, ONEWAY)
    try:
        await gateway.market_rules()
        result = await gateway.create(intent(Leg.B, INVERSE))
    finally:
        await exchange.close()
    assert isinstance(result, Failed) and "inverse" in result.error and INVERSE in result.error
    assert wire.requests == []


# --- okx: id-only creates, fills in contracts ---------------------------------------------------


class OkxVenue:
    """Answers okx's create (id only, as okx does) and its order lookups (filled)."""

    def __init__(self, exchange: Any, price: float = 60000.0, mode: str = "net_mode") -> None:
        self.wire = Wire(exchange, self.reply)
        self.orders: dict[str, dict[str, Any]] = {}
        self.price = price
        self.mode = mode

    def reply(self, path: str) -> Any:
        if path == "/api/v5/account/config":  # ccxt's fetchPositionMode (via fetch_accounts)
            account = {"uid": "1", "mainUid": "1", "acctLv": "2", "posMode": self.mode}
            return {"code": "0", "msg": "", "data": [account]}
        if path == "/api/v5/trade/batch-orders":
            [request] = json.loads(self.wire.bodies[-1])
            order_id = str(len(self.orders) + 1)
            self.orders[request["clOrdId"]] = {**request, "ordId": order_id}
            data = {"clOrdId": request["clOrdId"], "ordId": order_id, "sCode": "0", "sMsg": ""}
            return {"code": "0", "msg": "", "data": [data]}
        if path == "/api/v5/trade/order":
            _, _, params = self.wire.requests[-1]
            found = self.orders.get(params.get("clOrdId", ""))
            if found is None:
                return {"code": "51603", "msg": "Order does not exist", "data": []}
            return {"code": "0", "msg": "", "data": [self._filled(found)]}
        raise AssertionError(f"unexpected okx call {path}")

    def _filled(self, order: dict[str, Any]) -> dict[str, Any]:
        return {
            "instId": order["instId"],
            "ordId": order["ordId"],
            "clOrdId": order["clOrdId"],
            "side": order["side"],
            "ordType": "market",
            "tdMode": order["tdMode"],
            "sz": order["sz"],
            "accFillSz": order["sz"],  # contracts on a swap, base units on spot
            "avgPx": str(self.price),
            "state": "filled",
            "cTime": "1700000000000",
            "uTime": "1700000000100",
        }

    def creates(self) -> list[dict[str, Any]]:
        return [
            json.loads(b)[0]
            for b, (_, p, _) in zip(self.wire.bodies, self.wire.requests, strict=True)
            if p == "/api/v5/trade/batch-orders"
        ]


async def test_okx_fill_in_contracts_is_read_back_as_base_units():
    exchange = venue("okx")
    okx = OkxVenue(exchange)
    gateway = ExchangeGateway(exchange, ONEWAY)
    try:
        await gateway.market_rules()
        created = await gateway.create(intent(Leg.B, amount=0.0537))
        looked_up = await gateway.fetch(intent(Leg.B, amount=0.0537))
    finally:
        await exchange.close()
    assert okx.creates()[0]["sz"] == "5.37"
    assert isinstance(created, Answered) and created.report.filled == 0.0  # id only: open
    assert isinstance(looked_up, Answered) and looked_up.report.filled == 0.0537  # not 5.37


async def basis_trade(exchange: Any, tmp_path: Path) -> TradeOutcome:
    """Buy 0.05 BTC spot, sell the same on the linear perpetual, through ``exchange``."""
    request = PairTradeRequest(SPOT, "buy", 0.05, PERP, "sell", hedge_ratio=1.0)
    try:
        async with ExecutionEngine(
            exchange, store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", config=ONEWAY
        ) as engine:
            return await engine.execute_pair_trade(request)
    finally:
        await exchange.close()


async def test_spot_perp_basis_trade_on_okx_settles_id_only_creates_by_a_lookup(tmp_path):
    exchange = venue("okx")
    okx = OkxVenue(exchange)
    outcome = await basis_trade(exchange, tmp_path)

    assert outcome.state is TradeState.DONE, outcome.reason
    assert (outcome.filled_x, outcome.filled_y) == (0.05, 0.05)  # base units, both legs
    leg_a, leg_b = okx.creates()
    assert (leg_a["instId"], leg_a["sz"]) == ("BTC-USDT", "0.05")
    assert (leg_b["instId"], leg_b["sz"]) == ("BTC-USDT-SWAP", "5")  # 5 contracts of 0.01
    assert "reduceOnly" not in leg_b  # leg B opens the short
    paths = okx.wire.paths()
    assert paths.index("/api/v5/trade/order") > paths.index("/api/v5/trade/batch-orders")


async def test_an_inverse_market_is_refused_at_request_validation(tmp_path):
    exchange = venue("okx")
    okx = OkxVenue(exchange)
    try:
        async with ExecutionEngine(
            exchange, store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", config=ONEWAY
        ) as engine:
            with pytest.raises(InvalidRequest, match=r"pair_y 'BTC/USD:BTC'.*inverse"):
                await engine.execute_pair_trade(
                    PairTradeRequest(SPOT, "buy", 0.05, INVERSE, "sell", hedge_ratio=1.0)
                )
    finally:
        await exchange.close()
    assert okx.wire.requests == []


# --- bybit: id-only creates settled by the scan -------------------------------------------------


class BybitVenue:
    def __init__(self, exchange: Any) -> None:
        self.wire = Wire(exchange, self.reply)
        self.orders: dict[str, dict[str, Any]] = {}

    def reply(self, path: str) -> Any:
        _, _, params = self.wire.requests[-1]
        if path == "/v5/order/create":
            order_id = str(1000 + len(self.orders))
            self.orders[params["orderLinkId"]] = {**params, "orderId": order_id}
            result = {"orderId": order_id, "orderLinkId": params["orderLinkId"]}
            return {"retCode": 0, "retMsg": "OK", "result": result, "time": 1700000000000}
        found = self.orders.get(params.get("orderLinkId", ""))
        if path == "/v5/order/history" and found is not None:
            listed = [self._filled(found)]
        elif path in ("/v5/order/realtime", "/v5/order/history"):
            listed = []
        else:
            raise AssertionError(f"unexpected bybit call {path}")
        return {"retCode": 0, "retMsg": "OK", "result": {"list": listed, "nextPageCursor": ""}}

    @staticmethod
    def _filled(order: dict[str, Any]) -> dict[str, Any]:
        return {
            "orderId": order["orderId"],
            "orderLinkId": order["orderLinkId"],
            "symbol": order["symbol"],
            "side": order["side"],
            "orderType": "Market",
            "orderStatus": "Filled",
            "price": "0",
            "qty": order["qty"],
            "cumExecQty": order["qty"],
            "avgPrice": "60000",
            "leavesQty": "0",
            "timeInForce": "IOC",
            "createdTime": "1700000000000",
            "updatedTime": "1700000000100",
        }


async def test_spot_perp_basis_trade_on_bybit_settles_id_only_creates_by_a_scan(tmp_path):
    exchange = venue("bybit")
    bybit = BybitVenue(exchange)
    outcome = await basis_trade(exchange, tmp_path)

    assert outcome.state is TradeState.DONE, outcome.reason
    assert (outcome.filled_x, outcome.filled_y) == (0.05, 0.05)
    creates = [p for _, path, p in bybit.wire.requests if path == "/v5/order/create"]
    assert [(c["category"], c["qty"]) for c in creates] == [("spot", "0.05"), ("linear", "5")]
    assert "/v5/order/history" in bybit.wire.paths()  # the fill came from the lookup


# --- the account's position mode, asked once (fetchPositionMode) ------------------------------


async def test_a_trade_on_an_account_in_the_other_position_mode_is_refused_nothing_sent(tmp_path):
    exchange = venue("okx")
    okx = OkxVenue(exchange, mode="long_short_mode")  # the account is in hedge mode
    request = PairTradeRequest(SPOT, "buy", 0.05, PERP, "sell", hedge_ratio=1.0)
    try:
        async with ExecutionEngine(
            exchange, store=f"sqlite+aiosqlite:///{tmp_path / 't.db'}", config=ONEWAY
        ) as engine:
            with pytest.raises(InvalidRequest, match=r"BTC/USDT:USDT: the account is in hedge"):
                await engine.execute_pair_trade(request)
            with pytest.raises(InvalidRequest, match="position_mode is 'oneway'"):
                await engine.execute_pair_trade(request)
    finally:
        await exchange.close()
    assert okx.wire.paths() == ["/api/v5/account/config"]  # asked once; no order sent


@pytest.mark.parametrize(
    ("dual", "config", "refused"),
    [(True, HEDGE, False), (False, ONEWAY, False), (True, ONEWAY, True), (False, HEDGE, True)],
)
async def test_binance_futures_position_mode_is_read_from_dual_side_position(dual, config, refused):
    exchange = venue("binanceusdm")
    wire = Wire(exchange, lambda path: {"dualSidePosition": dual})
    gateway = ExchangeGateway(exchange, config)
    try:
        await gateway.market_rules()
        spot_only = await gateway.position_mode_mismatch([SPOT])
        mismatch = await gateway.position_mode_mismatch([SPOT, PERP])
    finally:
        await exchange.close()
    assert spot_only is None  # a spot market has no position mode: nothing asked for it
    assert wire.paths() == ["/fapi/v1/positionSide/dual"]
    assert (mismatch is not None) is refused and (not refused or PERP in (mismatch or ""))


async def test_a_venue_that_cannot_say_its_position_mode_is_trusted(tmp_path):
    exchange = venue("bybit")  # ccxt bybit has no fetchPositionMode
    gateway = ExchangeGateway(exchange, HEDGE)
    wire = Wire(exchange, lambda path: STOP)
    try:
        await gateway.market_rules()
        assert await gateway.position_mode_mismatch([PERP]) is None
    finally:
        await exchange.close()
    assert wire.requests == []
    okx_exchange = venue("okx")
    Wire(okx_exchange, lambda path: STOP)  # the question times out: trusted, logged
    okx_gateway = ExchangeGateway(okx_exchange, HEDGE)
    try:
        await okx_gateway.market_rules()
        assert await okx_gateway.position_mode_mismatch([PERP]) is None
    finally:
        await okx_exchange.close()
