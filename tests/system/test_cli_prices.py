"""`pairexec trade --limit / --max-slippage-bps`: price-protected legs from the command line."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pairexec.fsm.paper import DEFAULT_MARKETS
from tests.system.test_cli import assert_one_line_error, paper_orders, run

TRADE = ("trade", "BTC/USDT", "buy", "0.1", "ETH/USDT", "sell", "--hedge-ratio", "15")


def test_max_slippage_sends_each_leg_as_a_limit_ioc_and_show_prints_it(tmp_path: Path):
    trade = run(*TRADE, "--max-slippage-bps", "20", cwd=tmp_path)
    assert trade.returncode == 0 and "DONE" in trade.stdout, trade.stdout + trade.stderr

    bought, sold = paper_orders(tmp_path / "pairexec.paper.db")
    btc, eth = DEFAULT_MARKETS["BTC/USDT"].price, DEFAULT_MARKETS["ETH/USDT"].price
    assert (bought["type"], bought["price"]) == ("limit", pytest.approx(btc * 1.002))
    assert (sold["type"], sold["price"]) == ("limit", pytest.approx(eth * 0.998))
    [(trade_id,)] = sqlite3.connect(tmp_path / "pairexec.db").execute("SELECT id FROM trades")
    show = run("show", trade_id, "--wide", cwd=tmp_path)  # the orders' every column
    assert show.returncode == 0, show.stderr
    assert "reference" in show.stdout and "limit" in show.stdout
    assert f"{btc * 1.002:g}" in show.stdout and f"{eth * 0.998:g}" in show.stdout


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (("--max-slippage-bps", "-3"), ("--max-slippage-bps -3", "between 0 and")),
        (("--limit", "nan"), ("--limit", "finite number > 0")),
    ],
)
def test_a_bad_band_or_limit_is_one_line_and_nothing_stored(tmp_path: Path, option, words):
    refused = run(*TRADE, *option, cwd=tmp_path)

    assert_one_line_error(refused, *words)
    assert not (tmp_path / "pairexec.db").exists()  # refused before the database is opened
