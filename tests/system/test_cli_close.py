"""``pairexec close``, ``--on-parked`` and ``worker --metrics-port``, as an operator runs them:
the command line in this process (``main``), and the worker as a real process whose metrics
endpoint is scraped over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pairexec.fsm.cli import main

TRADE = ("trade", "BTC/USDT", "buy", "0.5", "ETH/USDT", "sell", "--hedge-ratio", "10")
PARK = "ETH/USDT:reject_funds=1;BTC/USDT@sell:reject_invalid=9"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_close_reverses_a_trade_once_and_refuses_what_it_cannot_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, *TRADE, "--json")
    entry = json.loads(out)
    assert code == 0 and entry["closes"] is None

    code, out, _ = cli(capsys, "close", entry["trade_id"][:10], "--json")
    exit_ = json.loads(out)
    assert code == 0, exit_
    assert exit_["closes"] == entry["trade_id"] and exit_["ok"]
    assert (exit_["filled_x"], exit_["filled_y"]) == (0.5, 5.0)

    code, out, _ = cli(capsys, "close", entry["trade_id"])
    assert code == 1  # not executed: a duplicate, nothing sent
    assert "already closed" in out and exit_["trade_id"] in out

    code, _, err = cli(capsys, "close", exit_["trade_id"])
    assert code == 2 and "is itself an exit" in err

    code, _, err = cli(capsys, "close", "f00d")
    assert code == 2 and "no trade with id 'f00d'" in err

    code, out, _ = cli(capsys, "show", exit_["trade_id"], "--json")
    shown = json.loads(out)
    assert shown["closes"] == entry["trade_id"]
    assert [(o["leg"], o["side"]) for o in shown["orders"]] == [("A", "sell"), ("B", "buy")]


def test_close_of_a_missing_database_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "--db", str(tmp_path / "typo.db"), "close", "abc")
    assert code == 2 and "no database at" in err
    assert not (tmp_path / "typo.db").exists()


def test_on_parked_runs_the_command_once_for_the_parked_trade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    hook = 'echo "$PAIREXEC_TRADE_ID $PAIREXEC_STATE" >> alerts.txt'
    code, out, _ = cli(capsys, *TRADE, "--chaos", PARK, "--on-parked", hook, "--json")
    parked = json.loads(out)
    assert code == 3 and parked["state"] == "PARKED"
    other_pair = ("trade", "BTC/USDT", "buy", "0.5", "SOL/USDT", "sell")
    code, out, _ = cli(capsys, *other_pair, "--on-parked", hook, "--json")
    assert code == 0  # DONE: no alert
    assert (tmp_path / "alerts.txt").read_text() == f"{parked['trade_id']} PARKED\n"


def test_the_config_files_alert_applies_and_the_option_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairexec.toml").write_text(
        '[alerts]\non_parked = "echo file >> alerts.txt"\n', encoding="utf-8"
    )
    assert cli(capsys, *TRADE, "--chaos", PARK)[0] == 3
    code, *_ = cli(capsys, *TRADE, "--chaos", PARK, "--on-parked", "echo option >> alerts.txt")
    assert code == 1  # the pair is parked: a duplicate, refused, no alert (nothing ended)
    sol = ("trade", "BTC/USDT", "buy", "0.5", "SOL/USDT", "sell")
    parks_sol = "SOL/USDT:reject_funds=1;BTC/USDT@sell:reject_invalid=9"
    code, *_ = cli(capsys, *sol, "--chaos", parks_sol, "--on-parked", "echo option >> alerts.txt")
    assert code == 3
    assert (tmp_path / "alerts.txt").read_text() == "file\noption\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, deadline: float) -> dict[str, float]:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
            samples = {
                line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
                for line in text.splitlines()
                if line and not line.startswith("#")
            }
            if "pairexec_unresolved_trades" in samples:  # the worker has polled once
                return samples
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the worker's metrics endpoint never answered")
        time.sleep(0.1)


def test_the_worker_serves_metrics_of_the_trades_it_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trade left unresolved (leg B's reply lost, every lookup failed) is finished by the
    worker: the endpoint shows it ended DONE, the lookups it took, and the gauges."""
    monkeypatch.chdir(tmp_path)
    lost = "ETH/USDT:timeout_after_accept=1,lookup_timeouts=99"
    assert cli(capsys, *TRADE, "--chaos", lost)[0] == 3
    port = free_port()
    command = ["worker", "--poll", "0.2", "--metrics-port", str(port)]
    worker = subprocess.Popen(
        [sys.executable, "-m", "pairexec.fsm.cli", *command],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        samples = scrape(port, time.monotonic() + 60)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert samples['pairexec_trades_ended_total{state="DONE"}'] == 1
    assert samples["pairexec_lookups_total"] >= 1
    assert samples["pairexec_unresolved_trades"] == 0 and samples["pairexec_parked_trades"] == 0
    assert samples["pairexec_store_commit_seconds_count"] >= 1


def test_metrics_port_taken_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = cli(capsys, "worker", "--metrics-port", str(port))
    assert code == 2 and f"--metrics-port {port}: cannot listen" in err
