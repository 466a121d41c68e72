"""What ``status`` and ``show`` look like: one line per trade within 80 columns (ids as their
shortest unique beginning, long text with an ellipsis), ``--wide`` in full, dates on what is not
from today, the venue's words in a rejection's reason; plain rows when piped, rich tables on a
terminal; ``status --watch`` until Ctrl-C. The trades are made in-process (``main.main``);
only what needs a real terminal width or a signal runs as a process."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from pairexec.fsm.cli import main, render
from pairexec.fsm.cli.commands.status import short_ids

TRADE = ["trade", "BTC/USDT", "buy", "1", "ETH/USDT", "sell"]
BOXES = set("─━│┃┏┓┗┛┡┩└┘╇╋┳┻")
OLD = "2020-01-02 03:04:05.678000"
"""When the backdated trade was created (as SQLite stores it)."""


def pairexec(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``pairexec`` at 80 columns, piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "pairexec.fsm.cli", *args],
        cwd=cwd,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80"},
    )


@pytest.fixture(scope="module")
def trades(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A database of five trades, newest first: DONE (a perpetual's long symbol), PARKED (its
    unwind rejected), ABORTED (leg B rejected), FAILED (leg A rejected) and a DONE one
    created in 2020."""
    folder = tmp_path_factory.mktemp("layout")
    db = f"sqlite:///{folder / 'pairexec.db'}"
    made = []
    for extra in (
        [],  # the old one
        ["--chaos", "BTC/USDT:reject_funds=1"],
        ["--chaos", "ETH/USDT:reject_invalid=1"],
        ["--chaos", "ETH/USDT:reject_invalid=1;BTC/USDT@sell:reject_invalid=9"],
    ):
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "stdout", out)
            main.main(["--db", db, *TRADE, *extra])
        made.append(out.getvalue().split()[1].rstrip(":"))
    with sqlite3.connect(folder / "pairexec.db") as conn:
        conn.execute("UPDATE trades SET created_at = ? WHERE id = ?", (OLD, made[0]))
        conn.execute(
            "UPDATE trade_events SET at = ? WHERE trade_id = ? AND from_state IS NULL",
            (OLD, made[0]),
        )
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", out)
        args = ["trade", "DOGE/USDT", "buy", "100", "ETH/USDT:USDT", "sell", "--signal-id", "x" * 9]
        main.main(["--db", db, *args])
    made.append(out.getvalue().split()[1].rstrip(":"))
    return folder, made[::-1]


def test_status_at_80_columns_is_a_line_per_trade(trades: tuple[Path, list[str]]):
    folder, ids = trades
    status = pairexec("status", cwd=folder)
    out, err = status.communicate(timeout=120)
    assert status.returncode == 0, err
    rows = [line for line in out.splitlines() if line[:8] in {i[:8] for i in ids}]
    assert [row.split()[0] for row in rows] == [i[:8] for i in ids]  # newest first, unique
    assert all(len(row) <= 80 for row in out.splitlines()), out
    assert len(out.splitlines()) == len(ids) + 3  # title, header, rows, the counts
    parked = rows[1]
    assert "PARKED" in parked and parked.rstrip().endswith("…")  # the reason, shortened
    assert "2020-01-02 03:04" in rows[4] and "2020-01-02" not in rows[0]  # today: no date
    assert not BOXES & set(out) and "\x1b[" not in out  # piped: plain text


def test_wide_is_every_column_and_every_word(
    trades: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
):
    folder, ids = trades
    assert main.main(["--db", str(folder / "pairexec.db"), "status", "--wide"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()[:1] != []}
    assert set(ids) <= set(rows)  # whole ids, one line each
    assert "InsufficientFunds: paper chaos: insufficient balance for BTC/USDT" in rows[ids[3]]
    assert "leg B: InvalidOrder" in rows[ids[2]] and "unwind: InvalidOrder" in rows[ids[1]]
    assert "sell ETH/USDT:USDT x1" in rows[ids[0]] and "2020-01-02 03:04:05" in rows[ids[4]]
    assert not BOXES & set(out)


def test_show_dates_what_is_not_from_today_and_keeps_the_reason_whole(
    trades: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
):
    folder, ids = trades
    db = str(folder / "pairexec.db")
    assert main.main(["--db", db, "show", ids[4][:8]]) == 0
    old = capsys.readouterr().out
    # A timeline line opens with its time (and a date when not from today), whatever the hour.
    stamped = re.compile(r"(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d")
    accepted, *later = [line for line in old.splitlines() if stamped.match(line)]
    assert accepted.startswith("2020-01-02 03:04:05.678 ")
    assert later and not any(line.startswith("2020") for line in later)
    assert main.main(["--db", db, "show", ids[3][:8]]) == 0
    failed = capsys.readouterr().out
    assert "reason: leg A rejected; nothing executed (leg A: InsufficientFunds: paper chaos" in (
        failed
    )
    assert not BOXES & set(failed) and "A1" in failed


def test_a_terminal_gets_rich_tables(
    trades: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    folder, ids = trades
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80, markup=False, emoji=False)
    monkeypatch.setattr(render, "console", terminal)
    assert main.main(["--db", str(folder / "pairexec.db"), "status"]) == 0
    assert main.main(["--db", str(folder / "pairexec.db"), "show", ids[0]]) == 0
    text = screen.getvalue()
    assert "─" in text and "\x1b[" in text  # a rule under the header; the states coloured
    plain = [line for line in text.splitlines() if "\x1b" not in line]
    assert all(len(line) <= 80 for line in plain)


def test_the_trade_prints_the_venues_rejection(trades: tuple[Path, list[str]], capsys):
    folder, _ = trades
    args = ["--db", str(folder / "x.db"), *TRADE, "--chaos", "BTC/USDT:reject_invalid=1"]
    assert main.main(args) == 1
    out = capsys.readouterr().out
    assert "leg A rejected; nothing executed (leg A: InvalidOrder: paper chaos" in out


def test_ids_are_shortened_to_their_shortest_unique_beginning():
    known = ["abcdef0123", "abcdef0199", "abcdef0200", "12345678ff"]

    async def starting_with(prefix: str, limit: int = 5) -> list[str]:
        return [i for i in known if i.startswith(prefix)][:limit]

    store = SimpleNamespace(trade_ids_starting_with=starting_with)
    short = asyncio.run(short_ids(store, known))  # type: ignore[arg-type]
    assert short == {
        "abcdef0123": "abcdef012",
        "abcdef0199": "abcdef019",
        "abcdef0200": "abcdef02",
        "12345678ff": "12345678",
    }


def test_watch_redraws_until_ctrl_c_and_exits_0(trades: tuple[Path, list[str]]):
    folder, ids = trades
    watch = pairexec("status", "--watch", "--interval", "0.2", cwd=folder)
    assert watch.stderr is not None
    assert "Ctrl-C to stop" in watch.stderr.readline()  # printed once SIGINT is its own
    time.sleep(0.8)  # a few redraws
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err
    assert ids[0][:8] in out and f"all {len(ids)} trades" in out
