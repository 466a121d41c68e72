"""Fees as real venues report them, read through the real ccxt classes (HTTP replaced by
canned venue JSON, as in ``test_ccxt_venues``) and the gateway: Binance's fills in the bought
coin, OKX's negative "fee charged", Gate's ``fee=None`` beside a ``fees`` list."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import Fee, OrderFacts, OrderStatus
from pairexec.fsm.venues.gateway import Answered, ExchangeGateway
from pairexec.fsm.venues.reports import parse_order
from tests.support.ccxt_markets import set_btc_usdt_spot
from tests.venues.test_ccxt_venues import CID, CONFIG, Wire, order, venue


async def test_binance_fills_charged_in_the_bought_coin():
    exchange = venue("binance", "BTCUSDT")
    exchange.markets["BTC/USDT"]["info"]["orderTypes"] = ["LIMIT", "MARKET"]
    reply = {
        "symbol": "BTCUSDT",
        "orderId": 28,
        "clientOrderId": CID,
        "transactTime": 1700000000000,
        "price": "0.00000000",
        "origQty": "0.01000000",
        "executedQty": "0.01000000",
        "cummulativeQuoteQty": "601.00000000",
        "status": "FILLED",
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "BUY",
        "fills": [
            {"price": "60000", "qty": "0.004", "commission": "0.000004", "commissionAsset": "BTC"},
            {
                "price": "60166.66",
                "qty": "0.006",
                "commission": "0.000006",
                "commissionAsset": "BTC",
            },
        ],
    }
    Wire(exchange, lambda path: reply)
    try:
        result = await ExchangeGateway(exchange, CONFIG).create(order())
    finally:
        await exchange.close()
    assert isinstance(result, Answered), result
    [fee] = result.report.fees or ()
    assert fee.currency == "BTC" and fee.cost == pytest.approx(0.00001)
    assert result.report.average == pytest.approx(60100.0)


async def test_okx_negative_fee_is_a_cost_paid_and_fee_is_not_added_to_fees():
    exchange = venue("okx", "BTC-USDT", password="passphrase")
    okx_order = {
        "instType": "SPOT",
        "instId": "BTC-USDT",
        "ordId": "555",
        "clOrdId": CID,
        "px": "",
        "sz": "0.01",
        "ordType": "market",
        "side": "buy",
        "tgtCcy": "base_ccy",
        "accFillSz": "0.01",
        "avgPx": "60000",
        "state": "filled",
        "fee": "-0.00001",  # OKX: negative = charged
        "feeCcy": "BTC",
        "cTime": "1700000000000",
        "uTime": "1700000000100",
    }
    Wire(exchange, lambda path: {"code": "0", "msg": "", "data": [okx_order]})
    try:
        result = await ExchangeGateway(exchange, CONFIG).fetch(order())
    finally:
        await exchange.close()
    assert isinstance(result, Answered), result
    assert result.report.fees == (Fee("BTC", 0.00001),)  # once, though ccxt gives fee and fees


def test_gate_fee_none_with_a_fees_list():
    gate: Any = ccxt.gate()
    set_btc_usdt_spot(gate, "BTC_USDT", limits={})
    raw = {
        "id": "123",
        "text": CID,
        "create_time_ms": 1700000000000,
        "update_time_ms": 1700000000100,
        "status": "closed",
        "currency_pair": "BTC_USDT",
        "type": "limit",
        "account": "spot",
        "side": "sell",
        "amount": "0.01",
        "price": "60000",
        "time_in_force": "gtc",
        "left": "0",
        "filled_amount": "0.01",
        "filled_total": "600",
        "avg_deal_price": "60000",
        "fee": "0.6",
        "fee_currency": "USDT",
        "point_fee": "0",
        "gt_fee": "0.02",
        "rebated_fee": "0",
        "rebated_fee_currency": "BTC",
        "finish_as": "filled",
    }
    unified = gate.parse_order(raw, gate.market("BTC/USDT"))
    assert unified["fee"] is None and unified["fees"]  # the shape this test is about
    facts = OrderFacts(Leg.B, 1, CID, "BTC/USDT", "sell", 0.01, OrderStatus.UNKNOWN, 0.0, 1)
    report = parse_order(unified, facts)
    assert dict((f.currency, f.cost) for f in report.fees or ()) == pytest.approx(
        {"USDT": 0.6, "GT": 0.02}
    )
    assert report.filled == 0.01 and report.average == 60000
