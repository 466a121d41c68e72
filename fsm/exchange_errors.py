"""Sorting exchange errors by what they mean for the order, not by their type name.

Only a definite answer from the exchange lets the engine treat an order as not placed. Anything
that may have reached the exchange (timeouts, dropped connections, garbled replies, errors we do
not recognise) means the order's existence is UNKNOWN and must be looked up by client order id.
"""

from __future__ import annotations

import asyncio
import enum

import ccxt


class ErrorMeaning(str, enum.Enum):
    REJECTED = "REJECTED"
    """The exchange definitely refused the request; for a create, no order exists."""
    UNKNOWN = "UNKNOWN"
    """The request may or may not have taken effect."""
    RETRY_LATER = "RETRY_LATER"
    """Throttled or in maintenance: the request was not accepted, try again after a pause."""
    NOT_FOUND = "NOT_FOUND"
    """The exchange says the order does not exist."""


_RETRY_LATER = (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.OnMaintenance)
_UNKNOWN = (
    TimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
    ccxt.OperationFailed,  # NetworkError, RequestTimeout, ExchangeNotAvailable, BadResponse...
    ccxt.DuplicateOrderId,  # the client id is taken: the order exists, look it up
)


def classify(error: BaseException) -> ErrorMeaning:
    if isinstance(error, ccxt.OrderNotFound):
        return ErrorMeaning.NOT_FOUND
    if isinstance(error, _RETRY_LATER):
        return ErrorMeaning.RETRY_LATER
    if isinstance(error, _UNKNOWN):
        return ErrorMeaning.UNKNOWN
    if isinstance(error, ccxt.ExchangeError):
        return ErrorMeaning.REJECTED
    # Anything else (a bug in an adapter, an unexpected library error) may have happened after
    # the request left: assume the worst.
    return ErrorMeaning.UNKNOWN


def describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
