"""What an operator watches: the engine's counters and timings (``ExecutionEngine.metrics``).

They are kept here in plain Python, always, at the cost of an addition or two per step, so a
bot needs no extra package to read them (``Metrics.snapshot()``). Prometheus is the optional
extra ``pairexec[metrics]``: ``Metrics.registry()`` exposes the same numbers to
``prometheus_client`` (a collector reads them at scrape time), and ``serve(port)`` is the
``/metrics`` endpoint of ``pairexec worker --metrics-port``.

The unhedged window is the time from leg A's answer (the report a leg B is sized from: its
create's reply, a lookup's, or a settle's) to leg B's first ``create_order`` call, in this
process; a trade resumed by ``recover`` after its leg A answer has no window here.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pairexec.fsm.states import TradeState

WINDOW_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Seconds: an unhedged window is a commit and a venue round trip, milliseconds to seconds."""
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: a durable commit is sub-millisecond to a few ms; more is a loaded database."""


class MetricsUnavailable(RuntimeError):
    """``prometheus_client`` is not installed (``pip install 'pairexec[metrics]'``)."""


@dataclass
class Histogram:
    """Observations counted into cumulative-ready buckets (upper bounds, seconds)."""

    buckets: Sequence[float]
    counts: list[int] = field(default_factory=list)
    """Per bucket (not cumulative); one more for the values above the last bound."""
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, count at or below it) as Prometheus wants them, ``+Inf`` last."""
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


@dataclass
class Metrics:
    """One engine's numbers since it was made (counters never go down)."""

    trades_started: int = 0
    trades_ended: Counter[TradeState] = field(default_factory=Counter)
    """Drives that ended, by the state they left the trade in (a non-terminal one: stopped
    unresolved, for ``recover``)."""
    unhedged_window: Histogram = field(default_factory=lambda: Histogram(WINDOW_BUCKETS))
    lookups: int = 0
    """Look-ups of an order whose outcome was unknown (each try counts)."""
    resends: int = 0
    """Orders sent again after a lookup proved them absent (same client id)."""
    rate_limit_waits: int = 0
    """Back-offs after the venue said "too many requests"."""
    store_commit: Histogram = field(default_factory=lambda: Histogram(COMMIT_BUCKETS))
    """The time a write took as the engine waited for it (its group commit included)."""
    parked: int | None = None
    """Trades PARKED in the database, as last counted (``pairexec worker`` counts each poll);
    None until counted."""
    unresolved: int | None = None
    """Trades not terminal in the database, as last counted."""

    def snapshot(self) -> dict[str, Any]:
        """The numbers as plain data (for logs, JSON, tests)."""
        return {
            "trades_started": self.trades_started,
            "trades_ended": {s.value: n for s, n in sorted(self.trades_ended.items())},
            "unhedged_window_seconds": _histogram(self.unhedged_window),
            "lookups": self.lookups,
            "resends": self.resends,
            "rate_limit_waits": self.rate_limit_waits,
            "store_commit_seconds": _histogram(self.store_commit),
            "parked": self.parked,
            "unresolved": self.unresolved,
        }

    def registry(self) -> Any:
        """A ``prometheus_client.CollectorRegistry`` whose one collector reads these
        numbers at each scrape; MetricsUnavailable without ``prometheus_client``."""
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            raise MetricsUnavailable(
                "metrics need prometheus_client: pip install 'pairexec[metrics]'"
            ) from None
        registry = CollectorRegistry(auto_describe=True)
        registry.register(_Collector(self))
        return registry

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread (the HTTP server, which
        ``shutdown()`` stops); OSError if the port is taken."""
        try:
            from prometheus_client import start_http_server
        except ImportError:
            raise MetricsUnavailable(
                "--metrics-port needs prometheus_client: pip install 'pairexec[metrics]'"
            ) from None
        server, _thread = start_http_server(port, addr=addr, registry=self.registry())
        return server


def _histogram(h: Histogram) -> dict[str, Any]:
    return {"count": h.count, "sum": h.total, "buckets": dict(h.cumulative())}


class _Collector:
    """Reads a ``Metrics`` at scrape time (never a copy that could go stale)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.metrics
        yield CounterMetricFamily(
            "pairexec_trades_started", "Trades stored and driven by this engine", m.trades_started
        )
        ended = CounterMetricFamily(
            "pairexec_trades_ended", "Drives that ended, by the trade's state", labels=["state"]
        )
        for state, n in sorted(m.trades_ended.items()):
            ended.add_metric([state.value], n)
        yield ended
        for name, text, value in (
            ("pairexec_lookups", "Look-ups of orders whose outcome was unknown", m.lookups),
            ("pairexec_resends", "Orders resent after a lookup proved them absent", m.resends),
            ("pairexec_rate_limit_waits", "Back-offs after a rate limit", m.rate_limit_waits),
        ):
            yield CounterMetricFamily(name, text, value)
        for name, text, h in (
            (
                "pairexec_unhedged_window_seconds",
                "Leg A's answer to leg B's create_order call",
                m.unhedged_window,
            ),
            (
                "pairexec_store_commit_seconds",
                "A trade write, as the engine waited",
                m.store_commit,
            ),
        ):
            yield HistogramMetricFamily(name, text, buckets=h.cumulative(), sum_value=h.total)
        for name, text, gauge in (
            ("pairexec_parked_trades", "Trades PARKED in the database", m.parked),
            ("pairexec_unresolved_trades", "Trades not terminal in the database", m.unresolved),
        ):
            if gauge is not None:
                yield GaugeMetricFamily(name, text, gauge)
