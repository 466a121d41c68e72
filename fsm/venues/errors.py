"""Sorting exchange errors by what they mean for the order, not by their type name.

Only a definite answer from the exchange lets the engine treat an order as not placed. Anything
else (timeouts, dropped connections, truncated or garbled replies, 5xx, and every error we do
not recognise) means the order's existence is UNKNOWN and must be looked up by client order id.
``classify`` is the one place that decides this; the gateway, the per-venue lookups
(``pairexec.fsm.venues.ccxt_lookup``) and the engine only act on its answer.

So REJECTED is never a default. It is an explicit list of ccxt classes (``DEFINITE_ANSWERS``,
matched by exact class, so a class a ccxt upgrade adds stays UNKNOWN until someone decides about
it), less the venue answers that ccxt files under one of those classes although the order may
exist: "this client id is taken", "order creation timed out" (``OUTCOME_UNKNOWN_CODES``, by the
venue's own code, and a last-resort text match).

How ccxt reports what (verified in ccxt 4.5.90's ``async_support/base/exchange.py::fetch`` and
the ``handle_errors`` of binance, okx, bybit and kucoin):

- aiohttp timeouts become ``RequestTimeout``; ``aiohttp.ClientConnectionError`` (refused, reset,
  server disconnected) becomes ``ExchangeNotAvailable`` *from* the aiohttp error; any other
  ``aiohttp.ClientError`` (e.g. a reply cut off mid-body) becomes a bare ``ExchangeError`` *from*
  it. So the cause chain, not the class, says whether the request could have left the machine.
- HTTP 418/429 become ``DDoSProtection``; a JSON error body is mapped by the venue's code table
  before the HTTP status is looked at (Binance -2010 -> ``InvalidOrder``, -2013 ->
  ``OrderNotFound``, -1001/-1007 -> ``OperationFailed``/``RequestTimeout``).
- A code missing from that table ends in ``raise ExchangeError(feedback)  # unknown message``,
  and the tables themselves map some "we do not know" answers to a bare ``ExchangeError``:
  Bybit 10016 "System error" and 5004 "Server Timeout" (10000 "Server Timeout" is not listed at
  all), Binance's options API -1007 "execution status unknown". A bare ``ExchangeError`` is
  therefore no answer about the order.
- The error text is ``exchange.id + ' ' + body``, the venue's raw JSON reply (Binance uses
  ``exchange.id + ' ' + msg`` when it matched the message rather than the code), so the venue's
  own code can be read back from it.
"""

from __future__ import annotations

import enum
import json
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import ccxt

try:  # ccxt's async transport; absent only in an install without ccxt.async_support
    from aiohttp import ClientConnectorError, ClientError
except ImportError:  # pragma: no cover
    ClientConnectorError = ClientError = ()  # type: ignore[assignment,misc]


class ErrorMeaning(str, enum.Enum):
    REJECTED = "REJECTED"
    """The exchange definitely refused the request; for a create, no order exists."""
    UNKNOWN = "UNKNOWN"
    """The request may or may not have taken effect."""
    RETRY_LATER = "RETRY_LATER"
    """Throttled, in maintenance, or never sent (connection refused): the request was not
    accepted, try again after a pause."""
    NOT_FOUND = "NOT_FOUND"
    """The exchange says the order does not exist."""


class ConfirmedAbsent(Exception):
    """A lookup by client id that the venue answered in full without the order (e.g. a scan of
    its open and closed orders that completed and did not contain the id)."""


class LookupInconclusive(Exception):
    """A lookup that proves nothing either way (a scan call failed, or the id matched several
    orders). Never taken for absence."""


_RETRY_LATER = (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.OnMaintenance)

DEFINITE_ANSWERS: frozenset[type[BaseException]] = frozenset(
    {
        # the venue refused who we are or what we may do: nothing was executed
        ccxt.AuthenticationError,
        ccxt.PermissionDenied,
        ccxt.AccountNotEnabled,
        ccxt.AccountSuspended,
        # raised by ccxt itself before anything is sent
        ccxt.ArgumentsRequired,
        ccxt.NotSupported,
        ccxt.InvalidProxySettings,  # Exchange.fetch checks the proxy settings first
        ccxt.ExchangeClosedByUser,  # Exchange.fetch -> open(lazy=True), before the request
        # the venue refused this order, for a reason it named
        ccxt.BadRequest,
        ccxt.BadSymbol,
        ccxt.InsufficientFunds,
        ccxt.InvalidOrder,
        ccxt.OrderImmediatelyFillable,  # post-only that would take
        ccxt.OrderNotFillable,  # FOK/IOC/post-only refused (Binance -5021/-5022)
        ccxt.ContractUnavailable,  # OKX 51021-51030: contract not listed, suspended, settling
        ccxt.MarketClosed,
        ccxt.ManualInteractionNeeded,  # OKX 4088, Bybit 170241: a human must act on the account
        ccxt.RestrictedLocation,  # OKX 51155, Bybit 170209, KuCoin 400500
    }
)
"""The ccxt classes that are a definite "no" to the request. Left out on purpose, so UNKNOWN:
``ExchangeError`` itself (unmapped and "system error" codes); ``OperationRejected``, a bucket
ccxt also fills with "unknown error" answers (aster.py maps -1000 UNKNOWN to it); ``NoChange``,
``MarginModeAlreadySet``, ``InvalidAddress``, ``AddressPending`` (answers about settings and
withdrawals, which say nothing about an order); ``OrderNotCached`` (ccxt's own cache, not the
venue); ``DuplicateOrderId`` (the client id is taken: the order exists)."""

OUTCOME_UNKNOWN_CODES: Mapping[str, Mapping[str, frozenset[str] | None]] = {
    "binance": {
        # NEW_ORDER_REJECTED is also "insufficient balance", filter failures...: only this
        # message says the client id is taken
        "-2010": frozenset({"Duplicate order sent."}),
        "-4116": None,  # USD-M futures DUPLICATED_CLIENT_ORDER_ID (-> InvalidOrder on fapi)
    },
    "okx": {
        "51016": None,  # Duplicated clOrdId (in data[].sCode of order endpoints)
        "51011": None,  # Duplicated order ID
    },
    "bybit": {
        "110072": None,  # OrderLinkedID is duplicate
        "12141": None,  # Duplicate clientOrderId. (-> BadRequest)
        "170141": None,  # Duplicate clientOrderId (spot)
        "30001": None,  # order_link_id is repeated
        "10014": None,  # Request is duplicate (-> BadRequest)
        "110030": None,  # Duplicate orderId
        "140030": None,  # Duplicate orderId
        "170035": None,  # Submitted to the system for processing! (-> BadRequest)
        "170146": None,  # Order creation timeout (-> InvalidOrder)
        "170147": None,  # Order cancellation timeout (-> InvalidOrder)
    },
    "kucoin": {
        "126044": None,  # clientOid duplicate
        "126033": None,  # Duplicate order
        "408000": None,  # Network timeout, please try again later (-> BadRequest)
        # the generic bad-parameter code (also "account.available.amount"...): by its message
        "400100": frozenset({"validation.createOrder.clientOidDuplicated"}),
    },
}
"""Per venue family, the raw codes that ccxt maps to a definite class although they mean the
order (or the cancel) may have taken effect, each with the messages it needs (None: any)."""

VENUE_FAMILIES: Mapping[str, str] = {
    **dict.fromkeys(("binance", "binanceus", "binanceusdm", "binancecoinm"), "binance"),
    **dict.fromkeys(("okx", "myokx", "okxus"), "okx"),
    **dict.fromkeys(("bybit", "bybiteu", "bybitid"), "bybit"),
    **dict.fromkeys(("kucoin", "kucoinfutures"), "kucoin"),
}
"""ccxt ids whose class inherits the family's ``handle_errors`` and code table."""

_CODE_KEYS = ("code", "retCode", "ret_code", "sCode")
_MESSAGE_KEYS = ("msg", "retMsg", "ret_msg", "sMsg", "message")

_MAY_EXIST_TEXT = re.compile(
    r"duplicat|already exists?|repeated|time ?out|timed out|status unknown", re.IGNORECASE
)
"""The fallback for venues (and wordings) the code table does not know: "clientOid duplicate",
"Order creation timeout", "execution status unknown". It can only turn a reject into a lookup,
never the reverse, so a false match costs one lookup and a false miss is no worse than having no
fallback."""

_CHAIN_DEPTH = 8


def classify(error: BaseException) -> ErrorMeaning:
    """What ``error`` from an order call (create, fetch, cancel) proves about the order."""
    if isinstance(error, ConfirmedAbsent):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, LookupInconclusive):
        return ErrorMeaning.UNKNOWN
    if isinstance(error, ccxt.OrderNotFound):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, _RETRY_LATER) or never_sent(error):
        return ErrorMeaning.RETRY_LATER
    definite = type(error) in DEFINITE_ANSWERS
    if definite and not _transport_failure(error) and not may_exist(error):
        return ErrorMeaning.REJECTED
    # Everything else (a bare ExchangeError, a class nobody decided about, a bug in an adapter)
    # may have happened after the request left: assume the worst.
    return ErrorMeaning.UNKNOWN


def may_exist(error: BaseException) -> bool:
    """True if the venue's answer, whatever class ccxt gave it, says the order may exist.

    By the venue's raw code first, read back from the body ccxt puts in the text: codes are
    stable where wording is not ("Codes are universal, but messages can vary", Binance's
    error-code page). The text match only catches what the table does not list.
    """
    text = str(error)
    venue, _, body = text.partition(" ")
    table = OUTCOME_UNKNOWN_CODES.get(VENUE_FAMILIES.get(venue, ""), {})
    for code, message in _venue_codes(body):
        if code in table:
            messages = table[code]
            if messages is None or message in messages:
                return True
    return _MAY_EXIST_TEXT.search(text) is not None


def _venue_codes(body: str) -> Iterator[tuple[str, str | None]]:
    """``(code, message)`` of every error entry in a venue's JSON reply: the top-level one and
    those in its lists (OKX puts each order's ``sCode``/``sMsg`` in ``data[]``)."""
    start = body.find("{")
    if start < 0:
        return
    try:
        reply, _ = json.JSONDecoder().raw_decode(body, start)
    except ValueError:
        return
    todo: list[tuple[Any, int]] = [(reply, 0)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, list):
            todo.extend((item, depth + 1) for item in node)
            continue
        if not isinstance(node, dict) or depth > 3:
            continue
        code = next((node[k] for k in _CODE_KEYS if node.get(k) is not None), None)
        if code is not None:
            message = next((node[k] for k in _MESSAGE_KEYS if node.get(k) is not None), None)
            yield str(code), None if message is None else str(message)
        todo.extend((value, depth + 1) for value in node.values() if isinstance(value, list))


def never_sent(error: BaseException) -> bool:
    """True if the connection was never established, so no byte of the request left.

    aiohttp raises ``ClientConnectorError`` only while opening a connection (refused, no route,
    DNS, TLS handshake), and ccxt re-raises it as ``ExchangeNotAvailable`` from it. A POST is
    never retried by aiohttp on another connection, so for a create this means "not placed".
    """
    # Only explicit causes (``raise ... from``): an error merely raised *while handling* a refused
    # connection attempt (e.g. after a fallback address worked) proves nothing about this request.
    never = (ConnectionRefusedError, socket.gaierror, ClientConnectorError)
    return any(isinstance(link, never) for link in _chain(error, implicit=False))


def _transport_failure(error: BaseException) -> bool:
    """Raised from (or while handling) a transport error: the reply was lost, so even a
    definite-looking class is not the venue's answer."""
    causes = _chain(error, implicit=True)[1:]
    return any(isinstance(link, (ClientError, OSError)) for link in causes)


def _chain(error: BaseException, *, implicit: bool) -> list[BaseException]:
    """``error`` and its causes, nearest first: ``raise ... from`` causes, and with ``implicit``
    also the exception being handled when it was raised."""
    links: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in links and len(links) < _CHAIN_DEPTH:
        links.append(link)
        link = link.__cause__ or (link.__context__ if implicit else None)
    return links


_CREDENTIAL_IN_TEXT = re.compile(
    r"((?:signature|sign|api[_-]?key|apikey|secret|passphrase)=)[^&\s\"',]+", re.IGNORECASE
)


def redact_signed_params(text: str) -> str:
    """``text`` with the values of signature/key parameters of signed URLs and bodies removed."""
    return _CREDENTIAL_IN_TEXT.sub(r"\1<redacted>", text)


def describe(error: BaseException) -> str:
    """A one-line description for logs and the trade journal, with signed-URL parts removed."""
    text = redact_signed_params(str(error).strip())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
