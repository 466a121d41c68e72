"""An engine process dying mid-trade, in-process: a switch, and proxies of the exchange and store.

The crash is ``SimulatedCrash``, a BaseException: the engine catches
only ``Exception`` around exchange calls, so it unwinds the driver like the end of the process
would. Once the switch has tripped, the process is dead for good: every later exchange call
and store write of that engine raises too, so its other trades stop at their next step
instead of carrying on as if nothing happened. (Reads still pass: they change nothing.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pairexec.fsm.model import Lease, TradeRecord
from pairexec.fsm.ports import StoreError
from pairexec.fsm.sim.fast_store import ScenarioStore, each_call_within
from pairexec.fsm.sim.scenario import SLOW_COMMIT, Crash, StoreFault
from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall


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

    def __init__(self, store: ScenarioStore | FaultyStore, switch: CrashSwitch) -> None:
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


class LeaseWatch:
    """When each trade's lease was last written by the trading engine (the start of the write
    that wrote it, by the loop's clock), to judge each of its sends: one that goes out a lease
    length or more after that may race another process that took the trade over."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self._written: dict[str, float] = {}

    def wrote(self, trade_ids: Iterable[str], started: float) -> None:
        for trade_id in trade_ids:
            self._written[trade_id] = max(started, self._written.get(trade_id, started))

    def lapsed(self, trade_id: str, now: float) -> str | None:
        """Why a send for ``trade_id`` at ``now`` is outside its lease (None: it is inside)."""
        written = self._written.get(trade_id)
        if written is None:
            return "its trade's lease was never written by this process"
        if now - written >= self.lease_seconds:
            return (
                f"{now - written:g} s after its trade's lease was last written "
                f"(the lease: {self.lease_seconds:g} s)"
            )
        return None


class FaultyStore:
    """The trading engine's store, with the one fault ``fault`` says, and a watch on the leases
    it writes (``leases``). Refused: a ``StoreError`` before the write; reply lost: the write,
    then a ``StoreError``, as from a real database; slow: the write commits, then the database
    answers nothing (that call nor any other of this engine) for ``SLOW_COMMIT`` leases."""

    def __init__(self, store: Any, fault: StoreFault | None, lease_seconds: float) -> None:
        self._store = store
        self._fault = fault
        self._writes = 0
        self._answering = asyncio.Event()
        self._answering.set()
        self.struck = False
        self.leases = LeaseWatch(lease_seconds)

    def __getattr__(self, name: str) -> Any:
        return each_call_within(getattr(self._store, name), self._once_answering)

    @asynccontextmanager
    async def _once_answering(self) -> AsyncIterator[None]:
        await self._answering.wait()
        yield

    async def create_trade(self, request: Any, lease: Lease | None = None, **kwargs: Any) -> Any:
        started = await self._turn()
        created = await self._write(self._store.create_trade, request, lease, **kwargs)
        if lease is not None and isinstance(created, TradeRecord):
            self.leases.wrote([created.id], started)
        return created

    async def apply(self, record: TradeRecord, change: Any, lease: Lease | None = None) -> Any:
        started = await self._turn()
        applied = await self._write(self._store.apply, record, change, lease)
        if lease is not None:
            self.leases.wrote([record.id], started)
        return applied

    async def renew(self, lease: Lease, trade_ids: Sequence[str]) -> set[str]:
        started = await self._turn()
        kept: set[str] = await self._store.renew(lease, trade_ids)
        self.leases.wrote(kept, started)
        return kept

    async def _turn(self) -> float:
        """Wait while the database stalls; when this call's write begins."""
        await self._answering.wait()
        return asyncio.get_running_loop().time()

    async def _write(self, write: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        self._writes += 1
        fault = self._fault
        if fault is None or fault.at != self._writes:
            return await write(*args, **kwargs)
        self.struck = True
        if fault.how == "slow":
            written = await write(*args, **kwargs)
            self._answering.clear()
            try:
                await asyncio.sleep(SLOW_COMMIT * self.leases.lease_seconds)
            finally:
                self._answering.set()
            return written
        if fault.reply_lost:
            await write(*args, **kwargs)
        raise StoreError(f"simulated: {fault.why}")
