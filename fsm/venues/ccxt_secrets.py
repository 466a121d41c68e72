"""Keep an exchange's API credentials out of logs and out of the error texts the engine stores.

ccxt's async transport logs every request at DEBUG with its headers
(``async_support/base/exchange.py::fetch``: ``self.logger.debug("%s %s, Request: %s %s", ...)``),
and Binance-style venues send the API key as a header (``X-MBX-APIKEY``). A bot that turns on
DEBUG logging would therefore write its key to its log files (and every request's signature).
``CredentialGuard`` adds one filter to the exchange's logger that rewrites any record containing a
registered credential or a ``signature=`` value, and gives the gateway a ``redact`` for error
texts before they reach the journal.

The filter sits on the logger object itself (found through ``exchange.logger``, so it works
through wrappers such as the CLI's call recorder), reads the credentials when a record is made
(keys set after start-up are covered too), and forgets an exchange when its guard is dropped.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from pairexec.fsm.venues.errors import redact_signed_params

_CREDENTIAL_ATTRIBUTES = ("apiKey", "secret", "password", "privateKey", "token", "uid")
_MIN_SECRET_LENGTH = 6
"""Shorter values (unset, "", a test's "x") would redact ordinary words."""
_REDACTED = "<redacted>"


class CredentialGuard:
    """The credentials of one exchange object, redacted from text and from its logger."""

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange
        _GUARDS.add(self)
        logger = getattr(exchange, "logger", None)
        if isinstance(logger, logging.Logger) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

    def secrets(self) -> list[str]:
        values = (getattr(self._exchange, name, None) for name in _CREDENTIAL_ATTRIBUTES)
        return [v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH]

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, _REDACTED)
        return text


_GUARDS: weakref.WeakSet[CredentialGuard] = weakref.WeakSet()


class _RedactCredentials(logging.Filter):
    """Rewrites a record whose message contains a credential of any live guard, or a signed
    request's ``signature=`` (ccxt logs signed URLs and bodies at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = redact_signed_params(message)
        for guard in list(_GUARDS):
            redacted = guard.redact(redacted)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _RedactCredentials()
