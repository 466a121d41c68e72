"""Where the time goes: cProfile of the two hot paths, grouped by layer, with SQL counts.

Hot paths: trades one after another on a SQLite file (what every trade pays), and
``recover()`` of in-flight trades (what a restart pays). cProfile sees the event loop's thread
only: time the store's database thread spends in SQLite and fsync shows up as the loop
waiting in ``epoll``. SQL statements and commits are counted with sqlite3's trace callback on
the store's connection (savepoints included) and divided by the transitions journaled.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from unittest import mock

from bench.common import BENCH_CONFIG, Result, distinct_pairs, synthetic_markets
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.persistence import TradeStore
from pairexec.persistence.db import SqliteRunner

LAYERS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("waiting for the DB thread (SQLite, fsync)", lambda f, n: "epoll" in n or "select" in n),
    ("SQLAlchemy", lambda f, n: "sqlalchemy" in f),
    ("asyncio event loop", lambda f, n: "asyncio" in f or "_contextvars" in n or "socket" in n),
    ("paper exchange", lambda f, n: "fsm/paper/" in f),
    ("venue boundary (gateway, reports, errors)", lambda f, n: "fsm/venues/" in f),
    ("pairexec store", lambda f, n: "persistence/" in f),
    ("pairexec engine (engine, decide, gateway...)", lambda f, n: "/fsm/" in f),
]


class _SqlCounter:
    """Every statement the store's SQLite connection runs, and every commit."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0

    def statement(self, sql: str) -> None:
        self.statements += 1
        if sql == "COMMIT":
            self.transactions += 1

    def watching(self) -> Any:
        connect = SqliteRunner._connect
        counter = self

        def traced(runner: SqliteRunner) -> Any:
            connection = connect(runner)
            connection.set_trace_callback(counter.statement)
            return connection

        return mock.patch.object(SqliteRunner, "_connect", traced)


async def _trades(url: str, n: int) -> None:
    markets = synthetic_markets(2 * n + 2)
    async with ExecutionEngine(PaperExchange(None, markets=markets), url, BENCH_CONFIG) as e:
        for request in distinct_pairs(markets, n):
            await e.execute_pair_trade(request)


async def _transitions(url: str) -> int:
    async with TradeStore(url) as store:
        trades = await store.list_trades(limit=1_000_000)
        return sum([len(await store.events(t.id)) for t in trades])


def _profile(work: Callable[[], Coroutine[Any, Any, None]]) -> tuple[pstats.Stats, _SqlCounter]:
    counter = _SqlCounter()
    profiler = cProfile.Profile()
    with counter.watching():
        profiler.enable()
        asyncio.run(work())
        profiler.disable()
    return pstats.Stats(profiler), counter


def _layers(stats: pstats.Stats) -> tuple[Counter[str], list[tuple[float, str]]]:
    layers: Counter[str] = Counter()
    functions = []
    for (file, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        layer = next((label for label, match in LAYERS if match(file, name)), "other")
        layers[layer] += own
        functions.append((own, f"{Path(file).name}:{name}"))
    return layers, sorted(functions, reverse=True)[:12]


def run(quick: bool) -> Result:
    from bench.recovery import _build_file_db

    n = 20 if quick else 60
    result = Result("profile")
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        trades_url = f"sqlite:///{Path(tmp) / 'trades.db'}"
        path = Path(tmp) / "recover.db"
        paper, _, _ = _build_file_db(path, 400, 5 * n)
        recover_url = f"sqlite:///{path}"

        async def recover() -> None:
            async with ExecutionEngine(paper, store=recover_url, config=BENCH_CONFIG) as e:
                await e.recover()

        for label, url, work in (
            (f"{n} trades", trades_url, lambda: _trades(trades_url, n)),
            (f"recover() of {5 * n}", recover_url, recover),
        ):
            before = asyncio.run(_transitions(url)) if label.startswith("recover") else 0
            stats, sql = _profile(work)
            transitions = asyncio.run(_transitions(url)) - before
            layers, top = _layers(stats)
            total = sum(layers.values())
            share = ", ".join(f"{k} {v / total:.0%}" for k, v in layers.most_common(5))
            result.add(
                f"{label}: per transition",
                f"{sql.statements / transitions:.1f} SQL statements, "
                f"{sql.transactions / transitions:.2f} commits",
                f"{transitions} transitions",
            )
            result.add(f"{label}: where the time goes", share, "")
            result.data[label] = {
                "transitions": transitions,
                "sql_statements": sql.statements,
                "transactions": sql.transactions,
                "layers_seconds": dict(layers),
                "top_functions": [f"{s:.3f}s {name}" for s, name in top],
            }
    return result
