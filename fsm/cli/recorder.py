"""Counts the exchange calls made per client order id, for "what was looked up / sent"."""

from __future__ import annotations

from collections import Counter
from typing import Any


class CallRecorder:
    """Wraps an exchange; every other attribute passes through untouched."""

    def __init__(self, exchange: Any) -> None:
        self._exchange = exchange
        self.calls: Counter[tuple[str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._exchange, name)

    def count(self, method: str, client_order_ids: set[str]) -> int:
        return sum(
            n for (m, cid), n in self.calls.items() if m == method and cid in client_order_ids
        )

    async def _recorded(self, method: str, *args: Any, params: dict[str, Any] | None) -> Any:
        self.calls[(method, (params or {}).get("clientOrderId", ""))] += 1
        return await getattr(self._exchange, method)(*args, params or {})

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return await self._recorded(
            "create_order", symbol, type, side, amount, price, params=params
        )

    async def fetch_order(
        self, id: str, symbol: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._recorded("fetch_order", id, symbol, params=params)

    async def cancel_order(
        self, id: str, symbol: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        return await self._recorded("cancel_order", id, symbol, params=params)
