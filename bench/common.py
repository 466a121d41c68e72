"""What the benchmarks share: synthetic markets, a fast engine configuration, timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pairexec.fsm.config import EngineConfig
from pairexec.fsm.paper import MarketSpec
from pairexec.fsm.request import PairTradeRequest

BENCH_CONFIG = EngineConfig(
    lookup_backoff=0.0, max_backoff=0.0, settle_timeout=0.0, settle_poll_interval=0.0
)
"""No waiting of the engine's own: what is measured is the engine, the store and the venue."""


def synthetic_markets(n: int) -> dict[str, MarketSpec]:
    """``n`` interchangeable spot markets (price 10, step 0.001, no minimum order value)."""
    return {
        f"X{i:04d}/USDT": MarketSpec(f"X{i:04d}/USDT", 10.0, 0.001, 0.001, 0.0) for i in range(n)
    }


def distinct_pairs(markets: dict[str, MarketSpec], n: int) -> list[PairTradeRequest]:
    """``n`` requests on pairwise distinct pair keys (so none is refused as a duplicate)."""
    symbols = sorted(markets)
    if n > len(symbols) * (len(symbols) - 1):
        raise ValueError(f"{len(symbols)} markets give fewer than {n} distinct pairs")
    requests = []
    for k in range(n):
        i, offset = divmod(k, len(symbols) - 1)
        x, y = symbols[i], symbols[(i + 1 + offset) % len(symbols)]
        requests.append(PairTradeRequest(x, "buy", 1.0, y, "sell", 1.0))
    return requests


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    watch = Stopwatch()
    started = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100), nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class Result:
    """One benchmark's numbers: ``rows`` for the table, everything in ``data`` for the JSON."""

    name: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    """(measurement, value, target or comment)"""
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, what: str, value: str, note: str = "", **data: Any) -> None:
        self.rows.append((what, value, note))
        self.data.update(data)
