"""The `pairexec` command line, run as a real process: output, exit codes, clear errors."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pairexec.fsm.cli.commands.recover import recovered_row
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.cli.render import RECOVER_ROWS, recover_summary
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import PairTradeRequest, TradeOutcome
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore, head_revision

TRADE = ("trade", "BTC/USDT", "buy", "1", "ETH/USDT", "sell")
"""A valid trade command line: the cases add to it what they are about."""


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def paper_orders(path: Path) -> list[dict]:
    paper = PaperExchange(path)
    try:
        return paper.all_orders()
    finally:
        asyncio.run(paper.close())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pairexec: error:"), result.stderr
    for word in words:
        assert word in lines[0]


def test_trade_status_show_on_the_default_database(tmp_path: Path):
    trade = run(
        "trade", "BTC/USDT", "buy", "0.5", "ETH/USDT", "sell", "--hedge-ratio", "10", cwd=tmp_path
    )
    assert trade.returncode == 0, trade.stderr
    assert "DONE" in trade.stdout
    assert "PENDING → LEG_A_SENT → LEG_A_FILLED → LEG_B_SENT → DONE" in trade.stdout
    assert "leg B ETH/USDT filled 5" in trade.stdout
    assert (tmp_path / "pairexec.db").exists() and (tmp_path / "pairexec.paper.db").exists()

    trade_id = trade.stdout.split()[1].rstrip(":")
    status = run("status", cwd=tmp_path)
    assert status.returncode == 0 and trade_id[:8] in status.stdout and "DONE" in status.stdout
    show = run("show", trade_id[:6], cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "events" in show.stdout and "orders" in show.stdout and "LEG_B_SENT" in show.stdout
    orders = paper_orders(tmp_path / "pairexec.paper.db")
    assert len(orders) == 2
    for order in orders:
        assert order["clientOrderId"] in show.stdout


def test_trade_outcomes_map_to_exit_codes(tmp_path: Path):
    failed = run(*TRADE, "--chaos", "BTC/USDT:reject_funds=1", cwd=tmp_path)
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    first = run(*TRADE, "--signal-id", "s1", cwd=tmp_path)
    dup = run(*TRADE, "--signal-id", "s1", cwd=tmp_path)
    assert first.returncode == 0 and dup.returncode == 1 and "duplicate" in dup.stdout
    unknown = run(
        *TRADE, "--chaos", "ETH/USDT:timeout_after_accept=1,lookup_timeouts=99", cwd=tmp_path
    )
    assert unknown.returncode == 3 and "UNKNOWN" in unknown.stdout and "recover" in unknown.stdout
    recover = run("recover", cwd=tmp_path)
    assert recover.returncode == 0, recover.stdout + recover.stderr
    assert "UNKNOWN" in recover.stdout and "DONE" in recover.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["trade", "FOO/USDT", "buy", "1", "ETH/USDT", "sell"], ["pair_x", "FOO/USDT"]),
        (["trade", "BTC/USDT", "buy", "-1", "ETH/USDT", "sell"], ["amount_x"]),
        (["trade", "BTC/USDT", "hold", "1", "ETH/USDT", "sell"], ["side_x"]),
        (["trade", "BTC/USDT", "buy", "0.000000001", "ETH/USDT", "sell"], ["minimum"]),
        ([*TRADE, "--chaos", "ETH/USDT:nope=1"], ["--chaos"]),
        ([*TRADE, "--exchange", "nosuchex"], ["nosuchex"]),
        ([*TRADE, "--db", "postgresql://nobody@127.0.0.1:1/none"], ["cannot open database"]),
        (["status", "--db", "sqlite:///does/not/exist.db"], ["no database"]),
        (["status", "--limit", "0"], ["--limit", "at least 1"]),
        (["show", "abc"], ["no database"]),
    ],
)
def test_bad_input_is_one_clear_line_and_nothing_is_sent(tmp_path: Path, args, words):
    result = run(*args, cwd=tmp_path)
    assert_one_line_error(result, *words)
    paper = tmp_path / "pairexec.paper.db"
    assert not paper.exists() or paper_orders(paper) == []


def test_argument_errors_exit_2(tmp_path: Path):
    result = run("trade", "BTC/USDT", "buy", "lots", "ETH/USDT", "sell", cwd=tmp_path)
    assert_one_line_error(result, "not a number", "pairexec trade --help")


def test_newer_schema_is_refused(tmp_path: Path):
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0
    with sqlite3.connect(tmp_path / "pairexec.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    result = run(*TRADE, cwd=tmp_path)
    assert_one_line_error(result, "newer pairexec")
    assert paper_orders(tmp_path / "pairexec.paper.db") == []


def test_db_upgrade_and_current(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    missing = run("db", "current", "--db", url, cwd=tmp_path)
    assert_one_line_error(missing, "no database")
    assert run("db", "upgrade", "--db", url, cwd=tmp_path).returncode == 0
    current = run("db", "current", "--db", url, cwd=tmp_path)
    assert current.returncode == 0 and f"{head_revision()} (newest)" in current.stdout


def test_recover_of_many_trades_prints_a_summary_not_a_row_each(tmp_path: Path):
    """More trades than RECOVER_ROWS: one row per (before, after), each trade counted once."""
    n = RECOVER_ROWS + 10

    async def leave_in_flight() -> list[str]:  # PENDING: stored, never sent
        async with TradeStore(f"sqlite:///{tmp_path / 'pairexec.db'}") as store:
            made = [
                await store.create_trade(
                    PairTradeRequest(f"X{i}/USDT", "buy", 1, "ETH/USDT", "sell")
                )
                for i in range(n)
            ]
        return [t.id for t in made if isinstance(t, TradeRecord)]

    ids = asyncio.run(leave_in_flight())
    assert len(ids) == n
    result = run("recover", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"recovering {n} in-flight trade(s)" in result.stdout
    assert f"recover: {n} trades" in result.stdout
    [row] = [line for line in result.stdout.splitlines() if "PENDING" in line]
    assert row.split()[:3] == ["PENDING", "FAILED", str(n)]  # piped: plain rows
    assert not any(trade_id[:12] in result.stdout for trade_id in ids)

    status = run("status", "--limit", "5", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"the newest 5 of {n}" in status.stdout
    assert f"all {n} trades: FAILED {n}" in status.stdout


def test_recover_with_nothing_in_flight(tmp_path: Path):
    result = run("recover", cwd=tmp_path)
    assert result.returncode == 0 and "nothing to recover" in result.stdout


def test_a_trade_that_appears_during_recover_is_reported_not_a_crash():
    """recover() may claim a trade that was not in flight when the CLI listed them (its owner
    died meanwhile): it is reported as new instead of failing the whole report."""
    now = datetime.now(timezone.utc)
    trade = TradeRecord(
        "t1",
        PairTradeRequest("X/USDT", "buy", 1, "Y/USDT", "sell"),
        TradeState.DONE,
        "done",
        now,
        now,
    )
    outcome = TradeOutcome("t1", TradeState.DONE, 1, 1, 0, "done")
    row = recovered_row(None, trade, outcome, CallRecorder(object()))
    assert row.before == "(new)" and not row.needs_attention
    table = recover_summary([row])
    assert table.row_count == 1
