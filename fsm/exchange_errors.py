"""Sorting exchange errors by what they mean for the order, not by their type name.

Only a definite answer from the exchange lets the engine treat an order as not placed. Anything
that may have reached the exchange (timeouts, dropped connections, truncated or garbled replies,
5xx, errors we do not recognise) means the order's existence is UNKNOWN and must be looked up by
client order id. ``classify`` is the one place that decides this; the gateway, the per-venue
lookups (``fsm.venues.ccxt_lookup``) and the engine only act on its answer.

How ccxt reports what (verified in ccxt 4.5's ``async_support/base/exchange.py::fetch`` and
``binance.py::handle_errors``):

- aiohttp timeouts become ``RequestTimeout``; ``aiohttp.ClientConnectionError`` (refused, reset,
  server disconnected) becomes ``ExchangeNotAvailable`` *from* the aiohttp error; any other
  ``aiohttp.ClientError`` (e.g. a reply cut off mid-body) becomes a bare ``ExchangeError`` *from*
  it. So the cause chain, not the class, says whether the request could have left the machine.
- HTTP 418/429 become ``DDoSProtection``; a JSON error body is mapped by the venue's code table
  before the HTTP status is looked at (Binance -2010 -> ``InvalidOrder``, -2013 ->
  ``OrderNotFound``, -1001/-1007 -> ``OperationFailed``/``RequestTimeout``).
"""

from __future__ import annotations

import asyncio
import enum
import re
import socket

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
_UNKNOWN = (
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
    ccxt.OperationFailed,  # NetworkError, RequestTimeout, ExchangeNotAvailable, BadResponse...
    ccxt.DuplicateOrderId,  # the client id is taken: the order exists, look it up
)
_DUPLICATE = re.compile(r"duplicat", re.IGNORECASE)
"""How venues say "this client id is already used": Binance -2010 "Duplicate order sent.", OKX
51016 "Duplicated clOrdId", Bybit 110072 "OrderLinkedID is duplicate" / 170141 "Duplicate
clientOrderId". ccxt maps them to InvalidOrder/BadRequest (a reject), but the order exists."""
_CHAIN_DEPTH = 8


def classify(error: BaseException) -> ErrorMeaning:
    if isinstance(error, ConfirmedAbsent):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, LookupInconclusive):
        return ErrorMeaning.UNKNOWN
    if isinstance(error, ccxt.OrderNotFound):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, _RETRY_LATER) or never_sent(error):
        return ErrorMeaning.RETRY_LATER
    if isinstance(error, _UNKNOWN):
        return ErrorMeaning.UNKNOWN
    if isinstance(error, ccxt.ExchangeError):
        if _transport_failure(error) or _DUPLICATE.search(str(error)):
            return ErrorMeaning.UNKNOWN
        return ErrorMeaning.REJECTED
    # Anything else (a bug in an adapter, an unexpected library error) may have happened after
    # the request left: assume the worst.
    return ErrorMeaning.UNKNOWN


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
    """An ExchangeError that ccxt raised from a transport error: the reply was lost, not a no."""
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
