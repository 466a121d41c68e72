"""Counts the exchange calls made per client order id, for "what was looked up / sent"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall


class CallRecorder(ExchangeProxy):
    """Wraps an exchange; every other attribute passes through untouched."""

    def __init__(self, exchange: Any, calls: Counter[tuple[str, str]] | None = None) -> None:
        """``calls``: a count shared with the recorders of the other venues (client ids are
        unique across venues), so one ``count`` covers a trade on two."""
        super().__init__(exchange)
        self.calls: Counter[tuple[str, str]] = Counter() if calls is None else calls

    def count(self, method: str, client_order_ids: set[str]) -> int:
        return sum(
            n for (m, cid), n in self.calls.items() if m == method and cid in client_order_ids
        )

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        self.calls[(call.method, call.client_order_id or "")] += 1
        return await forward()
