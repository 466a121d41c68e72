"""What `pairexec` does with input it cannot use: one line on stderr, exit 2, nothing sent.

Also: the shared options before or after the command name, user text printed literally (never
as rich markup), and a database written by a newer pairexec. The exit codes and stderr are
what a supervisor or a shell script sees, so those cases run the real program.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pairexec.fsm.cli import main, options, render
from pairexec.fsm.cli.commands import recover
from pairexec.fsm.cli.errors import CliError
from pairexec.migrations import known_revision
from pairexec.persistence import TradeStore, head_revision
from tests.system.test_cli import TRADE, assert_one_line_error, paper_orders


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real program, stdin closed. ``args`` may hold lone surrogates: they reach the
    process as the undecodable bytes they stand for (os.fsencode)."""
    environ = {**os.environ, "COLUMNS": "200"}
    for name in (options.DB_ENV, options.EXCHANGE_ENV):
        environ.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**environ, **(env or {})},
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode("utf-8", "replace"),
        result.stderr.decode("utf-8", "replace"),
    )


def nothing_sent(cwd: Path) -> bool:
    paper = cwd / "pairexec.paper.db"
    return not paper.exists() or paper_orders(paper) == []


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- bad input: exit 2, one line ------------------------------------------------------------

NO_DB = "postgresql://u:hunter2@127.0.0.1:abc/db"


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        ([*TRADE, "--db", "garbage"], {}, ["--db 'garbage'", "file path"]),
        (["status"], {"PAIREXEC_DB": "garbage"}, ["PAIREXEC_DB 'garbage'", "file path"]),
        (["status"], {"PAIREXEC_DB": ""}, ["PAIREXEC_DB is empty"]),
        ([*TRADE, "--db", NO_DB], {}, ["not a valid database URL", "port 'abc'"]),
        (["status", "--db", "mysql://u@h/db"], {}, ["SQLite or PostgreSQL", "'mysql'"]),
        ([*TRADE, "--lease-seconds", "nan"], {}, ["--lease-seconds", "'nan'"]),
        ([*TRADE, "--lease-seconds", "inf"], {}, ["--lease-seconds", "'inf'"]),
        ([*TRADE, "--lease-seconds", "1e300"], {}, ["--lease-seconds", "at most 86400"]),
        (["status", "--limit", "1" * 23], {}, ["--limit", "at most"]),
        (["worker", "--poll", "nan"], {}, ["--poll"]),  # spun at 100% CPU before
        (["worker", "--poll", "-1"], {}, ["--poll"]),
        (["worker", "--poll", "inf"], {}, ["--poll"]),
        ([*TRADE, "--signal-id", "a\udcffb"], {}, ["not valid UTF-8", "b'a\\xffb'"]),
        (["trade", "BTC/USDT", "buy", "lots", "ETH/USDT", "sell"], {}, ["amount_x", "lots"]),
        (["--exchange", "binance", "status"], {}, ["--exchange does not apply to"]),
        (["simulate", "--runs", "1" * 13], {}, ["--runs"]),
        (["simulate", "--jobs", "-1"], {}, ["--jobs"]),
        ([], {}, ["COMMAND"]),
    ],
)
def test_refused_before_anything_is_loaded(tmp_path: Path, args, env, words):
    """Each of these exited 1 with a traceback, spun, or printed two lines before."""
    result = run(*args, cwd=tmp_path, env=env, timeout=30)
    assert_one_line_error(result, *words)
    assert "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no paper exchange file created


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--hedge-ratio", "1e308"], ["hedge_ratio x amount_x"]),  # leg B was inf: ABORTED
        (["--paper-state", ""], ["paper exchange state"]),
    ],
)
def test_refused_before_anything_is_sent(tmp_path: Path, extra: list[str], words: list[str]):
    result = run(*TRADE, *extra, cwd=tmp_path)
    assert_one_line_error(result, *words)
    assert nothing_sent(tmp_path)


def test_paper_state_that_is_the_trades_database_is_refused_untouched(tmp_path: Path):
    db = tmp_path / "t.db"
    asyncio.run(_create(f"sqlite:///{db}"))
    before = digest(db)
    result = run(*TRADE, "--db", "t.db", "--paper-state", "./t.db", cwd=tmp_path)
    assert_one_line_error(result, "--paper-state", "the trades database itself")
    assert digest(db) == before


def test_paper_state_that_is_not_sqlite_is_refused(tmp_path: Path):
    (tmp_path / "pairexec.paper.db").write_text("not a database\n")
    result = run(*TRADE, cwd=tmp_path)
    assert_one_line_error(result, "paper exchange state", "not a database")
    assert not (tmp_path / "pairexec.db").exists()


# --- user text is printed as it is -----------------------------------------------------------

MARKUP = "[bold]:smile:[/x]"
"""Rich markup and an emoji code: rich raised MarkupError on the unmatched [/x]."""


def test_signal_ids_with_markup_are_printed_literally(tmp_path: Path):
    first = run(*TRADE, "--signal-id", MARKUP, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    trade_id = first.stdout.split()[1].rstrip(":")

    again = run(*TRADE, "--signal-id", MARKUP, cwd=tmp_path)
    assert again.returncode == 1 and "Traceback" not in again.stderr, again.stderr
    assert f"signal {MARKUP!r} already made trade {trade_id}" in again.stdout

    show = run("show", trade_id[:8], cwd=tmp_path)
    assert show.returncode == 0 and "Traceback" not in show.stderr, show.stderr
    assert f"signal {MARKUP}" in show.stdout
    assert len(paper_orders(tmp_path / "pairexec.paper.db")) == 2  # one trade, not two


def test_the_consoles_do_not_interpret_text():
    for console in (render.console, render.errors):
        with console.capture() as captured:
            console.print(MARKUP)
        assert captured.get().strip() == MARKUP


# --- the shared options before or after the command ------------------------------------------


def test_common_options_before_or_after_the_command(tmp_path: Path):
    """The --chaos before the command fails leg A: dropped (or overwritten by the one after),
    the trade would be DONE instead of FAILED."""
    traded = run(
        "-v",
        "--db",
        "t.db",
        "--chaos",
        "BTC/USDT:reject_funds=1",
        *TRADE,
        "--chaos",
        "ETH/USDT:latency=0",
        cwd=tmp_path,
    )
    assert traded.returncode == 1 and "FAILED" in traded.stdout, traded.stdout + traded.stderr
    assert "INFO pairexec" in traded.stderr  # -v before the command
    trade_id = traded.stdout.split()[1].rstrip(":")
    url = f"sqlite:///{tmp_path / 't.db'}"
    for args in (["--db", url, "status"], ["status", "--db", "t.db"]):
        status = run(*args, cwd=tmp_path)
        assert status.returncode == 0, (args, status.stdout + status.stderr)
        assert trade_id[:8] in status.stdout and "FAILED" in status.stdout
    assert not (tmp_path / "pairexec.db").exists()  # never fell back to the default


def test_the_command_line_beats_the_environment(tmp_path: Path):
    asyncio.run(_create(f"sqlite:///{tmp_path / 'env.db'}"))
    env = {"PAIREXEC_DB": str(tmp_path / "env.db")}  # a plain path in the variable too
    from_env = run("status", cwd=tmp_path, env=env)
    assert from_env.returncode == 0 and "no trades" in from_env.stdout, from_env.stderr
    given = run("status", "--db", "other.db", cwd=tmp_path, env=env)
    assert_one_line_error(given, "no database", "other.db")


def test_later_values_win_and_chaos_accumulates():
    args = main.parse(["--db", "a.db", "--chaos", "A", *TRADE, "--db", "b.db", "--chaos", "B"])
    assert make_url(args.db).database == str(Path("b.db").absolute())
    assert args.chaos == ["A", "B"]
    assert args.exchange == "paper" and args.lease_seconds == 30.0 and not args.verbose


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PAIREXEC_DB", "sqlite:///from-env.db")
    monkeypatch.setenv("PAIREXEC_EXCHANGE", "binance")
    args = main.parse(["recover"])
    assert (args.db, args.exchange) == ("sqlite:///from-env.db", "binance")
    assert main.parse(["--exchange", "paper", "recover"]).exchange == "paper"


def test_simulate_and_demo_take_verbose_and_seed_either_side():
    assert (main.parse(["simulate"]).seed, main.parse(["simulate"]).verbose) == (0, False)
    assert main.parse(["--seed", "5", "-v", "simulate"]).seed == 5
    assert main.parse(["simulate", "--seed", "6"]).verbose is False
    assert main.parse(["-v", "demo"]).verbose and main.parse(["demo", "-v"]).verbose
    with pytest.raises(CliError, match="--db does not apply to 'pairexec demo'"):
        main.parse(["--db", "x.db", "demo"])


def test_text_no_byte_stands_for_is_refused_too(capsys: pytest.CaptureFixture[str]):
    assert main.main(["show", "\ud800"]) == 2
    assert r"not valid UTF-8 text: b'\\ud800'" in capsys.readouterr().err


def test_every_command_has_a_handler():
    assert set(main.COMMANDS) == set(options.APPLIES)
    for name in main.COMMANDS:
        assert callable(importlib.import_module(f"pairexec.fsm.cli.commands.{name}").run)


# --- what --db means ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["trades.db", "t.SQLITE", "x.sqlite3", "data/trades", "./t"])
def test_a_file_path_is_a_sqlite_database(value: str):
    url = options.database_url(value, "--db")
    assert make_url(url).get_backend_name() == "sqlite"
    assert make_url(url).database == str(Path(value).absolute())


def test_a_path_with_url_characters_stays_that_path():
    url = options.database_url("odd?name#1%.db", "--db")
    assert make_url(url).database == str(Path("odd?name#1%.db").absolute())


@pytest.mark.parametrize("value", ["sqlite:///x.db", "postgresql://u@h:5432/db", "sqlite://"])
def test_a_url_is_taken_as_it_is(value: str):
    assert options.database_url(value, "--db") == value


@pytest.mark.parametrize("value", ["garbage", "trades", "", "  ", "x.txt", "foo://x"])
def test_anything_else_is_refused(value: str):
    with pytest.raises(CliError):
        options.database_url(value, "--db")


# --- a database written by a newer pairexec -------------------------------------------------


async def _create(url: str) -> None:
    async with TradeStore(url):
        pass


def _from_the_future(tmp_path: Path) -> Path:
    db = tmp_path / "pairexec.db"
    asyncio.run(_create(f"sqlite:///{db}"))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    conn.close()
    return db


@pytest.mark.parametrize("action", ["current", "upgrade"])
def test_db_commands_on_a_newer_database_say_upgrade_pairexec(tmp_path: Path, action: str):
    db = _from_the_future(tmp_path)
    before = digest(db)
    result = run("db", action, cwd=tmp_path)
    assert_one_line_error(result, "written by a newer pairexec (revision ffff_future")
    assert result.stderr.rstrip().endswith("upgrade pairexec")
    assert "db upgrade" not in result.stderr
    assert digest(db) == before


def test_known_revisions():
    assert known_revision(head_revision())
    assert not known_revision("ffff_future")
    assert not known_revision(head_revision()[:4])  # alembic would accept a unique prefix


# --- a crash is not reported as "not executed" ----------------------------------------------


def test_a_crash_while_trading_exits_3_not_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    async def crash(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recover, "run", crash)
    assert main.main(["recover"]) == 3
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "run 'pairexec recover'" in err
