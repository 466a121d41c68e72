"""What the engine needs of a trade store, and nothing more: the port ``persistence`` fills.

The engine is written against ``Store``, so an in-process test double or another backend can
stand where ``pairexec.persistence.TradeStore`` does, and nothing here drags in SQLAlchemy.
The two exceptions are part of the contract: ``StoreError`` means "the database failed, the
write may not have happened, send nothing", ``StaleTrade`` means "another driver moved the
trade first" (a definite answer, not a failure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pairexec.fsm.model import Change, Duplicate, Lease, LeaseHolder, TradeRecord
from pairexec.fsm.request import PairTradeRequest


class StoreError(RuntimeError):
    """The database cannot be used (unreachable, locked, wrong schema...). The message says
    why; whatever the driver raised is its cause."""


class StaleTrade(RuntimeError):
    """The trade is not in the state the caller expected: someone else moved it."""


class Store(Protocol):
    """Durable trades, one transaction per call; every write is a compare-and-set on the
    trade's version, and a lease write is judged by the database's clock."""

    @property
    def is_open(self) -> bool: ...

    @property
    def crash_safe(self) -> bool:
        """False where a crash loses the trades (an in-memory database)."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create_trade(
        self,
        request: PairTradeRequest,
        lease: Lease | None = None,
        first: Callable[[TradeRecord], Change | None] | None = None,
    ) -> TradeRecord | Duplicate:
        """Store a PENDING trade with its ``first`` step, or say which trade it duplicates."""
        ...

    async def apply(
        self, record: TradeRecord, change: Change, lease: Lease | None = None
    ) -> TradeRecord:
        """Write ``change`` to the trade as ``record`` shows it: the result is
        ``after(record, change)``; StaleTrade if the trade moved meanwhile."""
        ...

    async def load(self, trade_id: str) -> TradeRecord: ...

    async def claim(
        self,
        lease: Lease,
        *,
        dead_owners: Sequence[str] = (),
        limit: int | None = None,
    ) -> list[str]:
        """Take every non-terminal trade nobody live holds; the ids taken."""
        ...

    async def renew(self, lease: Lease, trade_ids: Sequence[str]) -> set[str]:
        """Extend ``lease`` on ``trade_ids``; the ids it still holds."""
        ...

    async def release(self, owner: str, trade_id: str | None = None) -> None: ...

    async def lease_holders(self, trade_id: str | None = None) -> list[LeaseHolder]:
        """Non-terminal trades with a lease (of ``trade_id`` alone, if given)."""
        ...

    def lease_deadline(self, owner: str, trade_id: str) -> float:
        """The event loop's time (``loop.time()``, ``time.monotonic()`` on a normal loop) until
        which ``owner`` surely holds the trade's lease."""
        ...
