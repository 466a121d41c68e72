"""Several pairexec processes on one PostgreSQL database: exactly once, and take-over.

Real processes, a real PostgreSQL database (fresh per test) and one paper exchange file they
all trade on. The database — its unique constraints, compare-and-set updates and SKIP LOCKED
claims — is the only thing coordinating them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pairexec.fsm.crashpoints import ENV_VAR as KILL_ENV
from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange
from pairexec.fsm.sim.invariants import check_invariants
from pairexec.fsm.states import TERMINAL_STATES
from pairexec.persistence import TradeStore
from tests.conftest import PG_ADMIN
from tests.support.paths import ROOT

pytestmark = pytest.mark.skipif(PG_ADMIN == "off", reason="PAIREXEC_TEST_PG=off")


def cli(*args: str, db: str, paper: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pairexec.fsm.cli",
        *args,
        "--db",
        db,
        "--paper-state",
        str(paper),
    ]


def environment(host: str, kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    env["PAIREXEC_HOST"] = host
    if kill_at:
        env[KILL_ENV] = kill_at
    return env


async def invariants(db: str, paper_path: Path) -> list[str]:
    paper = PaperExchange(paper_path)
    try:
        async with TradeStore(db) as store:
            return await check_invariants(store, paper)
    finally:
        await paper.close()


async def trades_and_events(db: str):
    async with TradeStore(db) as store:
        trades = await store.list_trades(limit=10_000)
        return trades, {t.id: await store.events(t.id) for t in trades}


def test_four_processes_same_50_signals_make_50_trades(pg_db: str, tmp_path: Path):
    paper, barrier = tmp_path / "paper.db", tmp_path / "go"
    asyncio.run(PaperExchange(paper).close())  # create the exchange file once, up front
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.drivers.submit_signals",
                pg_db,
                str(paper),
                "50",
                str(barrier),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(0.5)
    barrier.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(r["executed"] for r in results) == 50
    assert sum(r["duplicates"] for r in results) == 150
    assert sum(r["done"] for r in results) == 50
    trades, _ = asyncio.run(trades_and_events(pg_db))
    assert len(trades) == 50
    assert len(PaperExchange(paper).all_orders()) == 100
    assert asyncio.run(invariants(pg_db, paper)) == []


def trade_killed_at(
    kill_at: str, pair_y: str, ratio: str, *options: str, db: str, paper: Path
) -> None:
    """``pairexec trade`` buying 0.01 BTC against ``pair_y``, SIGKILLed at ``kill_at``."""
    killed = subprocess.run(
        cli(
            *("trade", "BTC/USDT", "buy", "0.01", pair_y, "sell", "--hedge-ratio", ratio),
            *options,
            db=db,
            paper=paper,
        ),
        env=environment("host-a", kill_at=kill_at),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


def test_killed_worker_is_taken_over_after_its_lease_expires(pg_db: str, tmp_path: Path):
    paper = tmp_path / "paper.db"
    trade_killed_at("intent:B", "ETH/USDT", "20", "--lease-seconds", "2", db=pg_db, paper=paper)
    worker = subprocess.Popen(
        cli("worker", "--poll", "0.2", "--lease-seconds", "2", db=pg_db, paper=paper),
        env=environment("host-b"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            trades, events = asyncio.run(trades_and_events(pg_db))
            if trades and trades[0].state in TERMINAL_STATES:
                break
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    [trade] = trades
    assert trade.state.value == "DONE", (trade.reason, out, err)
    journal = events[trade.id]
    [claim] = [e for e in journal if e.cause.startswith("claimed by host-b:")]
    assert "lease of host-a:" in claim.cause and "expired" in claim.cause
    last_step_of_a = max(e.at for e in journal if e.at < claim.at)
    assert (claim.at - last_step_of_a).total_seconds() >= 2 - 0.05  # not before the lease ran out
    assert asyncio.run(invariants(pg_db, paper)) == []


KILL_POINTS = ["intent:A", "sent:A", "intent:B", "sent:B", "state:LEG_A_FILLED", "intent:UNWIND"]


def test_two_recovers_at_once_never_drive_the_same_trade(pg_db: str, tmp_path: Path):
    paper = tmp_path / "paper.db"
    pairs = ["ETH/USDT", "SOL/USDT", "BNB/USDT", "LTC/USDT", "XRP/USDT", "ADA/USDT"]
    for kill_at, pair_y in zip(KILL_POINTS, pairs, strict=True):
        chaos = ["--chaos", f"{pair_y}:reject_invalid=1"] if "UNWIND" in kill_at else []
        ratio = str(DEFAULT_MARKETS["BTC/USDT"].price / DEFAULT_MARKETS[pair_y].price)
        trade_killed_at(kill_at, pair_y, ratio, *chaos, db=pg_db, paper=paper)

    recoverers = [
        subprocess.Popen(
            cli("recover", db=pg_db, paper=paper),
            env=environment("host-a"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    for proc in recoverers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out + err

    trades, events = asyncio.run(trades_and_events(pg_db))
    assert len(trades) == 6 and all(t.state in TERMINAL_STATES for t in trades)
    claims = Counter(t.id for t in trades for e in events[t.id] if e.cause.startswith("claimed by"))
    assert all(claims[t.id] == 1 for t in trades), claims
    assert asyncio.run(invariants(pg_db, paper)) == []
