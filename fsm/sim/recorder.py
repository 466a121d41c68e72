"""Every exchange call that reaches the venue, recorded and audited as it happens.

Two guarantees can only be checked at the moment of the call, not from the final state:

- persist before send: when ``create_order`` goes out, the order's row must already be committed
  with status INTENT (a first send, a rate-limited retry, or a resend after a lookup confirmed
  the order absent — each of which the engine commits first);
- never a blind resend: the venue must never answer ``DuplicateOrderId``, i.e. the engine never
  sends a client order id the exchange already has;
- never a leg B or unwind order the market must refuse (below its step, minimum amount or
  minimum order value): the venue must not answer one with ``InvalidOrder`` unless chaos made
  it up, or the engine could get no price for it. (Leg A's amount is the bot's; below a
  minimum order value the venue refuses it.)

The log is also the run's fingerprint: same seed, same calls, in the same order.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt

from pairexec.fsm.request import market_key
from pairexec.fsm.sim.crash import LeaseWatch
from pairexec.fsm.sim.fast_store import ScenarioDb
from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall


@dataclass(frozen=True)
class Call:
    phase: str
    method: str
    symbol: str | None
    side: str | None
    amount: float | None
    client_order_id: str | None
    result: str
    at: float
    """Virtual time of the call."""
    venue: str | None = None
    """The venue called (None: the one exchange of a single-venue run)."""


@dataclass
class CallLog:
    """Shared by the recorders of every engine of one scenario (trading, then recoveries)."""

    calls: list[Call] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    """Chaos faults the venue injected, by exception type."""
    partial_fills: int = 0
    violations: list[str] = field(default_factory=list)
    priced: set[tuple[str, str]] = field(default_factory=set)
    """(phase, market): the venue told that phase's engine the market's price, so the engine
    could check a minimum order value."""

    def fingerprint(self, extra: str = "") -> str:
        """A digest of the calls with client ids numbered by first use (trade ids are random)."""
        names: dict[str, str] = {}
        digest = hashlib.sha256(extra.encode())
        for c in self.calls:
            cid = names.setdefault(c.client_order_id or "", f"c{len(names)}")
            row = (c.phase, c.method, c.symbol, c.side, c.amount, cid, c.result, round(c.at, 6))
            # a venue only where there are several: single-venue digests stay what they were
            digest.update(repr(row if c.venue is None else (*row, c.venue)).encode())
        return digest.hexdigest()[:16]


class RecordingExchange(ExchangeProxy):
    """Wraps the paper exchange for one engine; other attributes pass through untouched."""

    def __init__(
        self,
        exchange: Any,
        log: CallLog,
        db: ScenarioDb,
        phase: str,
        venue: str | None = None,
        leases: LeaseWatch | None = None,
    ) -> None:
        super().__init__(exchange)
        self._log = log
        self._db = db
        self._leases = leases
        self._phase = phase
        self._venue = venue

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        cid = call.client_order_id
        if call.method != "create_order":
            return await self._record(call.method, call.symbol, None, None, cid, forward())
        row = await self._db.order_row(cid) if cid else None
        status, leg = (row.status, row.leg) if row else (None, None)
        if status != "INTENT":
            self._log.violations.append(
                f"create_order {cid} sent while its order row is {status or 'not committed'}: "
                "persist-before-send broken"
            )
        lapsed = self._leases.lapsed(row.trade_id, self._now()) if row and self._leases else None
        if lapsed:
            self._log.violations.append(f"create_order {cid} sent {lapsed}: a lapsed lease")
        try:
            return await self._record(
                "create_order", call.symbol, call.side, call.amount, cid, forward()
            )
        except ccxt.InvalidOrder as exc:
            # Leg A's size is the bot's (the venue judges it); the engine sizes the rest.
            if (
                leg != "A"
                and (self._phase, market_key(call.symbol or "", self._venue)) in self._log.priced
                and "paper chaos" not in str(exc)
            ):
                self._log.violations.append(
                    f"create_order {cid} (leg {leg}): sent an order the market must refuse ({exc})"
                )
            raise

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def fetch_ticker(self, symbol: str, params: dict[str, Any] | None = None) -> Any:
        call = self._exchange.fetch_ticker(symbol, params)
        ticker = await self._record("fetch_ticker", symbol, None, None, None, call)
        self._log.priced.add((self._phase, market_key(symbol, self._venue)))
        return ticker

    async def _record(
        self,
        method: str,
        symbol: str | None,
        side: str | None,
        amount: float | None,
        cid: str | None,
        call: Any,
    ) -> Any:
        at = asyncio.get_running_loop().time()
        try:
            order = await call
        except BaseException as exc:
            chaos = "paper chaos" in str(exc)
            if chaos:
                self._log.faults[type(exc).__name__] += 1
            if isinstance(exc, ccxt.DuplicateOrderId):
                self._log.violations.append(
                    f"create_order {cid}: the exchange already had this client id (blind resend)"
                )
            result = type(exc).__name__ + ("[chaos]" if chaos else "")
            self._log.calls.append(
                Call(self._phase, method, symbol, side, amount, cid, result, at, self._venue)
            )
            raise
        filled, total = order.get("filled") or 0.0, order.get("amount") or 0.0
        if method == "create_order" and filled < total:
            self._log.partial_fills += 1
        result = f"{order.get('status')} {filled:g}/{total:g}"
        lie = (order.get("info") or {}).get("paper_chaos")
        if lie:  # insane_reports: the venue lied about the order
            self._log.faults[f"lie: {lie}"] += 1
            result += f" [chaos: {lie}, {str(order.get('clientOrderId'))[:8]}]"
        if method == "fetch_ticker":
            result = f"last {order.get('last')}"
        self._log.calls.append(
            Call(self._phase, method, symbol, side, amount, cid, result, at, self._venue)
        )
        return order
