"""The paper exchange's taker fee (``PaperExchange(taker_fee=...)``): charged on a buy in the
base currency it receives (as Binance does by default), on a sell in the quote, reported in
ccxt's ``fee``/``fees``; and the engine on it: an unwind after a fee in the coin sells only
what the account holds, and the outcome carries net amounts, average prices and fees."""

from __future__ import annotations

from pathlib import Path

import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.paper import PaperExchange
from tests.conftest import FAST, btc_eth


async def free(ex: PaperExchange, asset: str) -> float:
    return float((await ex.fetch_balance())["free"].get(asset, 0.0))


async def test_a_buy_pays_in_the_base_and_a_sell_in_the_quote():
    ex = PaperExchange(taker_fee=0.001, balances={"USDT": 10_000.0, "BTC": 0.0})
    try:
        buy = await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "a"})
        assert buy["fee"] == {"currency": "BTC", "cost": pytest.approx(0.00001), "rate": 0.001}
        assert buy["fees"] == [buy["fee"]]
        assert await free(ex, "BTC") == pytest.approx(0.00999)
        assert await free(ex, "USDT") == pytest.approx(9_400)

        sell = await ex.create_order(
            "BTC/USDT", "market", "sell", 0.005, None, {"clientOrderId": "b"}
        )
        assert sell["fee"]["currency"] == "USDT" and sell["fee"]["cost"] == pytest.approx(0.3)
        assert await free(ex, "USDT") == pytest.approx(9_400 + 300 - 0.3)
        assert await free(ex, "BTC") == pytest.approx(0.00499)
        # a lookup reports the same fee
        again = await ex.fetch_order(buy["id"], "BTC/USDT")
        assert again["fee"] == buy["fee"]
    finally:
        await ex.close()


async def test_no_fee_by_default():
    ex = PaperExchange(balances={"USDT": 10_000.0, "BTC": 0.0})
    try:
        buy = await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "a"})
        assert buy["fee"] is None and buy["fees"] == []
        assert await free(ex, "BTC") == 0.01
    finally:
        await ex.close()


@pytest.mark.parametrize("rate", [-0.001, 1.0, 2.0])
def test_the_fee_rate_is_checked(rate):
    with pytest.raises(ValueError, match="taker_fee"):
        PaperExchange(taker_fee=rate)


async def test_an_unwind_after_a_fee_in_the_coin_sells_the_net_and_aborts(tmp_path: Path):
    """Buy 1.0 BTC, 0.1 fills and pays 0.0001 BTC: the account holds 0.0999 BTC. The unwind
    sells exactly that (selling 0.1 would be refused for funds: the trade used to PARK)."""
    ex = PaperExchange(
        taker_fee=0.001,
        chaos="BTC/USDT@buy:fill=0.1",
        balances={"USDT": 1_000_000.0, "BTC": 0.0, "ETH": 0.0},
    )
    try:
        async with ExecutionEngine(ex, f"sqlite:///{tmp_path / 't.db'}", config=FAST) as engine:
            outcome = await engine.execute_pair_trade(btc_eth(1.0))
        assert outcome.state is TradeState.ABORTED, outcome.reason
        assert outcome.filled_x == pytest.approx(0.1)
        assert outcome.net_x == pytest.approx(0.0999)
        assert outcome.unwound_x == pytest.approx(0.0999)
        assert outcome.average_x == 60_000 and outcome.average_y is None
        assert outcome.fees == pytest.approx({"BTC": 0.0001, "USDT": 0.0999 * 60_000 * 0.001})
        assert await free(ex, "BTC") == pytest.approx(0.0, abs=1e-12)  # nothing left open
    finally:
        await ex.close()


async def test_leg_b_hedges_leg_as_net_on_the_paper_exchange(tmp_path: Path):
    ex = PaperExchange(taker_fee=0.001)
    try:
        async with ExecutionEngine(ex, f"sqlite:///{tmp_path / 't.db'}", config=FAST) as engine:
            outcome = await engine.execute_pair_trade(btc_eth(1.0, hedge_ratio=10.0))
        assert outcome.state is TradeState.DONE, outcome.reason
        assert outcome.net_x == pytest.approx(0.999)
        assert outcome.filled_y == pytest.approx(9.99)  # 10 x the net, not 10 x 1.0
        assert outcome.net_y == outcome.filled_y  # a sell paying in the quote
        assert outcome.fees == pytest.approx({"BTC": 0.001, "USDT": 9.99 * 3_000 * 0.001})
    finally:
        await ex.close()
