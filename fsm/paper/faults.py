"""What a simulated venue can do wrong, named once for every venue that simulates one.

The paper exchange's chaos, the in-memory fake of the tests and the HTTP fake of Binance each
make a venue misbehave; a fault that means the same thing on all of them has one name here, so
a scenario reads the same whichever venue plays it. Each venue does it in its own terms (the
paper exchange raises ccxt's exception, the HTTP fake answers as Binance would and lets the
real ccxt class raise it), and each may have faults of its own that have no counterpart
elsewhere (a truncated HTTP body, a process that dies mid-call).

"Accept" is the venue acting on the call: for a create, placing the order. Whether that
happened is what a fault's name must tell, because it is what the engine cannot see.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Fault(str, enum.Enum):
    """One call's fault: what the venue does instead of acting on it and answering plainly."""

    __str__ = str.__str__  # the name as a test or a chaos text writes it, on any Python

    OK = "ok"
    """Nothing wrong: a place holder in a queue of faults, so that a later call is faulted."""
    TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"
    """The call times out and the venue never acts on it: nothing placed, looked up or
    cancelled."""
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    """The venue acts on the call (the order is placed), but the caller times out waiting for
    the answer: a ghost order that only a lookup can find."""
    DROP = "drop"
    """The connection is lost before the venue gets the request: nothing done, no answer."""
    DROP_AFTER_ACCEPT = "drop_after_accept"
    """The venue acts on the call, then the connection is lost: no answer."""
    ERROR_AFTER_ACCEPT = "error_after_accept"
    """The order is placed, then the call fails with an error no table recognises (a bare
    ccxt.ExchangeError, "System error" as ccxt raises Bybit's 10016): only a lookup can tell it
    from a refusal."""
    REJECT_FUNDS = "reject_funds"
    """The venue refuses the order for want of funds (ccxt.InsufficientFunds): nothing
    placed."""
    REJECT_INVALID = "reject_invalid"
    """The venue refuses the order as invalid (ccxt.InvalidOrder): nothing placed."""
    RATE_LIMIT = "rate_limit"
    """The venue throttles the call (ccxt.RateLimitExceeded): nothing done, try later."""
    NOT_FOUND = "not_found"
    """The venue says the order does not exist (ccxt.OrderNotFound), whether it does or not:
    a lookup that lags or lies."""
    AUTH_ERROR = "auth_error"
    """The venue refuses the call's credentials (ccxt.AuthenticationError): nothing done."""
    OVERFILL_AFTER_ACCEPT = "overfill_after_accept"
    """The venue acts on the call, then reports 1.5 x the order's amount as filled."""
    OTHER_ORDER_AFTER_ACCEPT = "other_order_after_accept"
    """The venue acts on the call, then answers with another order (its client id, symbol
    and exchange id), the newest one it has."""
    NO_ID_AFTER_ACCEPT = "no_id_after_accept"
    """The venue acts on the call, then answers without the order's id (an empty 200, a dict
    ccxt cannot read an order from): only a lookup by client id can find it."""
    NO_FILL_AFTER_ACCEPT = "no_fill_after_accept"
    """The venue acts on the call, then reports the order done without saying how much
    filled."""


LIES = (Fault.OVERFILL_AFTER_ACCEPT, Fault.OTHER_ORDER_AFTER_ACCEPT, Fault.NO_FILL_AFTER_ACCEPT)
"""The faults that answer with a report that is not the order's truth (the book is right)."""


@dataclass(frozen=True)
class Fills:
    """How a venue fills the orders on one market: not a fault, the market's liquidity. The
    defaults fill every order at once and in full."""

    fill: float = 1.0
    """Fraction of each order that fills (partial fill ratio)."""
    leave_open: bool = False
    """A partly filled order stays "open" (until cancelled) instead of "closed"."""
    fills_while_open: float = 0.0
    """Extra fraction of the amount filled on each later lookup of an open order."""
