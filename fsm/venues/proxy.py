"""One base for every wrapper that watches an exchange's order calls.

The CLI counts calls per client order id (``pairexec.fsm.cli.recorder``); the simulation
records and audits them and kills the "process" around them (``pairexec.fsm.sim``); a bench
timestamps them. Each needs the same three ccxt signatures and the same pass-through of
everything else (``id``, ``has``, ``load_markets``, ``fetch_ticker``...), so venue detection
and the engine see the venue itself. A wrapper overrides ``_call``: what it does around one
order call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pairexec.fsm.venues.ccxt_ids import unified_client_id


@dataclass(frozen=True)
class OrderCall:
    """One order call as a wrapper sees it."""

    method: str
    """``create_order``, ``fetch_order`` or ``cancel_order``."""
    symbol: str | None
    side: str | None
    """Set for ``create_order`` only, as is ``amount``."""
    amount: float | None
    client_order_id: str | None


class ExchangeProxy:
    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        """Around each order call: this base only forwards it to the exchange."""
        return await forward()

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return await self._call(
            OrderCall("create_order", symbol, side, amount, unified_client_id(params)),
            lambda: self._exchange.create_order(symbol, type, side, amount, price, _dict(params)),
        )

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._call(
            OrderCall("fetch_order", symbol, None, None, unified_client_id(params)),
            lambda: self._exchange.fetch_order(id, symbol, _dict(params)),
        )

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._call(
            OrderCall("cancel_order", symbol, None, None, unified_client_id(params)),
            lambda: self._exchange.cancel_order(id, symbol, _dict(params)),
        )


def _dict(params: dict[str, Any] | None) -> dict[str, Any]:
    """ccxt's own default for ``params``: its methods extend a dict with it (None would fail)."""
    return {} if params is None else params
