"""How a ccxt order dict maps onto an order the engine knows (``pairexec.fsm.model``), checked
before it is believed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pairexec.fsm.model import Fee, OrderFacts, OrderStatus

_CCXT_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}


@dataclass(frozen=True)
class ExchangeReport:
    """The parts of a ccxt order dict the engine acts on."""

    exchange_order_id: str
    status: OrderStatus
    filled: float
    average: float | None
    fees: tuple[Fee, ...] | None = None
    """The order's fees as reported (summed per currency), None if the reply gives none."""


class MalformedOrder(ValueError):
    """The exchange answered with something that is not an order we can act on."""


class NotBelievable(MalformedOrder):
    """The reply is an order, but it cannot be this order as it stands: acting on it would size
    a hedge or an unwind from someone else's order or from an impossible fill. Nothing is
    recorded from it; the order is looked up again (outcome unknown), and a trade whose
    lookups keep answering like this is parked for a human."""


FILL_TOLERANCE = 1e-9
"""How far (relative to the amount) a reported fill may exceed the order's amount and still
be the whole amount. Amounts are floored to the market's step before they are sent and venues
echo them as decimal strings, so a true full fill differs from ``amount`` only by float noise
(about 1e-16 relative, more after a string round trip of a long decimal). 1e-9 is far above
that, and below one step of any order of fewer than 10^9 steps, so an over-fill by even one
lot is not forgiven. It is the noise level of the paper exchange and of the engine's
``hedge_tolerance`` too."""


def parse_order(order: Any, facts: OrderFacts, *, new_send: bool = False) -> ExchangeReport:
    """Read a ccxt unified order dict as the state of ``facts``' order, checked first.

    MalformedOrder if it lacks an id; NotBelievable if it names another order (client id,
    symbol, or, once we know it, exchange id) or reports a fill that cannot be: negative,
    above the amount, below a fill already reported, on a rejected order, or missing on a
    final order (a "closed" reply without ``filled`` is not a full fill: the fill is unknown).

    ``new_send``: a create reply. It may carry a new exchange id (a resend after the order
    was confirmed absent), and "closed" with nothing filled is not believed from it either:
    ccxt's binance reads a reply without ``executedQty`` as filled 0, which would fail a leg A
    that filled. From a lookup it is the venue's considered answer and is taken (some venues
    and test doubles close a market order that got nothing, others cancel it).
    """
    if not isinstance(order, dict) or not order.get("id"):
        raise MalformedOrder(f"reply without an order id: {order!r:.200}")
    exchange_order_id = str(order["id"])
    _same_order(order, facts, None if new_send else facts.exchange_order_id, exchange_order_id)
    raw_status = order.get("status")
    status = _CCXT_STATUS.get(str(raw_status).lower(), OrderStatus.OPEN) if raw_status else None
    if status is None:
        # Some exchanges answer create_order with only an id: treat as open, settle reads it.
        status = OrderStatus.OPEN
    filled = _number(order.get("filled"))
    ended = status in (OrderStatus.CLOSED, OrderStatus.CANCELED)
    if (filled is None and ended) or (new_send and not filled and status is OrderStatus.CLOSED):
        raise NotBelievable(
            f"reply for {facts.client_order_id}: {raw_status} without a fill "
            "(how much filled is unknown)"
        )
    if filled is None:
        filled = 0.0  # open (settle reads it again) or rejected (nothing filled)
    filled = _sane_fill(filled, status, facts)
    return ExchangeReport(
        exchange_order_id=exchange_order_id,
        status=status,
        filled=filled,
        average=_number(order.get("average")),
        fees=parse_fees(order),
    )


def parse_fees(order: dict[str, Any]) -> tuple[Fee, ...] | None:
    """The fees of a ccxt order dict, summed per currency; None if it reports none.

    ccxt gives ``fees`` (a list: several currencies, or ``fee`` None beside it as on Gate) and
    ``fee`` (one, often the first of ``fees`` again): ``fees`` when it has entries, else
    ``fee``, never both added. Costs keep ccxt's unified sign (ccxt turns OKX's and Bitget's
    negative "fee charged" into a positive cost; a negative one is a rebate). An entry
    without a finite non-zero cost or a currency is skipped."""
    entries = order.get("fees")
    if not isinstance(entries, (list, tuple)) or not any(isinstance(e, dict) for e in entries):
        single = order.get("fee")
        entries = [single] if isinstance(single, dict) else []
    totals: dict[str, float] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        cost, currency = _number(entry.get("cost")), entry.get("currency")
        if not cost or not math.isfinite(cost) or not currency:
            continue  # None, 0 (Gate lists every kind of fee, most of them 0), inf
        totals[str(currency)] = totals.get(str(currency), 0.0) + cost
    if not totals:
        return None
    return tuple(Fee(currency, cost) for currency, cost in totals.items())


def _same_order(
    order: dict[str, Any], facts: OrderFacts, known_id: str | None, reply_id: str
) -> None:
    """NotBelievable unless every identity the reply gives is ``facts``' own. Venues and test
    doubles omit some of them (the paper exchange always sends its client id, not every venue
    echoes it), so only those present are compared."""
    cid = order.get("clientOrderId")
    if cid not in (None, "") and str(cid) != facts.client_order_id:
        raise NotBelievable(
            f"reply for {facts.client_order_id} is another order's: client id {cid}"
        )
    symbol = order.get("symbol")
    if symbol not in (None, "") and str(symbol) != facts.symbol:
        raise NotBelievable(
            f"reply for {facts.client_order_id} ({facts.symbol}) is another order's: "
            f"symbol {symbol}"
        )
    if known_id is not None and reply_id != known_id:
        raise NotBelievable(
            f"reply for {facts.client_order_id} (exchange id {known_id}) is another order's: "
            f"exchange id {reply_id}"
        )


def _sane_fill(filled: float, status: OrderStatus, facts: OrderFacts) -> float:
    """``filled`` if it can be this order's fill (float noise above the amount clipped to the
    amount); NotBelievable otherwise."""
    cid, amount = facts.client_order_id, facts.amount
    slack = FILL_TOLERANCE * max(amount, facts.filled)
    if filled < 0:
        raise NotBelievable(f"reply for {cid}: negative fill {filled:g}")
    if filled > amount + slack:
        raise NotBelievable(f"reply for {cid}: filled {filled:g} of an order of {amount:g}")
    if filled < facts.filled - slack:
        raise NotBelievable(
            f"reply for {cid}: filled {filled:g}, less than the {facts.filled:g} reported before"
        )
    if status is OrderStatus.REJECTED and filled > 0:
        raise NotBelievable(f"reply for {cid}: rejected, yet filled {filled:g}")
    return min(filled, amount)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
