"""Trades per second with 1, 2 and 4 engine processes on PostgreSQL, against 1 on SQLite.

Run: python bench/scale_out.py [--trades-per-process N] [--pg URL]

Each process runs its own engine and its own in-memory paper exchange (an external venue is
not the engine's bottleneck; sharing one simulated exchange file would measure that file
instead), and submits N trades on distinct pairs, 20 at a time.

The start is a barrier: each process says it is ready once its engine is open, and the parent
sends every one "go" on its stdin only when all are. (A start file polled every 5 ms let the
last of 4 processes begin 1.1-1.4 s after the first: it was still importing.) Throughput = all
trades / wall time from the first process's start to the last one's end; the start skew is
reported beside it. Results are ratios to one process on SQLite and to one on PostgreSQL,
measured in this one run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 20


async def child(db_url: str, trades: int, worker: int) -> None:
    from pairexec import EngineConfig, ExecutionEngine, PairTradeRequest
    from pairexec.fsm.paper import MarketSpec, PaperExchange

    symbols = [f"W{worker}X{i}/USDT" for i in range(trades)] + [
        f"W{worker}Y{i}/USDT" for i in range(trades)
    ]
    markets = {s: MarketSpec(s, 10.0, 0.001, 0.001, 1.0) for s in symbols}
    paper = PaperExchange(None, markets=markets)
    requests = [
        PairTradeRequest(f"W{worker}X{i}/USDT", "buy", 1.0, f"W{worker}Y{i}/USDT", "sell", 1.0)
        for i in range(trades)
    ]
    async with ExecutionEngine(paper, store=db_url, config=EngineConfig()) as engine:
        print("ready", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            raise SystemExit("the parent went away before the start")
        started = time.time()
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(request: PairTradeRequest) -> bool:
            async with limit:
                return (await engine.execute_pair_trade(request)).ok

        done = sum(await asyncio.gather(*(one(r) for r in requests)))
    await paper.close()
    print(json.dumps({"done": done, "started": started, "finished": time.time()}))


def run(db_url: str, processes: int, trades: int) -> tuple[float, int, float]:
    """(wall seconds, trades done, start skew in seconds) of ``processes`` engines."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", db_url, str(trades), str(w)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]
    for proc in procs:  # the barrier: every engine open before any starts
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            _, err = proc.communicate(timeout=60)
            raise SystemExit(f"worker failed before it was ready: {err[-2000:]}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    began = min(r["started"] for r in results)
    wall = max(r["finished"] for r in results) - began
    skew = max(r["started"] for r in results) - began
    return wall, sum(r["done"] for r in results), skew


def pg_database(admin: str) -> tuple[str, str]:
    import asyncpg

    name = f"pairexec_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


def drop(admin: str, name: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades-per-process", type=int, default=200)
    parser.add_argument(
        "--pg",
        default=os.environ.get("PAIREXEC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    n = args.trades_per_process
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wall, done, skew = run(f"sqlite:///{Path(tmp) / 'bench.db'}", 1, n)
        rows.append(("SQLite, 1 process", 1, done, wall, skew))
    for processes in (1, 2, 4):
        name, url = pg_database(args.pg)
        try:
            wall, done, skew = run(url, processes, n)
        finally:
            drop(args.pg, name)
        rows.append((f"PostgreSQL, {processes} process(es)", processes, done, wall, skew))
    base = rows[0][2] / rows[0][3]
    one_pg = rows[1][2] / rows[1][3]
    print(
        f"{'setup':26} {'trades':>7} {'wall s':>7} {'skew ms':>8} {'trades/s':>9} "
        f"{'vs SQLite':>9} {'vs 1 PG':>8}"
    )
    for label, _, done, wall, skew in rows:
        rate = done / wall
        print(
            f"{label:26} {done:7d} {wall:7.2f} {skew * 1000:8.1f} {rate:9.1f} "
            f"{rate / base:8.2f}x {rate / one_pg:7.2f}x"
        )
    print(
        f"({os.cpu_count()} CPU cores; every process also runs its own paper exchange; skew: "
        "the last process's start after the first's)"
    )
    results = Path(ROOT / "bench" / "results")
    results.mkdir(exist_ok=True)
    (results / "scale_out.json").write_text(
        json.dumps(
            [
                {
                    "setup": r[0],
                    "trades": r[2],
                    "wall_s": r[3],
                    "start_skew_s": r[4],
                    "trades_per_s": r[2] / r[3],
                    "ratio_vs_sqlite": (r[2] / r[3]) / base,
                    "ratio_vs_one_postgresql": (r[2] / r[3]) / one_pg,
                }
                for r in rows
            ],
            indent=2,
        )
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, url, count, worker = sys.argv
        asyncio.run(child(url, int(count), int(worker)))
    else:
        main()
