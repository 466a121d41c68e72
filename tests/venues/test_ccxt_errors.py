"""What each exchange error means for an order: per ccxt class, and per real HTTP answer.

``classify`` decides whether an order may exist (UNKNOWN: look it up), definitely does not
(REJECTED), was not accepted for now (RETRY_LATER) or is confirmed absent (NOT_FOUND). The
first half pins that per ccxt exception class (and fails when a ccxt upgrade adds a class
nobody has decided about); the second half sends real requests through the real ccxt binance
client to ``support.fake_binance`` and checks what the gateway makes of each answer.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import pytest
from aiohttp.client_reqrep import ConnectionKey

from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.model import OrderFacts, OrderStatus
from pairexec.fsm.venues.errors import (
    ConfirmedAbsent,
    ErrorMeaning,
    LookupInconclusive,
    classify,
    describe,
    never_sent,
)
from pairexec.fsm.venues.gateway import Answered, ExchangeGateway, Failed
from tests.support import fake_binance
from tests.support.fake_binance import FakeBinance, binance_client, closed_port_url

# the fake server's fixtures, used by name
fake, binance = fake_binance.fake, fake_binance.binance

REJECTED, UNKNOWN = ErrorMeaning.REJECTED, ErrorMeaning.UNKNOWN
RETRY_LATER, NOT_FOUND = ErrorMeaning.RETRY_LATER, ErrorMeaning.NOT_FOUND

CCXT_CLASSES: dict[str, ErrorMeaning] = {
    # a definite "no": nothing was placed (only these; see pairexec.fsm.venues.errors._DEFINITE)
    "AuthenticationError": REJECTED,
    "PermissionDenied": REJECTED,
    "AccountNotEnabled": REJECTED,
    "AccountSuspended": REJECTED,
    "ArgumentsRequired": REJECTED,  # raised by ccxt before sending
    "NotSupported": REJECTED,
    "InvalidProxySettings": REJECTED,  # raised by ccxt before sending
    "ExchangeClosedByUser": REJECTED,  # raised by ccxt before sending
    "BadRequest": REJECTED,
    "BadSymbol": REJECTED,
    "InsufficientFunds": REJECTED,
    "InvalidOrder": REJECTED,
    "OrderImmediatelyFillable": REJECTED,
    "OrderNotFillable": REJECTED,
    "ContractUnavailable": REJECTED,
    "MarketClosed": REJECTED,
    "ManualInteractionNeeded": REJECTED,
    "RestrictedLocation": REJECTED,
    # "no such order"
    "OrderNotFound": NOT_FOUND,
    # no definite answer about the order: look it up
    "BaseError": UNKNOWN,
    "ExchangeError": UNKNOWN,  # ccxt's "unknown message": unmapped or "system error" codes
    "OperationRejected": UNKNOWN,  # a bucket: aster maps -1000 UNKNOWN to it
    "NoChange": UNKNOWN,  # about settings, not orders
    "MarginModeAlreadySet": UNKNOWN,
    "InvalidAddress": UNKNOWN,  # about withdrawals, not orders
    "AddressPending": UNKNOWN,
    "OrderNotCached": UNKNOWN,  # ccxt's own cache, not the venue
    "DuplicateOrderId": UNKNOWN,  # the client id is taken: the order exists
    "OperationFailed": UNKNOWN,
    "NetworkError": UNKNOWN,
    "ExchangeNotAvailable": UNKNOWN,
    "InvalidNonce": UNKNOWN,
    "ChecksumError": UNKNOWN,
    "RequestTimeout": UNKNOWN,
    "BadResponse": UNKNOWN,
    "NullResponse": UNKNOWN,
    "CancelPending": UNKNOWN,
    "UnsubscribeError": UNKNOWN,
    # throttled or in maintenance: not accepted, retry later
    "DDoSProtection": RETRY_LATER,
    "RateLimitExceeded": RETRY_LATER,
    "OnMaintenance": RETRY_LATER,
}


def _ccxt_error_classes() -> set[type[ccxt.BaseError]]:
    found: set[type[ccxt.BaseError]] = {ccxt.BaseError}
    todo = [ccxt.BaseError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("ccxt") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_ccxt_error_class_has_a_decided_meaning():
    names = {cls.__name__ for cls in _ccxt_error_classes()}
    assert names - set(CCXT_CLASSES) == set(), "new ccxt error classes: decide what they mean"


@pytest.mark.parametrize(("name", "meaning"), sorted(CCXT_CLASSES.items()))
def test_ccxt_error_class(name: str, meaning: ErrorMeaning):
    assert classify(getattr(ccxt, name)("binance something")) is meaning


def _refused() -> aiohttp.ClientConnectorError:
    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed"))


def _raised_from(error: Exception, cause: BaseException) -> Exception:
    try:
        raise error from cause
    except Exception as raised:
        return raised


def _raised_while_handling(error: Exception, context: BaseException) -> Exception:
    try:
        try:
            raise context
        except BaseException:
            raise error  # noqa: B904 - an implicit __context__ is the point here
    except Exception as raised:
        return raised


@pytest.mark.parametrize(
    ("error", "meaning"),
    [
        # how ccxt wraps aiohttp (async_support/base/exchange.py::fetch)
        (_raised_from(ccxt.ExchangeNotAvailable("binance POST"), _refused()), RETRY_LATER),
        (_raised_from(ccxt.ExchangeNotAvailable("binance POST"), socket.gaierror(-2)), RETRY_LATER),
        (ConnectionRefusedError(111, "refused"), RETRY_LATER),
        (
            _raised_from(ccxt.ExchangeNotAvailable("x"), aiohttp.ServerDisconnectedError()),
            UNKNOWN,
        ),
        (
            _raised_from(ccxt.ExchangeError("binance POST"), aiohttp.ClientPayloadError("cut")),
            UNKNOWN,  # a bare ExchangeError, but ccxt raised it from a lost reply
        ),
        (_raised_from(ccxt.RequestTimeout("x"), asyncio.TimeoutError()), UNKNOWN),
        # a refused connection only *handled* nearby says nothing about this request
        (_raised_while_handling(ccxt.ExchangeNotAvailable("x"), _refused()), UNKNOWN),
        (ConnectionResetError("reset"), UNKNOWN),
        (TimeoutError(), UNKNOWN),
        (asyncio.TimeoutError(), UNKNOWN),
        (KeyError("a bug in an adapter"), UNKNOWN),
        # "duplicate" from the venue: the client id is taken, the order exists
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), UNKNOWN),
        (ccxt.InvalidOrder('okx {"sCode":"51016","sMsg":"Duplicated clOrdId"}'), UNKNOWN),
        (
            ccxt.InvalidOrder('bybit {"retCode":110072,"retMsg":"OrderLinkedID is duplicate"}'),
            UNKNOWN,
        ),
        (ccxt.BadRequest('bybit {"retCode":12141,"retMsg":"Duplicate clientOrderId."}'), UNKNOWN),
        (
            ccxt.InsufficientFunds(
                'binance {"code":-2010,"msg":"Account has insufficient balance for requested '
                'action."}'
            ),
            REJECTED,
        ),
        # the engine's own lookup outcomes
        (ConfirmedAbsent("scan done, not there"), NOT_FOUND),
        (LookupInconclusive("fetch_closed_orders failed"), UNKNOWN),
        (_raised_from(LookupInconclusive("x"), ccxt.OrderNotFound("x")), UNKNOWN),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_causes_and_messages(error: BaseException, meaning: ErrorMeaning):
    assert classify(error) is meaning


def test_never_sent_follows_explicit_causes_only():
    assert never_sent(_raised_from(ccxt.ExchangeNotAvailable("x"), _refused()))
    assert not never_sent(_raised_while_handling(ccxt.ExchangeNotAvailable("x"), _refused()))


def test_describe_removes_signatures_and_key_parameters():
    url = "GET http://h/api/v3/order?symbol=X&timestamp=1&signature=ab12cd&apiKey=k123 rest"
    text = describe(ccxt.RequestTimeout(url))
    assert "ab12cd" not in text and "k123" not in text
    assert "signature=<redacted>" in text and text.startswith("RequestTimeout: ")


# --- real HTTP answers, through ccxt binance and the gateway --------------------------------

CONFIG = EngineConfig(call_timeout=5.0)


def order(cid: str = "", symbol: str = "BTC/USDT") -> OrderFacts:
    cid = cid or client_order_id("errors", Leg.A, 1)
    return OrderFacts(Leg.A, 1, cid, symbol, "buy", 0.01, OrderStatus.INTENT)


@pytest.mark.parametrize(
    ("fault", "meaning"),
    [
        ("http_500", UNKNOWN),
        ("http_503_after_accept", UNKNOWN),
        ("rate_limit", RETRY_LATER),
        ("http_418", RETRY_LATER),
        ("maintenance", RETRY_LATER),
        ("reject_funds", REJECTED),
        ("reject_invalid", REJECTED),
        ("auth_error", REJECTED),
        ("drop", UNKNOWN),
        ("drop_after_accept", UNKNOWN),
        ("truncated_after_accept", UNKNOWN),
        ("no_id_after_accept", UNKNOWN),
        ("timeout_after_accept", UNKNOWN),
    ],
)
async def test_create_answer(
    binance: ccxt_async.binance, fake: FakeBinance, fault: str, meaning: ErrorMeaning
):
    fake.fail("create", "BTC/USDT", fault)

    result = await ExchangeGateway(binance, CONFIG).create(order())

    assert isinstance(result, Failed) and result.meaning is meaning, result
    placed = len(fake.orders()) == 1
    assert placed is fault.endswith("_after_accept")


async def test_create_with_a_used_client_id_is_unknown_not_rejected(
    binance: ccxt_async.binance, fake: FakeBinance
):
    gateway = ExchangeGateway(binance, CONFIG)
    assert isinstance(await gateway.create(order()), Answered)

    again = await gateway.create(order())

    assert isinstance(again, Failed) and again.meaning is UNKNOWN
    assert "Duplicate order sent." in again.error
    assert len(fake.orders()) == 1


async def test_create_on_a_closed_port_is_retry_later():
    exchange = binance_client(closed_port_url())
    exchange.markets = None
    try:
        result = await ExchangeGateway(exchange, CONFIG).create(order())
    finally:
        await exchange.close()
    assert isinstance(result, Failed) and result.meaning is RETRY_LATER, result


async def test_lookup_on_a_closed_port_is_inconclusive(binance: ccxt_async.binance):
    await binance.load_markets()
    fake_binance.point_at(binance, closed_port_url())

    result = await ExchangeGateway(binance, CONFIG).fetch(order())

    assert isinstance(result, Failed) and result.meaning is not NOT_FOUND


@pytest.mark.parametrize(
    ("faults", "meaning"),
    [
        (("not_found",), NOT_FOUND),
        (("rate_limit",), RETRY_LATER),
        (("http_500",), UNKNOWN),
        (("drop", "drop"), UNKNOWN),  # aiohttp retries a dropped GET once by itself
        (("timeout_before_accept",), UNKNOWN),
        # after a signed call succeeded, ccxt reads Binance's -2015 as a temporary ban
        (("auth_error",), RETRY_LATER),
    ],
)
async def test_lookup_answer(
    binance: ccxt_async.binance, fake: FakeBinance, faults: tuple[str, ...], meaning: ErrorMeaning
):
    gateway = ExchangeGateway(binance, CONFIG)
    assert isinstance(await gateway.create(order()), Answered)
    fake.fail("fetch", "BTC/USDT", *faults)

    result = await gateway.fetch(order())

    assert isinstance(result, Failed) and result.meaning is meaning, result


async def test_lookup_finds_by_client_id_and_reports_absence_only_from_the_venue(
    binance: ccxt_async.binance, fake: FakeBinance
):
    gateway = ExchangeGateway(binance, CONFIG)
    placed = await gateway.create(order())
    assert isinstance(placed, Answered)

    found = await gateway.fetch(order())
    absent = await gateway.fetch(order("0" * 32))

    assert isinstance(found, Answered) and found.report == placed.report
    assert isinstance(absent, Failed) and absent.meaning is NOT_FOUND
    assert [r.params.get("origClientOrderId") for r in fake.seen("fetch")] == [
        order().client_order_id,
        "0" * 32,
    ]
