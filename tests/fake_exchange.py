"""An in-memory exchange with the ccxt async unified methods the engine uses, and scripted faults.

It behaves like a real venue where it matters for safety: orders are keyed by client order id
and a second create with a used id is refused (ccxt.DuplicateOrderId), a timeout can happen
before or after the order is accepted, and lookups by client id see exactly what was accepted.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the engine catches it."""


@dataclass
class SymbolBehaviour:
    fill_ratio: float = 1.0
    """Fraction of each order that fills."""
    leave_open: bool = False
    """A partly filled order stays open (until cancelled) instead of closing."""
    fills_while_open: float = 0.0
    """Extra fraction filled when an open order is next fetched (fills during settle)."""


@dataclass
class Call:
    method: str
    symbol: str | None
    side: str | None = None
    amount: float | None = None
    client_order_id: str | None = None


@dataclass
class FakeExchange:
    latency: float = 0.0
    behaviours: dict[tuple[str, str | None], SymbolBehaviour] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    _faults: dict[tuple[str, str], deque[str]] = field(default_factory=lambda: defaultdict(deque))
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    on_create: Callable[[Call], None] | None = None
    """Test hook run when a create_order arrives, before anything else happens."""
    after_cancel: Callable[[], Awaitable[None]] | None = None
    """Test hook run after each successful cancel (e.g. to change how later orders fill)."""

    # --- scripting -----------------------------------------------------------------------

    def behave(self, symbol: str, side: str | None = None, **kwargs: Any) -> None:
        """How orders on ``symbol`` (only ``side`` ones, if given) fill."""
        self.behaviours[(symbol, side)] = SymbolBehaviour(**kwargs)

    def _behaviour(self, symbol: str, side: str) -> SymbolBehaviour:
        return (
            self.behaviours.get((symbol, side))
            or self.behaviours.get((symbol, None))
            or SymbolBehaviour()
        )

    def fail(self, method: str, symbol: str, *faults: str) -> None:
        """Queue faults for the next calls of ``method`` on ``symbol``, consumed in order.

        "ok" passes one call through unharmed (to fault a later call).
        create_order: timeout_before, timeout_after, connection_error, no_id, rejected_funds,
        rejected_invalid, rate_limit, crash_before, crash_after, hang_after.
        fetch_order: timeout, not_found, rate_limit, auth_error, crash.
        cancel_order: timeout.
        """
        self._faults[(method, symbol)].extend(faults)

    def _next_fault(self, method: str, symbol: str) -> str | None:
        queue = self._faults.get((method, symbol))
        return queue.popleft() if queue else None

    # --- views for assertions ------------------------------------------------------------

    def create_calls(self, symbol: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == "create_order" and symbol in (None, c.symbol)]

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def accepted(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if symbol in (None, o["symbol"])]

    # --- ccxt unified methods ------------------------------------------------------------

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        cid = (params or {}).get("clientOrderId")
        call = Call("create_order", symbol, side, amount, cid)
        self.calls.append(call)
        if self.on_create is not None:
            self.on_create(call)
        await asyncio.sleep(self.latency)
        fault = self._next_fault("create_order", symbol)
        if fault == "timeout_before":
            raise ccxt.RequestTimeout("fake: request timed out before reaching the exchange")
        if fault == "connection_error":
            raise ConnectionError("fake: connection reset")
        if fault == "crash_before":
            raise SimulatedCrash("before accept")
        if fault == "rejected_funds":
            raise ccxt.InsufficientFunds("fake: insufficient balance")
        if fault == "rejected_invalid":
            raise ccxt.InvalidOrder("fake: invalid order")
        if fault == "rate_limit":
            raise ccxt.RateLimitExceeded("fake: too many requests")
        if cid is not None and any(o["clientOrderId"] == cid for o in self.orders.values()):
            raise ccxt.DuplicateOrderId(f"fake: duplicate clientOrderId {cid}")
        order = self._accept(symbol, type, side, amount, cid)
        if fault == "timeout_after":
            raise TimeoutError("fake: API timeout - no response")
        if fault == "crash_after":
            raise SimulatedCrash("after accept")
        if fault == "hang_after":
            await asyncio.sleep(3600)
        if fault == "no_id":
            return {"info": {}, "status": None}
        return dict(order)

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        cid = (params or {}).get("clientOrderId")
        self.calls.append(Call("fetch_order", symbol, client_order_id=cid))
        await asyncio.sleep(self.latency)
        fault = self._next_fault("fetch_order", symbol or "")
        if fault == "timeout":
            raise ccxt.RequestTimeout("fake: lookup timed out")
        if fault == "crash":
            raise SimulatedCrash("during lookup")
        if fault == "rate_limit":
            raise ccxt.RateLimitExceeded("fake: too many requests")
        if fault == "auth_error":
            raise ccxt.AuthenticationError("fake: invalid signature")
        order = self._find(id, cid)
        if order is None or fault == "not_found":
            raise ccxt.OrderNotFound(f"fake: order {cid or id} not found")
        self._progress(order)
        return dict(order)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        cid = (params or {}).get("clientOrderId")
        self.calls.append(Call("cancel_order", symbol, client_order_id=cid))
        await asyncio.sleep(self.latency)
        fault = self._next_fault("cancel_order", symbol or "")
        if fault == "timeout":
            raise ccxt.RequestTimeout("fake: cancel timed out")
        order = self._find(id, cid)
        if order is None or order["status"] != "open":
            raise ccxt.OrderNotFound(f"fake: no open order {cid or id}")
        order["status"] = "canceled"
        order["remaining"] = 0.0
        if self.after_cancel is not None:
            await self.after_cancel()
        return dict(order)

    # --- matching ------------------------------------------------------------------------

    def _accept(
        self, symbol: str, type: str, side: str, amount: float, cid: str | None
    ) -> dict[str, Any]:
        behaviour = self._behaviour(symbol, side)
        filled = amount * behaviour.fill_ratio
        status = "open" if behaviour.leave_open and filled < amount else "closed"
        order_id = str(next(self._ids))
        order = {
            "id": order_id,
            "clientOrderId": cid,
            "symbol": symbol,
            "type": type,
            "side": side,
            "amount": amount,
            "filled": filled,
            "remaining": amount - filled,
            "status": status,
            "average": 100.0,
        }
        self.orders[order_id] = order
        return order

    def _progress(self, order: dict[str, Any]) -> None:
        behaviour = self._behaviour(order["symbol"], order["side"])
        if order["status"] == "open" and behaviour.fills_while_open:
            order["filled"] = min(
                order["amount"], order["filled"] + order["amount"] * behaviour.fills_while_open
            )
            order["remaining"] = order["amount"] - order["filled"]
            if order["remaining"] <= 1e-12:
                order["status"] = "closed"

    def _find(self, id: str, cid: str | None) -> dict[str, Any] | None:
        if cid is not None:
            return next((o for o in self.orders.values() if o["clientOrderId"] == cid), None)
        return self.orders.get(id)
