"""Recent prices, for one check only: is an order worth the market's minimum order value?

A venue refuses an order below its minimum notional (amount x price). The engine must know
that before it sends leg B or an unwind, not learn it from a rejection, so it needs a price
for symbols that have such a minimum. Fetching it when leg A fills would lengthen the time a
trade is unhedged; instead a trade's driver asks for leg B's symbol when it starts, and the
fetch runs while leg A is on its way (leg A's own fill prices leg A's symbol). A price is
only an estimate (the check is against a threshold); one younger than ``max_age`` seconds is
shared by every trade on the symbol.
When no price can be had, the check is skipped and the venue has the last word (a rejection,
handled like any other).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping


class PriceBook:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[float | None]],
        max_age: float = 10.0,
        retry_after: float = 1.0,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._retry_after = retry_after
        self._prices: dict[str, float] = {}
        self._fetches: dict[str, tuple[float, asyncio.Task[None]]] = {}

    def refresh(self, symbols: Iterable[str]) -> None:
        """Start fetching the symbols' prices unless a fetch is under way, or ended recently
        (with a price: ``max_age``; without: ``retry_after``)."""
        loop = asyncio.get_running_loop()
        for symbol in symbols:
            started = self._fetches.get(symbol)
            if started is not None:
                age = loop.time() - started[0]
                fresh = self._max_age if symbol in self._prices else self._retry_after
                if not started[1].done() or age < fresh:
                    continue
            task = loop.create_task(self._store(symbol), name=f"price-{symbol}")
            self._fetches[symbol] = (loop.time(), task)

    async def _store(self, symbol: str) -> None:
        price = await self._fetch(symbol)
        if price is not None and price > 0:
            self._prices[symbol] = price

    def recent(self, symbol: str) -> float | None:
        """The price of ``symbol`` if one was fetched less than ``max_age`` seconds ago, at
        once (no fetch, no wait: leg A's send must not wait for it)."""
        started = self._fetches.get(symbol)
        if started is None or symbol not in self._prices:
            return None
        fresh = asyncio.get_running_loop().time() - started[0] < self._max_age
        return self._prices[symbol] if fresh else None

    async def ready(self, symbols: Iterable[str]) -> Mapping[str, float]:
        """The prices known once the symbols' fetches under way have ended."""
        pending = [self._fetches[s][1] for s in symbols if s in self._fetches]
        if pending:
            await asyncio.gather(*(asyncio.shield(t) for t in pending), return_exceptions=True)
        return self._prices

    async def close(self) -> None:
        tasks = [task for _, task in self._fetches.values()]
        self._fetches.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
