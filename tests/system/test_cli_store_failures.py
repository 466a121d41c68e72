"""The database failing under a running ``pairexec trade``: the exit code must not say
"nothing was sent" (2) once leg A is on the exchange, and ``recover`` must finish the trade."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.system.test_cli import paper_orders, run


def wait_for_state(db: Path, state: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if db.exists():
            with sqlite3.connect(db, timeout=5) as connection:
                try:
                    rows = connection.execute("SELECT state FROM trades").fetchall()
                except sqlite3.OperationalError:  # not migrated yet
                    rows = []
            if rows == [(state,)]:
                return
        time.sleep(0.05)
    raise AssertionError(f"the trade never reached {state}")


def test_a_database_locked_mid_trade_exits_3_and_recover_finishes_it(tmp_path: Path):
    """Leg B is slow on the exchange (2 s); meanwhile another process takes the database's
    write lock. The engine cannot record leg B's answer within ``?timeout=0.3``: leg A is
    filled and leg B placed, so the command exits 3 ("run recover"), not 2."""
    db, paper = tmp_path / "t.db", tmp_path / "p.db"
    common = ("--db", f"sqlite:///{db}?timeout=0.3", "--paper-state", str(paper))
    trade = subprocess.Popen(
        [
            *(sys.executable, "-m", "pairexec.fsm.cli", *common, "--chaos", "ETH/USDT:latency=2"),
            *("trade", "BTC/USDT", "buy", "0.5", "ETH/USDT", "sell", "--hedge-ratio", "10"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        wait_for_state(db, "LEG_B_SENT", trade)
        locker = sqlite3.connect(db, timeout=5, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # held until the trade process has given up
        _, stderr = trade.communicate(timeout=60)
        locker.execute("ROLLBACK")
        locker.close()
    finally:
        if trade.poll() is None:
            trade.kill()
    assert trade.returncode == 3, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("pairexec: error:")]
    assert len(errors) == 1 and "orders may be on the exchange" in errors[0], stderr
    assert "Traceback" not in stderr

    recovered = run(*common, "recover", cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "DONE" in recovered.stdout
    orders = paper_orders(paper)
    assert sorted(o["symbol"] for o in orders) == ["BTC/USDT", "ETH/USDT"]  # one order a leg
