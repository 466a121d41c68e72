"""An in-memory exchange with the ccxt async unified methods the engine uses, and scripted faults.

It behaves like a real venue where it matters for safety: orders are keyed by client order id
and a second create with a used id is refused (ccxt.DuplicateOrderId), a timeout can happen
before or after the order is accepted, and lookups by client id see exactly what was accepted.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ccxt

from pairexec.fsm.paper import Fault, Fills
from pairexec.fsm.sim.crash import SimulatedCrash
from pairexec.fsm.venues.ccxt_ids import unified_client_id

ANY = "*"
"""A fault queued for this "symbol" strikes a call on any symbol that has none of its own."""


@dataclass
class Script:
    """What a test scripts on a fake venue (this one and ``support.fake_binance``): faults queued
    per call kind and symbol, consumed in order, and how orders fill per symbol and side."""

    known: frozenset[str]
    """The fault names this venue acts on: a misspelt one must fail the test that queues it,
    not pass it with the fault silently never happening."""
    faults: dict[tuple[str, str], deque[str]] = field(default_factory=lambda: defaultdict(deque))
    fills: dict[tuple[str, str | None], Fills] = field(default_factory=dict)

    def queue(self, kind: str, symbol: str | None, faults: Iterable[str]) -> None:
        faults = list(faults)
        unknown = [f for f in faults if f not in self.known]
        if unknown:
            raise ValueError(
                f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(self.known))}"
            )
        self.faults[(kind, symbol or ANY)].extend(faults)

    def next_fault(self, kind: str, symbol: str | None) -> str | None:
        for key in ((kind, symbol or ANY), (kind, ANY)):
            queue = self.faults.get(key)
            if queue:
                return queue.popleft()
        return None

    def fills_for(self, symbol: str, side: str) -> Fills:
        """The fills for ``side`` orders on ``symbol``: set for that side, else for the symbol."""
        return self.fills.get((symbol, side)) or self.fills.get((symbol, None)) or Fills()


KNOWN_FAULTS = frozenset({*Fault, "crash_before", "crash_after", "hang_after", "crash"})
"""``pairexec.fsm.paper.Fault``, and this fake's own: the process dies (or hangs) mid-call."""


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
    script: Script = field(default_factory=lambda: Script(KNOWN_FAULTS))
    calls: list[Call] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    on_create: Callable[[Call], None] | None = None
    """Test hook run when a create_order arrives, before anything else happens."""
    after_accept: Callable[[Call], None] | None = None
    """Test hook run once a create_order's order is accepted, before the answer (it may raise:
    the venue placed the order, then answered with an error)."""
    after_cancel: Callable[[], Awaitable[None]] | None = None
    """Test hook run after each successful cancel (e.g. to change how later orders fill)."""

    # --- scripting -----------------------------------------------------------------------

    def behave(
        self,
        symbol: str,
        side: str | None = None,
        *,
        fill: float = 1.0,
        leave_open: bool = False,
        fills_while_open: float = 0.0,
    ) -> None:
        """How orders on ``symbol`` (only ``side`` ones, if given) fill (see ``Fills``)."""
        self.script.fills[(symbol, side)] = Fills(fill, leave_open, fills_while_open)

    def fail(self, method: str, symbol: str, *faults: str) -> None:
        """Queue faults for the next calls of ``method`` on ``symbol``, consumed in order.

        Faults of ``pairexec.fsm.paper.Fault``: ``ok`` (pass one call through unharmed, to
        fault a later one); create_order: ``timeout_before_accept``, ``timeout_after_accept``
        (a builtin TimeoutError), ``drop``, ``no_id_after_accept``, ``reject_funds``,
        ``reject_invalid``, ``rate_limit``; fetch_order: ``timeout_before_accept``,
        ``not_found``, ``rate_limit``, ``auth_error``; cancel_order: ``timeout_before_accept``.
        This fake's own (the process dies or hangs): create_order: crash_before, crash_after,
        hang_after; fetch_order: crash.
        """
        self.script.queue(method, symbol, faults)

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
        call, fault = await self._arrive("create_order", symbol, params, side, amount)
        if fault == Fault.TIMEOUT_BEFORE_ACCEPT:
            raise ccxt.RequestTimeout("fake: request timed out before reaching the exchange")
        if fault == Fault.DROP:
            raise ConnectionError("fake: connection reset")
        if fault == "crash_before":
            raise SimulatedCrash("before accept")
        if fault == Fault.REJECT_FUNDS:
            raise ccxt.InsufficientFunds("fake: insufficient balance")
        if fault == Fault.REJECT_INVALID:
            raise ccxt.InvalidOrder("fake: invalid order")
        if fault == Fault.RATE_LIMIT:
            raise ccxt.RateLimitExceeded("fake: too many requests")
        cid = call.client_order_id
        if cid is not None and any(o["clientOrderId"] == cid for o in self.orders.values()):
            raise ccxt.DuplicateOrderId(f"fake: duplicate clientOrderId {cid}")
        order = self._accept(symbol, type, side, amount, cid)
        if self.after_accept is not None:
            self.after_accept(call)
        if fault == Fault.TIMEOUT_AFTER_ACCEPT:
            raise TimeoutError("fake: API timeout - no response")
        if fault == "crash_after":
            raise SimulatedCrash("after accept")
        if fault == "hang_after":
            await asyncio.sleep(3600)
        if fault == Fault.NO_ID_AFTER_ACCEPT:
            return {"info": {}, "status": None}
        return dict(order)

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        call, fault = await self._arrive("fetch_order", symbol, params)
        if fault == Fault.TIMEOUT_BEFORE_ACCEPT:
            raise ccxt.RequestTimeout("fake: lookup timed out")
        if fault == "crash":
            raise SimulatedCrash("during lookup")
        if fault == Fault.RATE_LIMIT:
            raise ccxt.RateLimitExceeded("fake: too many requests")
        if fault == Fault.AUTH_ERROR:
            raise ccxt.AuthenticationError("fake: invalid signature")
        order = self._find(id, call.client_order_id)
        if order is None or fault == Fault.NOT_FOUND:
            raise ccxt.OrderNotFound(f"fake: order {call.client_order_id or id} not found")
        self._progress(order)
        return dict(order)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        call, fault = await self._arrive("cancel_order", symbol, params)
        if fault == Fault.TIMEOUT_BEFORE_ACCEPT:
            raise ccxt.RequestTimeout("fake: cancel timed out")
        order = self._find(id, call.client_order_id)
        if order is None or order["status"] != "open":
            raise ccxt.OrderNotFound(f"fake: no open order {call.client_order_id or id}")
        order["status"] = "canceled"
        order["remaining"] = 0.0
        if self.after_cancel is not None:
            await self.after_cancel()
        return dict(order)

    async def _arrive(
        self,
        method: str,
        symbol: str | None,
        params: dict[str, Any] | None,
        side: str | None = None,
        amount: float | None = None,
    ) -> tuple[Call, str | None]:
        """What every call meets first: it is recorded, waits out the latency, draws a fault."""
        call = Call(method, symbol, side, amount, unified_client_id(params))
        self.calls.append(call)
        if method == "create_order" and self.on_create is not None:
            self.on_create(call)
        await asyncio.sleep(self.latency)
        return call, self.script.next_fault(method, symbol)

    # --- matching ------------------------------------------------------------------------

    def _accept(
        self, symbol: str, type: str, side: str, amount: float, cid: str | None
    ) -> dict[str, Any]:
        fills = self.script.fills_for(symbol, side)
        filled = amount * fills.fill
        status = "open" if fills.leave_open and filled < amount else "closed"
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
        fills = self.script.fills_for(order["symbol"], order["side"])
        if order["status"] == "open" and fills.fills_while_open:
            order["filled"] = min(
                order["amount"], order["filled"] + order["amount"] * fills.fills_while_open
            )
            order["remaining"] = order["amount"] - order["filled"]
            if order["remaining"] <= 1e-12:
                order["status"] = "closed"

    def _find(self, id: str, cid: str | None) -> dict[str, Any] | None:
        if cid is not None:
            return next((o for o in self.orders.values() if o["clientOrderId"] == cid), None)
        return self.orders.get(id)
