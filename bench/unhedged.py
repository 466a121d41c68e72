"""The unhedged window: leg A's answer received by the engine -> leg B's first order sent.

Between the two, leg A is filled and nothing hedges it: this is the exposure a pair trade
exists to avoid, so it is the number to keep small. In that window the engine commits leg A's
fill, its classification and leg B's intent (one durable write: an order is recorded before
it is sent), so the floor is one commit of the store's backend on this machine.

Measured from outside the engine with ``bench.leg_b_latency.Stamps`` (a proxy of the exchange
that stamps when each create_order returned and was called, by client id): a trade's window is
the call of its leg-B order minus the return of its leg-A order. For 1 trade at a time
(repeated, for a distribution), and 50 and 200 trades at once on distinct pairs, on SQLite (a
file, WAL, synchronous=FULL: the store's default) and PostgreSQL (a database created for the
run and dropped after), in two harnesses:

- realistic: the venue is another process, the fake Binance of ``tests/support/fake_binance``
  served by ``python -m bench.unhedged --serve`` on a free port with 20 ms +- 5 ms (uniform)
  per call before it answers, reached over HTTP by the real ``ccxt.async_support.binance``.
  The engine's process then parses and signs HTTP like a bot's does, and the venue's work is
  not on the engine's event loop: an in-process venue's CPU would be counted in the window.
- in-process: the paper exchange in the engine's process with ``*:latency=0.02`` (the
  harness of ``bench.concurrency`` and ``bench.leg_b_latency``).

Beside them, the bare commit of each backend on this machine (one row, one transaction: a
sqlite3 file with the same pragmas in the same directory, an asyncpg INSERT), so that the goals
can be stated against the machine rather than in absolute milliseconds: the issue asks for a
single trade's window within one bare commit + 1 ms, and 200 at once p99 <= 30 ms on SQLite,
<= 60 ms on PostgreSQL. This module only measures; it tunes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.common import BENCH_CONFIG, Result, distinct_pairs, percentile, synthetic_markets
from bench.leg_b_latency import Stamps
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("PAIREXEC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
"""A PostgreSQL role that may create databases (the test suite's variable and default)."""

MARKETS = 400
"""As the other benches: enough symbols for 200 distinct pairs."""
LATENCY = 0.020
JITTER = 0.005
"""Per venue call: 20 ms, uniform +- 5 ms (realistic harness); the in-process one is flat."""
IN_PROCESS_CHAOS = "*:latency=0.02"

CCXT_TIMEOUT_MS = 10_000
"""ccxt's bound on one HTTP call: far above 20 ms, below the engine's own call_timeout."""
SERVER_START_TIMEOUT = 60.0
"""Seconds for the venue process to import, open its book and print its port."""
RUN_TIMEOUT = 120.0
"""A backstop over one batch of trades: the calls inside are bounded, this bounds the sum."""
DB_TIMEOUT = 10.0
"""Seconds for one bare-commit statement or connection."""

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How much to measure: ``alone`` trades one after another, ``rounds`` bursts per N."""

    at_once: tuple[int, ...]
    alone: int
    rounds: int
    commits: int


QUICK = Plan(at_once=(50, 200), alone=10, rounds=1, commits=50)
FULL = Plan(at_once=(50, 200), alone=100, rounds=5, commits=200)


def _log(message: str) -> None:
    print(f"[unhedged] {message}", file=sys.stderr, flush=True)


def _ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1e3


# --- the venue in another process -----------------------------------------------------------


async def _serve(latency: float, jitter: float, markets: int, seed: int) -> None:
    """The fake Binance on a free port, each call held ``latency`` +- ``jitter`` s before it is
    answered (FakeBinance's ``on_request`` hook: awaited as a request arrives, before it is
    processed). Prints ``port N``; exits when its stdin closes, so a parent that dies without
    terminating it does not leave it behind."""
    from tests.support.fake_binance import FakeBinance, Seen

    rng = random.Random(seed)

    async def delay(_: Seen) -> None:
        await asyncio.sleep(max(0.0, rng.uniform(latency - jitter, latency + jitter)))

    async with FakeBinance(markets=synthetic_markets(markets), on_request=delay) as fake:
        print(f"port {fake.port}", flush=True)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()  # EOF: the parent is done (or gone)


@asynccontextmanager
async def _venue_process() -> AsyncIterator[str]:
    """The fake Binance in a child process; yields its base URL; always terminates it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.unhedged",
        "--serve",
        "--latency",
        str(LATENCY),
        "--jitter",
        str(JITTER),
        "--markets",
        str(MARKETS),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
        word, _, port = line.decode().partition(" ")
        if word != "port":
            raise RuntimeError(f"the venue process did not start (it printed {line!r})")
        yield f"http://127.0.0.1:{int(port)}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


# --- one engine, its trades ------------------------------------------------------------------


def _windows(stamps: Stamps, trade_ids: list[str]) -> list[float]:
    """Seconds from each trade's leg-A create returning to its leg-B create being called."""
    windows = []
    for trade_id in trade_ids:
        a = client_order_id(trade_id, Leg.A, 1)
        b = client_order_id(trade_id, Leg.B, 1)
        windows.append(stamps.called[b] - stamps.returned[a])
    return windows


async def _bounded(what: str, work: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(work, RUN_TIMEOUT)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{what} took longer than {RUN_TIMEOUT:g} s") from None


async def _measure_engine(
    label: str, exchange: Any, store: str, plan: Plan
) -> dict[int, list[float]]:
    """Windows (seconds) by N on one engine: ``plan.alone`` trades one at a time, then
    ``plan.rounds`` bursts of each N. One warm-up trade first, so that loading the markets and
    opening connections are not counted as a trade's window."""
    markets = synthetic_markets(MARKETS)
    stamps = Stamps(exchange)
    windows: dict[int, list[float]] = {}
    async with ExecutionEngine(stamps, store=store, config=BENCH_CONFIG) as engine:

        async def batch(requests: list[PairTradeRequest]) -> list[str]:
            outcomes = await _bounded(
                f"{label}: {len(requests)} trades",
                asyncio.gather(*(engine.execute_pair_trade(r) for r in requests)),
            )
            bad = [o for o in outcomes if o.state is not TradeState.DONE]
            if bad:
                raise RuntimeError(f"{label}: {len(bad)} trades not DONE: {bad[0].reason}")
            return [o.trade_id for o in outcomes]

        await batch(distinct_pairs(markets, 1))
        alone = distinct_pairs(markets, plan.alone)
        windows[1] = _windows(stamps, [(await batch([r]))[0] for r in alone])
        _log(f"{label}: 1 at a time x {plan.alone}: p50 {_ms(windows[1], 50):.1f} ms")
        for n in plan.at_once:
            requests = distinct_pairs(markets, n)
            windows[n] = []
            for _ in range(plan.rounds):
                windows[n] += _windows(stamps, await batch(requests))
            _log(
                f"{label}: {n} at once x {plan.rounds}: p50 {_ms(windows[n], 50):.1f} ms, "
                f"p99 {_ms(windows[n], 99):.1f} ms"
            )
    return windows


async def _realistic(stores: dict[str, str], plan: Plan) -> dict[str, dict[int, list[float]]]:
    from tests.support.fake_binance import binance_client

    by_backend = {}
    async with _venue_process() as url:
        _log(f"venue process on {url}")
        for backend, store in stores.items():
            client = binance_client(url, timeout_ms=CCXT_TIMEOUT_MS)
            try:
                by_backend[backend] = await _measure_engine(
                    f"realistic/{backend}", client, store, plan
                )
            finally:
                await client.close()
    return by_backend


async def _in_process(stores: dict[str, str], plan: Plan) -> dict[str, dict[int, list[float]]]:
    by_backend = {}
    for backend, store in stores.items():
        paper = PaperExchange(None, chaos=IN_PROCESS_CHAOS, markets=synthetic_markets(MARKETS))
        try:
            by_backend[backend] = await _measure_engine(f"in-process/{backend}", paper, store, plan)
        finally:
            await paper.close()
    return by_backend


# --- bare commits ---------------------------------------------------------------------------


def _bare_sqlite(path: Path, commits: int) -> list[float]:
    """Seconds per commit of one row, with the store's pragmas (WAL, synchronous=FULL)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=DB_TIMEOUT)
    try:
        connection.execute(f"PRAGMA busy_timeout={int(DB_TIMEOUT * 1000)}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, at REAL NOT NULL)")
        seconds = []
        for _ in range(commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO bare (at) VALUES (?)", (started,))
            connection.execute("COMMIT")
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        connection.close()


async def _bare_postgresql(dsn: str, commits: int) -> list[float]:
    """Seconds per ``INSERT`` of one row in its own transaction, over one asyncpg connection."""
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=DB_TIMEOUT, command_timeout=DB_TIMEOUT)
    try:
        await connection.execute("CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, at FLOAT8)")
        seconds = []
        for _ in range(commits):
            started = time.perf_counter()
            async with connection.transaction():
                await connection.execute("INSERT INTO bare (at) VALUES ($1)", started)
            seconds.append(time.perf_counter() - started)
        return seconds
    finally:
        await asyncio.wait_for(connection.close(), DB_TIMEOUT)


@asynccontextmanager
async def _pg_database() -> AsyncIterator[str]:
    """A database of its own for the run (the store migrates it), dropped after, whatever
    happened; yields its plain ``postgresql://`` URL."""
    import asyncpg

    admin = PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://")
    name = f"pairexec_bench_unhedged_{uuid.uuid4().hex[:8]}"

    async def as_admin(sql: str) -> None:
        connection = await asyncpg.connect(admin, timeout=DB_TIMEOUT)
        try:
            await connection.execute(sql, timeout=60)
        finally:
            await asyncio.wait_for(connection.close(), DB_TIMEOUT)

    await as_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        await as_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the run --------------------------------------------------------------------------------


@dataclass
class Measured:
    windows: dict[str, dict[str, dict[int, list[float]]]]
    """harness -> backend -> N -> seconds"""
    commits: dict[str, list[float]]
    """backend -> seconds per bare commit"""


async def _measure(tmp: Path, plan: Plan) -> Measured:
    async with _pg_database() as pg:
        _log(f"bare commits x {plan.commits} (SQLite file in {tmp}, PostgreSQL {pg})")
        commits = {
            "SQLite": _bare_sqlite(tmp / "bare.db", plan.commits),
            "PostgreSQL": await _bare_postgresql(pg, plan.commits),
        }

        def stores(harness: str) -> dict[str, str]:
            return {"SQLite": f"sqlite:///{tmp / harness}.db", "PostgreSQL": pg}

        windows = {
            "realistic": await _realistic(stores("realistic"), plan),
            "in-process": await _in_process(stores("in-process"), plan),
        }
    return Measured(windows, commits)


def _verdicts(values: dict[str, float], bound: float) -> str:
    """Each harness's value against ``bound``: met, or missed by how much."""
    return "; ".join(
        f"{harness} {v:.1f} ms ✓" if v <= bound else f"{harness} {v:.1f} ms ✗ (+{v - bound:.2f})"
        for harness, v in values.items()
    )


def _load() -> float:
    """The 1-minute load average: on 2 cores, anyone else's work inflates every number here."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run(quick: bool) -> Result:
    plan = QUICK if quick else FULL
    started = _load()
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        measured = asyncio.run(_measure(Path(tmp), plan))
    load = (started, _load())
    result = Result(
        "unhedged",
        data={
            "alone_trades": plan.alone,
            "rounds": plan.rounds,
            "bare_commits": plan.commits,
            "venue_latency_ms": LATENCY * 1e3,
            "venue_jitter_ms": JITTER * 1e3,
        },
    )
    stats: dict[tuple[str, str, int], tuple[float, float]] = {}
    for harness, by_backend in measured.windows.items():
        for backend, by_n in by_backend.items():
            for n, values in by_n.items():
                p50, p99 = _ms(values, 50), _ms(values, 99)
                stats[(harness, backend, n)] = (p50, p99)
                how = f"1 at a time x {len(values)}" if n == 1 else f"{n} at once x {plan.rounds}"
                result.add(
                    f"{harness}, {backend}, {n} trade{'s' if n > 1 else ''}",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                    f"leg A answered -> leg B sent; {how}",
                    **{
                        f"{harness}_{backend}_{n}_p50_ms".lower(): p50,
                        f"{harness}_{backend}_{n}_p99_ms".lower(): p99,
                    },
                )
    bare: dict[str, float] = {}
    for backend, values in measured.commits.items():
        p10, p50, p90 = (_ms(values, p) for p in (10, 50, 90))
        bare[backend] = p50
        what = "sqlite3, WAL, synchronous=FULL" if backend == "SQLite" else "asyncpg INSERT"
        result.add(
            f"bare commit, {backend}",
            f"p50 {p50:.2f} ms (p10-p90 {p10:.2f}-{p90:.2f})",
            f"one row, one transaction ({what}); x {len(values)}",
            **{
                f"bare_{backend}_p50_ms".lower(): p50,
                f"bare_{backend}_p10_p90_ms".lower(): [p10, p90],
            },
        )
    for backend, bound in (("SQLite", 30.0), ("PostgreSQL", 60.0)):
        p99s = {h: stats[(h, backend, 200)][1] for h in measured.windows}
        result.add(
            f"goal: 200 at once p99 <= {bound:g} ms, {backend}",
            _verdicts(p99s, bound),
            "realistic: the venue in another process, over HTTP (ccxt)",
            **{f"goal_200_{backend}_{h}".lower(): v <= bound for h, v in p99s.items()},
        )
    for backend, commit in bare.items():
        bound = commit + 1.0
        p50s = {h: stats[(h, backend, 1)][0] for h in measured.windows}
        result.add(
            f"goal: 1 trade p50 <= bare commit + 1 ms, {backend}",
            _verdicts(p50s, bound),
            f"bound {bound:.2f} ms = bare commit p50 {commit:.2f} + 1",
            **{f"goal_single_{backend}_{h}".lower(): v <= bound for h, v in p50s.items()},
        )
    result.add(
        "load average (1 min), start / end",
        f"{load[0]:.2f} / {load[1]:.2f}",
        f"{os.cpu_count()} cores: others' load inflates every number above",
        load_average=list(load),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.unhedged", description=__doc__)
    parser.add_argument("--serve", action="store_true", help="be the venue process")
    parser.add_argument("--latency", type=float, default=LATENCY, help="seconds per call")
    parser.add_argument("--jitter", type=float, default=JITTER, help="+- seconds, uniform")
    parser.add_argument("--markets", type=int, default=MARKETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.latency, args.jitter, args.markets, args.seed))
        return 0
    for row in run(args.quick).rows:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
