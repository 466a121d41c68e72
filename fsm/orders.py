"""What the engine knows about one order, and how a ccxt order dict maps onto it."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from fsm.client_ids import Leg


class OrderStatus(str, enum.Enum):
    INTENT = "INTENT"
    """Persisted with its client order id; create_order has not (known to have) returned."""
    UNKNOWN = "UNKNOWN"
    """create_order failed in a way that leaves its existence unknown: look it up."""
    ABSENT = "ABSENT"
    """A lookup by client order id confirmed the exchange has no such order: resend, same id."""
    OPEN = "OPEN"
    """On the exchange and may still fill."""
    CLOSED = "CLOSED"
    """Final, filled."""
    CANCELED = "CANCELED"
    """Final, cancelled or expired; ``filled`` may be partial."""
    REJECTED = "REJECTED"
    """Final: the exchange refused it (or it never got through); nothing filled."""


FINAL_ORDER_STATUSES = frozenset({OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.REJECTED})

_CCXT_STATUS = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}


@dataclass(frozen=True)
class OrderFacts:
    """An order row as the pure decision logic sees it."""

    leg: Leg
    attempt: int
    client_order_id: str
    symbol: str
    side: str
    amount: float
    status: OrderStatus
    filled: float = 0.0
    sends: int = 0
    exchange_order_id: str | None = None
    average: float | None = None
    """The average fill price the exchange reported, if any."""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES


@dataclass(frozen=True)
class ExchangeReport:
    """The parts of a ccxt order dict the engine acts on."""

    exchange_order_id: str
    status: OrderStatus
    filled: float
    average: float | None


class MalformedOrder(ValueError):
    """The exchange answered with something that is not an order we can act on."""


def parse_order(order: Any, requested_amount: float) -> ExchangeReport:
    """Read a ccxt unified order dict; MalformedOrder if it lacks an id (outcome unknown)."""
    if not isinstance(order, dict) or not order.get("id"):
        raise MalformedOrder(f"reply without an order id: {order!r:.200}")
    raw_status = order.get("status")
    status = _CCXT_STATUS.get(str(raw_status).lower(), OrderStatus.OPEN) if raw_status else None
    filled = _number(order.get("filled"))
    if status is None:
        # Some exchanges answer create_order with only an id: treat as open, settle reads it.
        status = OrderStatus.OPEN
    if filled is None:
        filled = requested_amount if status is OrderStatus.CLOSED else 0.0
    if status is OrderStatus.REJECTED:
        filled = 0.0
    return ExchangeReport(
        exchange_order_id=str(order["id"]),
        status=status,
        filled=filled,
        average=_number(order.get("average")),
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
