"""`pairexec --config`: the CLI on the venues and settings of the file a bot also reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.system.test_cli import assert_one_line_error, paper_orders, run

TWO_PAPER_VENUES = """
database = "trades.db"

[engine]
lease_seconds = 20
lookup_backoff = 0.01  # lookups that give up in milliseconds: a trade left UNKNOWN at once
max_backoff = 0.05

[venues.a]
exchange = "paper"

[venues.b]
exchange = "paper"
"""

ACROSS = ("trade", "BTC/USDT@a", "buy", "0.5", "BTC/USDT@b", "sell")


def test_a_cross_venue_trade_from_the_config_file_goes_to_each_venue(tmp_path: Path):
    (tmp_path / "pairexec.toml").write_text(TWO_PAPER_VENUES)  # found in the working directory

    trade = run(*ACROSS, cwd=tmp_path)
    status = run("status", cwd=tmp_path)

    assert trade.returncode == 0, trade.stdout + trade.stderr
    assert "DONE" in trade.stdout
    assert (tmp_path / "trades.db").exists()  # the file's database, not pairexec.db
    assert not (tmp_path / "pairexec.db").exists()
    [bought] = paper_orders(tmp_path / "trades.a.paper.db")  # each venue its own book
    [sold] = paper_orders(tmp_path / "trades.b.paper.db")
    assert (bought["side"], bought["filled"]) == ("buy", 0.5)
    assert (sold["side"], sold["filled"]) == ("sell", 0.5)
    assert status.returncode == 0 and "DONE" in status.stdout
    assert "BTC/USDT@a / sell BTC/USDT@b" in status.stdout  # the venue of each leg
    [(trade_id,)] = sqlite3.connect(tmp_path / "trades.db").execute("SELECT id FROM trades")
    show = run("show", trade_id, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "BTC/USDT@a" in show.stdout and "BTC/USDT@b" in show.stdout


def test_recover_with_the_config_file_finishes_a_cross_venue_trade(tmp_path: Path):
    config = tmp_path / "venues.toml"
    config.write_text(TWO_PAPER_VENUES)
    env = {"PAIREXEC_CONFIG": str(config)}
    # Leg B's reply (the sell, on b) is lost and every lookup of it times out: UNKNOWN.
    lost = "BTC/USDT@sell:timeout_after_accept=1,lookup_timeouts=99"
    unknown = run(*ACROSS, "--chaos", lost, cwd=tmp_path, env=env)
    assert unknown.returncode == 3 and "UNKNOWN" in unknown.stdout, unknown.stderr

    recover = run("recover", cwd=tmp_path, env=env)

    assert recover.returncode == 0, recover.stdout + recover.stderr
    assert "UNKNOWN" in recover.stdout and "DONE" in recover.stdout
    assert [o["side"] for o in paper_orders(tmp_path / "trades.b.paper.db")] == ["sell"]
    assert [o["side"] for o in paper_orders(tmp_path / "trades.a.paper.db")] == ["buy"]


FAST_ENGINE = "[engine]\nlookup_backoff = 0.01\nmax_backoff = 0.05\n"
"""Lookups that give up in milliseconds, not seconds: the trade is left UNKNOWN at once."""


def test_recover_without_the_trades_venue_leaves_it_and_status_says_which(tmp_path: Path):
    both = tmp_path / "both.toml"
    both.write_text(
        f'database = "trades.db"\n{FAST_ENGINE}[venues.a]\nexchange = "paper"\n'
        '[venues.b]\nexchange = "paper"\n'
    )
    only_a = tmp_path / "only_a.toml"  # the same database and venue a, without venue b
    only_a.write_text(f'database = "trades.db"\n{FAST_ENGINE}[venues.a]\nexchange = "paper"\n')
    # Leg B (the sell, on b) is accepted but its reply is lost and every lookup times out.
    lost_b = "BTC/USDT@sell:timeout_after_accept=1,lookup_timeouts=99"
    unknown = run("--config", str(both), *ACROSS, "--chaos", lost_b, cwd=tmp_path)
    assert unknown.returncode == 3 and "UNKNOWN" in unknown.stdout, unknown.stderr

    left = run("--config", str(only_a), "recover", cwd=tmp_path)
    status = run("--config", str(only_a), "status", cwd=tmp_path)

    assert left.returncode == 3, left.stdout + left.stderr  # still in flight: needs attention
    assert "not resumed: venue 'b'" in left.stdout
    assert status.returncode == 0, status.stderr
    assert "UNKNOWN" in status.stdout and "DONE" not in status.stdout
    assert "not resumed: venue 'b'" in status.stdout  # the stored reason names the missing venue
    # Nothing was sent, looked up or cancelled: each book holds only the first run's order.
    assert [o["side"] for o in paper_orders(tmp_path / "trades.a.paper.db")] == ["buy"]
    assert [o["side"] for o in paper_orders(tmp_path / "trades.b.paper.db")] == ["sell"]

    done = run("--config", str(both), "recover", cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "DONE" in done.stdout
    # Leg B was found on b, not resent; leg A stayed on a.
    assert [o["side"] for o in paper_orders(tmp_path / "trades.b.paper.db")] == ["sell"]
    assert [o["side"] for o in paper_orders(tmp_path / "trades.a.paper.db")] == ["buy"]


def test_a_venue_the_file_lacks_is_refused_before_anything_is_stored(tmp_path: Path):
    (tmp_path / "pairexec.toml").write_text(TWO_PAPER_VENUES)

    result = run("trade", "BTC/USDT@a", "buy", "0.5", "BTC/USDT@okx", "sell", cwd=tmp_path)

    assert_one_line_error(result, "venue_y 'okx' is not one of the engine's venues (a, b)")
    assert paper_orders(tmp_path / "trades.a.paper.db") == []


def test_a_leg_without_a_venue_is_refused_when_the_file_has_venues(tmp_path: Path):
    (tmp_path / "pairexec.toml").write_text(TWO_PAPER_VENUES)

    result = run("trade", "BTC/USDT@a", "buy", "0.5", "ETH/USDT", "sell", cwd=tmp_path)

    assert_one_line_error(result, "venue_y missing", "(a, b)")


def test_a_mistake_in_the_file_is_one_line_naming_the_key(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[venues.a]\nexchange = 'okxx'\n")

    result = run("--config", str(config), "status", cwd=tmp_path)

    assert_one_line_error(result, "venues.a.exchange: unknown ccxt exchange 'okxx'", "bad.toml")


def test_a_paper_venue_state_file_that_cannot_be_its_own_is_one_line(tmp_path: Path):
    (tmp_path / "pairexec.toml").write_text(
        'database = "trades.db"\n[venues.a]\nexchange = "paper"\nstate = "trades.db"\n'
        '[venues.b]\nexchange = "paper"\nstate = "gone/b.db"\n'
    )

    result = run(*ACROSS, cwd=tmp_path)

    assert_one_line_error(result, "venues.a.state", "is the trades database itself")
    (tmp_path / "pairexec.toml").write_text(
        'database = "trades.db"\n[venues.b]\nexchange = "paper"\nstate = "gone/b.db"\n'
    )
    missing = run("trade", "BTC/USDT@b", "buy", "0.5", "ETH/USDT@b", "sell", cwd=tmp_path)
    assert_one_line_error(missing, "state directory", "gone", "does not exist")


def test_a_config_file_that_is_not_there_is_refused(tmp_path: Path):
    result = run("--config", "nope.toml", "status", cwd=tmp_path)

    assert_one_line_error(result, "--config nope.toml: no such file")


def test_the_command_line_overrides_the_file(tmp_path: Path):
    (tmp_path / "pairexec.toml").write_text(TWO_PAPER_VENUES)

    # --db over the file's database; --exchange: one exchange instead of the file's venues.
    trade = run("--db", "other.db", "--exchange", "paper", *TRADE_ONE_EXCHANGE, cwd=tmp_path)

    assert trade.returncode == 0, trade.stdout + trade.stderr
    assert (tmp_path / "other.db").exists() and not (tmp_path / "trades.db").exists()
    assert len(paper_orders(tmp_path / "other.paper.db")) == 2


TRADE_ONE_EXCHANGE = ("trade", "BTC/USDT", "buy", "0.5", "ETH/USDT", "sell")
