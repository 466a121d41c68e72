"""Durability cost: what one durable state transition costs, against the disk's own fsync.

Trades run one after another (zero exchange latency, in-memory paper exchange) on:

- a SQLite file as the store configures it (WAL, synchronous=FULL): the crash-safe default;
- in-memory SQLite (``sqlite+aiosqlite:///:memory:``): the same engine without durability.

Transitions are counted from the ``trade_events`` journal (one row per committed step). In the
same run and directory: a bare ``write``+``fsync`` loop, a bare sqlite3 loop of tiny committed
transactions with the store's pragmas, and the rows of one engine step (update the trade,
update an order, append an event) written with sqlite3 directly in one worker-thread hop — what
a leaner store could do while keeping persist-before-send (each send still waits for its
commit).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from pathlib import Path

from bench.common import BENCH_CONFIG, Result, distinct_pairs, stopwatch, synthetic_markets
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.persistence import TradeStore


async def _engine_run(url: str, n: int) -> tuple[float, int, int]:
    """Wall seconds for ``n`` sequential trades, the transitions they journaled and the
    commits they took."""
    markets = synthetic_markets(2 * n + 2)
    requests = distinct_pairs(markets, n)
    store = TradeStore(url)
    await store.open()
    commits: list[str] = []
    try:
        async with ExecutionEngine(PaperExchange(None, markets=markets), store, BENCH_CONFIG) as e:
            warm_up = await e.execute_pair_trade(requests[0])  # statement caches, markets
            connection = store._runner._connection  # type: ignore[union-attr]
            connection.set_trace_callback(
                lambda sql: commits.append(sql) if sql == "COMMIT" else None
            )
            with stopwatch() as watch:
                for request in requests[1:]:
                    await e.execute_pair_trade(request)
            connection.set_trace_callback(None)
        trades = await store.list_trades(limit=n + 1)
        counted = [t for t in trades if t.id != warm_up.trade_id]
        transitions = sum([len(await store.events(t.id)) for t in counted])
    finally:
        await store.close()
    return watch.seconds, transitions, len(commits)


def _fsync_loop(directory: Path, n: int) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with stopwatch() as watch:
            for _ in range(n):
                os.write(fd, b"x" * 64)
                os.fsync(fd)
    finally:
        os.close(fd)
    return watch.seconds / n


def _sqlite(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def _sqlite_commit_loop(directory: Path, n: int) -> float:
    db = _sqlite(directory / "bare.db")
    db.execute("CREATE TABLE t (x INTEGER)")
    with stopwatch() as watch:
        for i in range(n):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t VALUES (?)", (i,))
            db.execute("COMMIT")
    db.close()
    return watch.seconds / n


async def _lean_step_loop(directory: Path, n: int) -> float:
    """One engine step's writes (trade CAS update, order update, journal row) per transaction,
    each transaction one thread hop, awaited before the next (as a send would be)."""
    db = _sqlite(directory / "lean.db")
    db.executescript(
        "CREATE TABLE trades (id TEXT PRIMARY KEY, state TEXT, reason TEXT, updated_at TEXT);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, trade_id TEXT, client_order_id TEXT"
        " UNIQUE, status TEXT, filled REAL, updated_at TEXT);"
        "CREATE TABLE trade_events (id INTEGER PRIMARY KEY, trade_id TEXT, from_state TEXT,"
        " to_state TEXT, cause TEXT, client_order_id TEXT, at TEXT);"
        "INSERT INTO trades VALUES ('t', 'S0', '', ''); INSERT INTO orders VALUES"
        " (1, 't', 'c', 'INTENT', 0, '');"
    )

    def step(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        changed = db.execute(
            "UPDATE trades SET state = ?, updated_at = ? WHERE id = 't' AND state = ?",
            (f"S{i + 1}", "now", f"S{i}"),
        ).rowcount
        assert changed == 1
        db.execute(
            "UPDATE orders SET status = 'CLOSED', filled = ? WHERE client_order_id = 'c'", (i,)
        )
        db.execute(
            "INSERT INTO trade_events (trade_id, from_state, to_state, cause, client_order_id, at)"
            " VALUES ('t', ?, ?, 'step', 'c', 'now')",
            (f"S{i}", f"S{i + 1}"),
        )
        db.execute("COMMIT")

    with stopwatch() as watch:
        for i in range(n):
            await asyncio.to_thread(step, i)
    db.close()
    return watch.seconds / n


def run(quick: bool) -> Result:
    n = 30 if quick else 150
    loops = 100 if quick else 300
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-", dir=Path(__file__).parent) as tmp:
        directory = Path(tmp)
        file_s, file_tr, file_commits = asyncio.run(
            _engine_run(f"sqlite:///{directory / 'trades.db'}", n)
        )
        mem_s, mem_tr, _ = asyncio.run(_engine_run("sqlite+aiosqlite:///:memory:", n))
        fsync = _fsync_loop(directory, loops)
        commit = _sqlite_commit_loop(directory, loops)
        lean = asyncio.run(_lean_step_loop(directory, loops))
    per_file = file_s / file_tr
    per_mem = mem_s / mem_tr
    result = Result(
        "durability",
        data={
            "trades": n - 1,
            "file_seconds": file_s,
            "file_transitions": file_tr,
            "file_commits": file_commits,
            "memory_seconds": mem_s,
            "memory_transitions": mem_tr,
            "fsync_us": fsync * 1e6,
            "sqlite_commit_us": commit * 1e6,
            "lean_step_us": lean * 1e6,
        },
    )
    result.add(
        "engine on SQLite file (WAL, FULL)",
        f"{(n - 1) / file_s:.0f} trades/s, {per_file * 1e6:,.0f} us/transition",
        f"{file_tr / (n - 1):.1f} transitions per trade",
        file_us_per_transition=per_file * 1e6,
    )
    result.add(
        "engine on in-memory SQLite",
        f"{(n - 1) / mem_s:.0f} trades/s, {per_mem * 1e6:,.0f} us/transition",
        f"file / memory = {per_file / per_mem:.2f}x: what crash safety (fsync) costs",
        memory_us_per_transition=per_mem * 1e6,
    )
    result.add(
        "bare write+fsync, same directory",
        f"{fsync * 1e6:,.0f} us",
        f"engine = {per_file / fsync:.1f}x this per transition (target <= 2x)",
        engine_over_fsync=per_file / fsync,
    )
    result.add(
        "bare sqlite3 commit, same pragmas",
        f"{commit * 1e6:,.0f} us",
        f"engine = {per_file / commit:.1f}x this per transition",
        engine_over_commit=per_file / commit,
    )
    per_commit = file_s / file_commits
    result.add(
        "engine per commit (SQLite file)",
        f"{per_commit * 1e6:,.0f} us",
        f"{file_commits / (n - 1):.1f} commits per trade, each with its steps' I/O and "
        f"decisions: {per_commit / commit:.1f}x a bare commit",
        engine_commit_over_commit=per_commit / commit,
    )
    result.add(
        "one step's rows via sqlite3, 1 thread hop",
        f"{lean * 1e6:,.0f} us",
        f"a leaner store: engine = {per_file / lean:.1f}x this",
        engine_over_lean=per_file / lean,
    )
    return result
