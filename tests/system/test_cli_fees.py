"""``pairexec status`` and ``show`` print each leg's average price and the fees paid (a trade
made by the library on a paper exchange charging 0.1%, into the CLI's default database)."""

from __future__ import annotations

from pathlib import Path

from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.paper import PaperExchange
from tests.conftest import FAST
from tests.system.test_cli import run


async def test_status_and_show_print_prices_and_fees(tmp_path: Path):
    exchange = PaperExchange(taker_fee=0.001)
    try:
        url = f"sqlite:///{tmp_path / 'pairexec.db'}"
        async with ExecutionEngine(exchange, url, config=FAST) as engine:
            outcome = await engine.execute_pair_trade(
                PairTradeRequest("BTC/USDT", "buy", 0.5, "ETH/USDT", "sell", 10.0)
            )
    finally:
        await exchange.close()
    assert outcome.state is TradeState.DONE, outcome.reason

    status = run("status", "--wide", cwd=tmp_path)  # the full table: prices and fees
    assert status.returncode == 0, status.stderr
    assert "leg A avg" in status.stdout and "fees" in status.stdout
    assert "60000" in status.stdout and "3000" in status.stdout
    assert "BTC 0.0005, USDT 14.985" in status.stdout

    show = run("show", outcome.trade_id[:6], cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "leg A BTC/USDT: filled 0.5, net 0.4995, average 60000" in show.stdout
    assert "leg B ETH/USDT: filled 4.995, net 4.995, average 3000" in show.stdout
    assert "fees: BTC 0.0005, USDT 14.985" in show.stdout
    assert "events" in show.stdout and "orders" in show.stdout  # as before


def test_trade_prints_net_amounts_prices_and_fees(tmp_path: Path):
    trade = run(
        "trade", "BTC/USDT", "buy", "0.5", "ETH/USDT", "sell", "--hedge-ratio", "10", cwd=tmp_path
    )
    assert trade.returncode == 0, trade.stderr
    assert "leg B ETH/USDT filled 5" in trade.stdout  # the line before, kept
    assert "leg A net 0.5 at 60000, leg B net 5 at 3000; fees: none reported" in trade.stdout
