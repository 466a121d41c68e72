"""Concurrency: N trades on N distinct pairs at once, each exchange call taking 20 ms.

The claim under test: trades on different pairs do not wait for each other (no global lock),
so N at once should take about as long as one. Measured in one process, on a SQLite file
(WAL, synchronous=FULL) and the in-memory paper exchange with ``*:latency=0.02``:

- one trade alone;
- N trades at once through the engine;
- N trades at once through a one-global-lock design (the seed prototype's fix: every
  ``execute_pair_trade`` inside one ``asyncio.Lock``), expected ~N x one trade;
- N trades at once at zero latency: the engine's own serialised work (store, CPU), which is
  the floor under the concurrent wall time whatever the exchange latency;
- one trade and N at once with 100 ms per call: how the ratio looks when the venue is far.

Each is the median of three runs, except the global lock's (about N times longer than the rest).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bench.common import BENCH_CONFIG, Result, distinct_pairs, median, stopwatch, synthetic_markets
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState

LATENCY = "*:latency=0.02"
SLOW_LATENCY = "*:latency=0.1"
"""A far venue (another continent): the engine's own work is then a smaller share."""


async def _wall(
    tmp: Path, name: str, requests: list[PairTradeRequest], chaos: str, one_lock: bool = False
) -> float:
    """Seconds for ``requests`` submitted at once on a fresh database and exchange."""
    markets = synthetic_markets(400)
    paper = PaperExchange(None, chaos=chaos, markets=markets)
    store = f"sqlite:///{tmp / name}.db"
    lock = asyncio.Lock()
    async with ExecutionEngine(paper, store=store, config=BENCH_CONFIG) as engine:

        async def one(request: PairTradeRequest) -> TradeState:
            if one_lock:
                async with lock:
                    return (await engine.execute_pair_trade(request)).state
            return (await engine.execute_pair_trade(request)).state

        with stopwatch() as watch:
            states = await asyncio.gather(*(one(r) for r in requests))
    bad = [s for s in states if s is not TradeState.DONE]
    if bad:
        raise RuntimeError(f"{len(bad)} trades did not finish DONE: {bad[:3]}")
    return watch.seconds


async def _measure(tmp: Path, n: int) -> dict[str, float]:
    requests = distinct_pairs(synthetic_markets(400), n)

    async def typical(name: str, batch: list[PairTradeRequest], latency: str) -> float:
        """The median of three runs (fresh database and exchange each): one run of a burst
        this short is at the mercy of a noisy machine."""
        return median([await _wall(tmp, f"{name}{i}", batch, latency) for i in range(3)])

    return {
        "single": await typical("single", requests[:1], LATENCY),
        "engine": await typical("engine", requests, LATENCY),
        "global_lock": await _wall(tmp, "lock", requests, LATENCY, one_lock=True),
        "engine_no_latency": await typical("floor", requests, ""),
        "single_slow": await typical("single_slow", requests[:1], SLOW_LATENCY),
        "engine_slow": await typical("slow", requests, SLOW_LATENCY),
    }


def run(quick: bool) -> Result:
    n = 50 if quick else 200
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        t = asyncio.run(_measure(Path(tmp), n))
    result = Result("concurrency", data={"trades": n, **{f"{k}_seconds": v for k, v in t.items()}})
    result.add("one trade alone (20 ms per call)", f"{t['single'] * 1e3:.0f} ms")
    result.add(
        f"{n} trades at once, engine",
        f"{t['engine']:.2f} s = {t['engine'] / t['single']:.1f}x one trade",
        "target <= 1.5x",
        engine_ratio=t["engine"] / t["single"],
    )
    result.add(
        f"{n} trades at once, one global lock",
        f"{t['global_lock']:.2f} s = {t['global_lock'] / t['single']:.1f}x one trade",
        f"{t['global_lock'] / t['engine']:.1f}x slower than the engine",
        lock_ratio=t["global_lock"] / t["single"],
        lock_over_engine=t["global_lock"] / t["engine"],
    )
    result.add(
        f"{n} trades at once, zero latency",
        f"{t['engine_no_latency']:.2f} s",
        "the engine's serialised store/CPU work: the floor under the line above",
    )
    result.add(
        f"{n} trades at once vs one, 100 ms per call",
        f"{t['engine_slow']:.2f} s vs {t['single_slow'] * 1e3:.0f} ms = "
        f"{t['engine_slow'] / t['single_slow']:.1f}x",
        "the same work behind a far venue's latency",
        slow_ratio=t["engine_slow"] / t["single_slow"],
    )
    return result
