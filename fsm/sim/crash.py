"""An engine process dying mid-trade, in-process: a switch, and proxies of the exchange and store.

The crash is ``SimulatedCrash``, a BaseException: the engine catches
only ``Exception`` around exchange calls, so it unwinds the driver like the end of the process
would. Once the switch has tripped, the process is dead for good: every later exchange call
and store write of that engine raises too, so its other trades stop at their next step
instead of carrying on as if nothing happened. (Reads still pass: they change nothing.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pairexec.fsm.ports import StoreError
from pairexec.fsm.sim.scenario import Crash, StoreFault
from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall
from pairexec.persistence import TradeStore


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the engine catches it."""


class CrashSwitch:
    """Counts one engine's exchange calls and store writes; trips at the planned one."""

    def __init__(self, plan: Crash | None) -> None:
        self.plan = plan
        self.calls = {"exchange": 0, "store": 0}
        self.dead = False
        self.where = ""
        """What the engine was doing when it died (for the report)."""

    def before(self, target: str, what: str) -> bool:
        """Called before a call goes out; returns whether to die right after it."""
        if self.dead:
            raise SimulatedCrash(f"the engine is dead ({self.where}); {what} never happens")
        self.calls[target] += 1
        plan = self.plan
        if plan is None or plan.target != target or plan.at != self.calls[target]:
            return False
        if plan.after:
            return True
        self._die(f"before {what}")
        return False  # pragma: no cover - _die raises

    def after(self, what: str) -> None:
        self._die(f"after {what}")

    def _die(self, where: str) -> None:
        self.dead, self.where = True, where
        raise SimulatedCrash(where)


class CrashingExchange(ExchangeProxy):
    """Forwards create/fetch/cancel to ``exchange`` unless the switch says the process died."""

    def __init__(self, exchange: Any, switch: CrashSwitch) -> None:
        super().__init__(exchange)
        self._switch = switch

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        what = f"{call.method} {(call.client_order_id or '?')[:8]}"
        die_after = self._switch.before("exchange", what)
        result = await forward()
        if die_after:
            self._switch.after(what)
        return result


class CrashingStore:
    """The trade store as seen by a process that may die around a write (create_trade, apply).

    Everything else (reads, lease bookkeeping) passes through to the shared ``store``, so the
    next engine sees exactly what was committed.
    """

    def __init__(self, store: TradeStore | FaultyStore, switch: CrashSwitch) -> None:
        self._store = store
        self._switch = switch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create_trade(self, *args: Any, **kwargs: Any) -> Any:
        die_after = self._switch.before("store", "create_trade")
        result = await self._store.create_trade(*args, **kwargs)
        if die_after:
            self._switch.after("create_trade")
        return result

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        die_after = self._switch.before("store", "apply")
        result = await self._store.apply(*args, **kwargs)
        if die_after:
            self._switch.after("apply")
        return result


class FaultyStore:
    """The trade store with one write failing as ``fault`` says: refused before it is
    written, or written and then reported failed (its reply lost). Either way the engine
    gets a ``StoreError``, as from a real database; reads pass."""

    def __init__(self, store: Any, fault: StoreFault | None) -> None:
        self._store = store
        self._fault = fault
        self._writes = 0
        self.struck = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def create_trade(self, *args: Any, **kwargs: Any) -> Any:
        return await self._write(self._store.create_trade, *args, **kwargs)

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        return await self._write(self._store.apply, *args, **kwargs)

    async def _write(self, write: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        self._writes += 1
        fault = self._fault
        if fault is None or fault.at != self._writes:
            return await write(*args, **kwargs)
        self.struck = True
        if fault.reply_lost:
            await write(*args, **kwargs)
        raise StoreError(f"simulated: {fault.why}")
