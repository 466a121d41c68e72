"""The paper exchange: matching, balances, seeded chaos, and state that outlives a process."""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.paper import ChaosConfig, Fault, MarketSpec, PaperExchange, SymbolChaos
from pairexec.fsm.venues.errors import ErrorMeaning, classify
from tests.conftest import FAST, btc_eth
from tests.support.paths import ROOT

Make = Callable[..., PaperExchange]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "paper.db"


@pytest.fixture
def make(db_path: Path) -> Iterator[Make]:
    """Open paper exchanges on the test's file (closed at the end); kwargs as PaperExchange's."""
    opened: list[PaperExchange] = []

    def factory(path: Path | None = db_path, **kwargs: Any) -> PaperExchange:
        exchange = PaperExchange(path, **kwargs)
        opened.append(exchange)
        return exchange

    yield factory
    for exchange in opened:
        exchange.book.close()


def cid(n: int) -> dict[str, str]:
    return {"clientOrderId": f"cid-{n}"}


async def free(exchange: PaperExchange, asset: str) -> float:
    return float((await exchange.fetch_balance())[asset]["free"])


# --- matching and balances ----------------------------------------------------------------


async def test_market_order_fills_at_the_price_and_moves_balances(make: Make) -> None:
    ex = make(balances={"USDT": 10_000.0, "BTC": 0.0})
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, cid(1))
    assert (order["status"], order["filled"], order["remaining"]) == ("closed", 0.01, 0.0)
    assert order["average"] == 60_000 and order["cost"] == pytest.approx(600)
    assert order["clientOrderId"] == "cid-1" and order["symbol"] == "BTC/USDT"
    assert await free(ex, "USDT") == pytest.approx(9_400)
    assert await free(ex, "BTC") == pytest.approx(0.01)

    ex.set_price("BTC/USDT", 70_000)
    await ex.create_order("BTC/USDT", "market", "sell", 0.005, None, cid(2))
    balance = await ex.fetch_balance()
    assert balance["free"]["USDT"] == pytest.approx(9_750)
    assert balance["total"]["BTC"] == pytest.approx(0.005)
    assert balance["used"]["USDT"] == 0


async def test_partial_fill_ratio_closes_with_the_filled_part(make: Make) -> None:
    ex = make(chaos="ETH/USDT:fill=0.6", balances={"USDT": 10_000.0, "ETH": 0.0})
    order = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert (order["status"], order["filled"]) == ("closed", 0.6)
    assert order["remaining"] == pytest.approx(0.4)
    assert await free(ex, "ETH") == pytest.approx(0.6)
    assert await free(ex, "USDT") == pytest.approx(10_000 - 0.6 * 3_000)


async def test_partial_fills_are_whole_steps(make: Make) -> None:
    ex = make(chaos="BTC/USDT:fill=0.6")
    order = await ex.create_order("BTC/USDT", "market", "buy", 0.00123, None, cid(1))
    assert order["filled"] == pytest.approx(0.00073)  # 0.000738 rounded down to 0.00001


async def test_leave_open_reserves_the_rest_and_cancel_keeps_the_fill(make: Make) -> None:
    ex = make(chaos="ETH/USDT:fill=0.6,leave_open=1", balances={"USDT": 10_000.0})
    order = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert (order["status"], order["filled"]) == ("open", 0.6)
    balance = await ex.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(0.4 * 3_000)
    assert balance["USDT"]["free"] == pytest.approx(10_000 - 3_000)
    assert [o["id"] for o in await ex.fetch_open_orders("ETH/USDT")] == [order["id"]]

    canceled = await ex.cancel_order(order["id"], "ETH/USDT")
    assert (canceled["status"], canceled["filled"]) == ("canceled", 0.6)
    assert (await ex.fetch_order(order["id"], "ETH/USDT"))["status"] == "canceled"
    assert await ex.fetch_open_orders() == []
    balance = await ex.fetch_balance()
    assert balance["USDT"]["used"] == 0
    assert balance["USDT"]["free"] == pytest.approx(10_000 - 0.6 * 3_000)
    with pytest.raises(ccxt.OrderNotFound):  # no longer open
        await ex.cancel_order(order["id"], "ETH/USDT")


async def test_an_open_order_fills_more_on_each_fetch(make: Make) -> None:
    ex = make(chaos="ETH/USDT:fill=0.5,leave_open=true,fills_while_open=0.25")
    order = await ex.create_order("ETH/USDT", "market", "sell", 2.0, None, cid(1))
    assert (order["status"], order["filled"]) == ("open", 1.0)
    seen = [await ex.fetch_order(order["id"], "ETH/USDT") for _ in range(3)]
    assert [(o["status"], o["filled"]) for o in seen] == [
        ("open", 1.5),
        ("closed", 2.0),
        ("closed", 2.0),
    ]
    assert seen[-1]["remaining"] == 0
    assert [o["id"] for o in await ex.fetch_closed_orders("ETH/USDT")] == [order["id"]]
    assert (await ex.fetch_balance())["ETH"]["total"] == pytest.approx(1_000_000 - 2)


async def test_limit_orders_rest_unless_they_cross(make: Make) -> None:
    ex = make(balances={"USDT": 10_000.0, "ETH": 5.0})
    resting = await ex.create_order("ETH/USDT", "limit", "buy", 1.0, 2_900, cid(1))
    assert (resting["status"], resting["filled"], resting["price"]) == ("open", 0.0, 2_900)
    assert (await ex.fetch_balance())["USDT"]["used"] == pytest.approx(2_900)
    crossing = await ex.create_order("ETH/USDT", "limit", "sell", 1.0, 2_500, cid(2))
    assert (crossing["status"], crossing["average"]) == ("closed", 3_000)  # at the market
    with pytest.raises(ccxt.InsufficientFunds):  # 10,000 + 3,000 - 2,900 reserved < 4 x 2,800
        await ex.create_order("ETH/USDT", "limit", "buy", 4.0, 2_800, cid(3))
    cheap = await ex.create_order("ETH/USDT", "limit", "buy", 3.0, 3_600, cid(4))
    assert (cheap["status"], cheap["average"]) == ("closed", 3_000)  # crosses: 9,000 is enough


# --- ids and lookups ------------------------------------------------------------------------


async def test_a_client_order_id_is_used_once(make: Make) -> None:
    ex = make(balances={"USDT": 10_000.0})
    await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    with pytest.raises(ccxt.DuplicateOrderId):
        await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert len(ex.orders_with_client_id("cid-1")) == 1
    assert len(ex.all_orders()) == 1
    assert await free(ex, "USDT") == pytest.approx(7_000)  # moved once


async def test_fetch_by_client_order_id_or_by_id(make: Make) -> None:
    ex = make()
    first = await ex.create_order("SOL/USDT", "market", "buy", 1.0, None, cid(1))
    second = await ex.create_order("SOL/USDT", "market", "buy", 2.0, None, cid(2))
    assert int(second["id"]) > int(first["id"])
    assert (await ex.fetch_order(first["id"]))["clientOrderId"] == "cid-1"
    assert (await ex.fetch_order("cid-2", "SOL/USDT", cid(2)))["id"] == second["id"]
    # the client order id wins over the id when both are given
    assert (await ex.fetch_order(first["id"], "SOL/USDT", cid(2)))["id"] == second["id"]


@pytest.mark.parametrize(
    ("order_id", "symbol", "params"),
    [
        ("999", None, None),
        ("not-a-number", None, None),
        ("1", None, {"clientOrderId": "never-sent"}),
        ("1", "BTC/USDT", None),  # exists, but on another symbol
    ],
)
async def test_unknown_orders_are_not_found(
    make: Make, order_id: str, symbol: str | None, params: dict[str, str] | None
) -> None:
    ex = make()
    await ex.create_order("SOL/USDT", "market", "buy", 1.0, None, cid(1))
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(order_id, symbol, params)
    with pytest.raises(ccxt.OrderNotFound):
        await ex.cancel_order(order_id, symbol, params)


# --- validation -----------------------------------------------------------------------------


async def test_unknown_symbol_is_a_bad_symbol(make: Make) -> None:
    ex = make()
    with pytest.raises(ccxt.BadSymbol):
        await ex.create_order("PEPE/USDT", "market", "buy", 1.0)
    with pytest.raises(ccxt.BadSymbol):
        ex.amount_to_precision("PEPE/USDT", 1.0)
    with pytest.raises(ccxt.BadSymbol):
        ex.market("PEPE/USDT")


@pytest.mark.parametrize(
    ("symbol", "side", "amount", "message"),
    [
        ("BTC/USDT", "buy", 0.000001, "below BTC/USDT's minimum"),
        ("ETH/USDT", "buy", 0.00015, "not a multiple of ETH/USDT's step"),
        ("DOGE/USDT", "buy", 10.0, "minimum cost"),  # 10 x 0.15 = 1.5 USDT < 5
        ("ETH/USDT", "buy", 0.0, "positive"),
        ("ETH/USDT", "buy", math.nan, "positive"),
        ("ETH/USDT", "hold", 1.0, "side"),
    ],
)
async def test_invalid_orders_are_refused_and_not_stored(
    make: Make, symbol: str, side: str, amount: float, message: str
) -> None:
    ex = make()
    with pytest.raises(ccxt.InvalidOrder, match=message):
        await ex.create_order(symbol, "market", side, amount, None, cid(1))
    assert ex.all_orders() == []


async def test_float_noise_is_not_a_bad_step(make: Make) -> None:
    ex = make()
    order = await ex.create_order("ETH/USDT", "market", "buy", 0.6 * 1.5, None, cid(1))
    assert order["status"] == "closed"


async def test_insufficient_funds(make: Make) -> None:
    ex = make(balances={"USDT": 100.0, "ETH": 0.5})
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, cid(1))  # 600 USDT
    with pytest.raises(ccxt.InsufficientFunds):
        await ex.create_order("ETH/USDT", "market", "sell", 1.0, None, cid(2))
    with pytest.raises(ccxt.InsufficientFunds):  # no SOL at all
        await ex.create_order("SOL/USDT", "market", "sell", 1.0, None, cid(3))
    assert ex.all_orders() == []
    assert await free(ex, "USDT") == 100


def test_amount_to_precision_truncates(make: Make) -> None:
    ex = make()
    assert ex.amount_to_precision("BTC/USDT", 0.123456789) == "0.12345"
    assert ex.amount_to_precision("DOGE/USDT", 1234.99) == "1234"
    assert ex.amount_to_precision("ETH/USDT", 0.6 * 1.5) == "0.9"  # 0.8999999999999999
    assert ex.amount_to_precision("XRP/USDT", 0.05) == "0"
    assert ex.precisionMode == ccxt.TICK_SIZE
    market = ex.markets["BTC/USDT"]
    assert market["precision"]["amount"] == 0.00001
    assert market["limits"]["amount"]["min"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5


# --- chaos ----------------------------------------------------------------------------------


async def test_timeout_after_accept_leaves_a_ghost_order(make: Make) -> None:
    ex = make(chaos="ETH/USDT:timeout_after_accept=1")
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    ghost = await ex.fetch_order("cid-1", "ETH/USDT", cid(1))
    assert (ghost["status"], ghost["filled"]) == ("closed", 1.0)
    with pytest.raises(ccxt.DuplicateOrderId):  # the resend with the same id is refused
        await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(2))  # only the first call
    assert len(ex.all_orders()) == 2


async def test_timeout_before_accept_stores_nothing(make: Make) -> None:
    ex = make(chaos="ETH/USDT:timeout_before_accept=1")
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert ex.orders_with_client_id("cid-1") == []
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order("cid-1", "ETH/USDT", cid(1))
    resent = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert resent["status"] == "closed"


async def test_lookup_and_cancel_timeouts_count_calls(make: Make) -> None:
    ex = make(chaos="ETH/USDT:lookup_timeouts=2,cancel_timeouts=1,fill=0.5,leave_open=1")
    order = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    for _ in range(2):
        with pytest.raises(ccxt.RequestTimeout):
            await ex.fetch_order(order["id"], "ETH/USDT")
    assert (await ex.fetch_order(order["id"], "ETH/USDT"))["status"] == "open"
    with pytest.raises(ccxt.RequestTimeout):
        await ex.cancel_order(order["id"], "ETH/USDT")
    assert (await ex.fetch_order(order["id"], "ETH/USDT"))["status"] == "open"  # not cancelled
    assert (await ex.cancel_order(order["id"], "ETH/USDT"))["status"] == "canceled"


async def test_faults_apply_in_order_and_accept_nothing(make: Make) -> None:
    ex = make(chaos="ETH/USDT:rate_limit=2,timeout_before_accept=1,reject_funds=1,reject_invalid=1")
    expected = [
        ccxt.RateLimitExceeded,
        ccxt.RateLimitExceeded,
        ccxt.RequestTimeout,
        ccxt.InsufficientFunds,
        ccxt.InvalidOrder,
    ]
    for error in expected:
        with pytest.raises(error):
            await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert ex.all_orders() == []
    assert (await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1)))["filled"] == 1
    # another symbol is not affected
    await ex.create_order("BTC/USDT", "market", "buy", 0.001, None, cid(2))


async def test_error_after_accept_places_the_order_then_raises_a_bare_exchange_error(
    make: Make,
) -> None:
    """Bybit's 10016 "System error" reaches ccxt's code table as a bare ExchangeError: no
    subclass says what happened, and the order may well be on the book."""
    ex = make(chaos="ETH/USDT:error_after_accept=1")
    with pytest.raises(ccxt.ExchangeError) as caught:
        await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    assert type(caught.value) is ccxt.ExchangeError and "System error" in str(caught.value)
    placed = await ex.fetch_order("cid-1", "ETH/USDT", cid(1))
    assert (placed["status"], placed["filled"]) == ("closed", 1.0)
    assert (await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(2)))["filled"] == 1


async def test_insane_reports_lie_in_turn_and_the_book_stays_true(make: Make) -> None:
    ex = make(chaos="ETH/USDT:insane_reports=4;BTC/USDT:fill=0.5")
    btc = await ex.create_order("BTC/USDT", "market", "buy", 0.001, None, cid(0))
    overfill = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    other = await ex.fetch_order(overfill["id"], "ETH/USDT", cid(1))
    no_fill = await ex.fetch_order(overfill["id"], "ETH/USDT", cid(1))
    again = await ex.fetch_order(overfill["id"], "ETH/USDT", cid(1))  # the turns go round
    truth = await ex.fetch_order(overfill["id"], "ETH/USDT", cid(1))  # the first 4 calls only

    assert (overfill["clientOrderId"], overfill["filled"]) == ("cid-1", 1.5)
    assert other == {**btc, "info": {**btc["info"], "paper_chaos": Fault.OTHER_ORDER_AFTER_ACCEPT}}
    assert (no_fill["status"], no_fill["filled"], no_fill["clientOrderId"]) == (
        "closed",
        None,
        "cid-1",
    )
    assert again["filled"] == 1.5
    assert [r["info"]["paper_chaos"] for r in (overfill, other, no_fill, again)] == [
        Fault.OVERFILL_AFTER_ACCEPT,
        Fault.OTHER_ORDER_AFTER_ACCEPT,
        Fault.NO_FILL_AFTER_ACCEPT,
        Fault.OVERFILL_AFTER_ACCEPT,
    ]
    assert (truth["filled"], "paper_chaos" in truth["info"]) == (1.0, False)
    [eth] = ex.orders_with_client_id("cid-1")
    assert (eth["status"], eth["filled"]) == ("closed", 1.0)


async def test_another_order_with_none_to_show_is_another_client_id(make: Make) -> None:
    ex = make(chaos="ETH/USDT:insane_reports=2")
    await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))  # the overfill
    lie = await ex.fetch_order("cid-1", "ETH/USDT", cid(1))
    assert lie["clientOrderId"] not in (None, "cid-1") and lie["filled"] == 1.0


async def test_star_applies_to_symbols_without_their_own_entry(make: Make) -> None:
    ex = make(chaos=["*:fill=0.5", "BTC/USDT:fill=1"])
    eth = await ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    btc = await ex.create_order("BTC/USDT", "market", "buy", 0.001, None, cid(2))
    assert (eth["filled"], btc["filled"]) == (0.5, 0.001)


async def test_side_entries_apply_to_one_side_of_a_symbol(make: Make) -> None:
    ex = make(chaos="BTC/USDT@buy:fill=0.6,lookup_timeouts=1;BTC/USDT:timeout_after_accept=1")
    buy = await ex.create_order("BTC/USDT", "market", "buy", 0.001, None, cid(1))
    assert buy["filled"] == pytest.approx(0.0006)  # the @buy entry, whole: no timeout
    with pytest.raises(ccxt.RequestTimeout):  # lookups follow the order's side
        await ex.fetch_order(buy["id"])
    assert (await ex.fetch_order(buy["id"]))["filled"] == pytest.approx(0.0006)
    with pytest.raises(ccxt.RequestTimeout):  # the symbol's entry: its own first call
        await ex.create_order("BTC/USDT", "market", "sell", 0.0006, None, cid(2))
    [sell] = ex.orders_with_client_id("cid-2")
    assert sell["filled"] == pytest.approx(0.0006)


async def _timeout_pattern(exchange: PaperExchange) -> list[bool]:
    order = await exchange.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1))
    pattern = []
    for _ in range(40):
        try:
            await exchange.fetch_order(order["id"], "ETH/USDT")
            pattern.append(False)
        except ccxt.RequestTimeout:
            pattern.append(True)
    return pattern


async def test_probabilistic_chaos_is_replayable_from_the_seed(tmp_path: Path, make: Make) -> None:
    chaos = "ETH/USDT:lookup_timeouts=0.5"
    first = await _timeout_pattern(make(tmp_path / "a.db", chaos=chaos, seed=7))
    again = await _timeout_pattern(make(tmp_path / "b.db", chaos=chaos, seed=7))
    config = ChaosConfig.parse(chaos, seed=7)
    from_config = await _timeout_pattern(make(tmp_path / "c.db", chaos=config))
    other = await _timeout_pattern(make(tmp_path / "d.db", chaos=chaos, seed=8))
    assert 0 < sum(first) < 40
    assert first == again == from_config
    assert first != other


# --- persistence ----------------------------------------------------------------------------

_CHILD = """
import asyncio, os, signal, sys
from pairexec.fsm.paper import PaperExchange

async def main():
    ex = PaperExchange(sys.argv[1])
    await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": sys.argv[2]})
    os.kill(os.getpid(), signal.SIGKILL)  # die without closing anything

asyncio.run(main())
"""


def _run_child(path: Path, client_order_id: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), client_order_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -9, done.stderr


async def test_orders_survive_a_killed_process(db_path: Path, make: Make) -> None:
    _run_child(db_path, "from-child")
    ex = make()
    [order] = ex.orders_with_client_id("from-child")
    assert (order["status"], order["filled"]) == ("closed", 0.01)
    assert (await ex.fetch_order("x", "BTC/USDT", {"clientOrderId": "from-child"}))["id"] == (
        order["id"]
    )
    assert await free(ex, "BTC") == pytest.approx(1_000_000.01)
    with pytest.raises(ccxt.DuplicateOrderId):
        await ex.create_order(
            "BTC/USDT", "market", "buy", 0.01, None, {"clientOrderId": "from-child"}
        )


async def test_processes_share_one_file(db_path: Path, make: Make) -> None:
    ex = make()
    await ex.create_order("BTC/USDT", "market", "buy", 0.01, None, cid(1))
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(db_path), f"child-{n}"], cwd=ROOT)
        for n in range(3)
    ]
    assert [child.wait(timeout=60) for child in children] == [-9, -9, -9]
    ids = [int(o["id"]) for o in ex.all_orders()]
    assert len(ids) == len(set(ids)) == 4
    assert await free(ex, "BTC") == pytest.approx(1_000_000.04)


async def test_reopening_a_file_keeps_its_state(make: Make) -> None:
    first = make(balances={"USDT": 1_000.0})
    first.set_price("ETH/USDT", 250.0)
    order = await first.create_order("ETH/USDT", "market", "buy", 2.0, None, cid(1))
    await first.close()

    again = make(balances={"USDT": 5.0})  # seeds only a new file: ignored here
    assert await free(again, "USDT") == pytest.approx(500)
    assert await free(again, "ETH") == pytest.approx(2)
    assert (await again.fetch_order(order["id"]))["average"] == 250
    later = await again.create_order("ETH/USDT", "market", "sell", 1.0, None, cid(2))
    assert later["average"] == 250  # the price set before the restart
    assert int(later["id"]) > int(order["id"])


def test_a_foreign_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE trades (id TEXT)")
    with pytest.raises(ValueError, match="not a paper exchange database"):
        PaperExchange(db_path)


async def test_in_memory_and_custom_markets(make: Make) -> None:
    spec = MarketSpec("FOO/EUR", price=2.0, amount_step=0.5, min_amount=1.0, min_cost=1.0)
    ex = make(None, markets={spec.symbol: spec}, balances={"EUR": 10.0})
    assert list(ex.markets) == ["FOO/EUR"]
    assert (await ex.create_order("FOO/EUR", "market", "buy", 2.5))["cost"] == 5
    assert (await ex.fetch_balance())["total"] == {"EUR": 5.0, "FOO": 2.5}


def test_the_orders_query_binds_by_name(make: Make) -> None:
    """Numbered placeholders (``?1``) are named ones to sqlite3: bound from a sequence they
    warn on Python 3.12 and fail from 3.14. The source check holds on any Python."""
    source = (ROOT / "fsm" / "paper" / "book.py").read_text()
    assert not re.search(r"\?\d", source)
    ex = make()
    ex.book.place("BTC/USDT", "market", "buy", 0.001, None, "cid-1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for symbol, status in ((None, None), ("BTC/USDT", None), (None, "closed")):
            assert len(ex.book.orders(symbol, status)) == 1
        assert ex.book.orders("ETH/USDT", "closed") == ex.book.orders(None, "open") == []


# --- chaos text -----------------------------------------------------------------------------


def test_chaos_text_is_parsed_per_symbol() -> None:
    config = ChaosConfig.parse(
        ["ETH/USDT:timeout_after_accept=1;BTC/USDT:fill=0.6,leave_open=1", " *:latency=0.01 ;"],
        seed=3,
    )
    assert config.seed == 3
    assert config.for_symbol("ETH/USDT") == SymbolChaos(timeout_after_accept=1)
    assert config.for_symbol("BTC/USDT") == SymbolChaos(fill=0.6, leave_open=True)
    assert config.for_symbol("SOL/USDT") == SymbolChaos(latency=0.01)
    merged = ChaosConfig.parse(["BTC/USDT:fill=0.6", "BTC/USDT:leave_open=true"])
    assert merged.for_symbol("BTC/USDT") == SymbolChaos(fill=0.6, leave_open=True)
    sided = ChaosConfig.parse("*@sell:fill=0.1;BTC/USDT@buy:fill=0.2;BTC/USDT:fill=0.3;*:fill=0.4")
    assert sided.for_symbol("BTC/USDT", "buy").fill == 0.2
    assert sided.for_symbol("BTC/USDT", "sell").fill == 0.3  # the symbol's entry beats *@sell
    assert sided.for_symbol("BTC/USDT").fill == 0.3
    assert sided.for_symbol("ETH/USDT", "sell").fill == 0.1
    assert sided.for_symbol("ETH/USDT", "buy").fill == 0.4
    assert sided.market_symbols() == {"BTC/USDT"}
    assert ChaosConfig.parse("").for_symbol("BTC/USDT") == SymbolChaos()


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("BTC/USDT:fil=0.5", ["'fil'", "valid keys", "fill", "leave_open", "rate_limit"]),
        ("BTC/USDT:fill=abc", ["'fill'", "abc"]),
        ("BTC/USDT:fill=1.5", ["'fill'", "0 to 1"]),
        ("BTC/USDT:leave_open=maybe", ["'leave_open'", "maybe"]),
        ("BTC/USDT:rate_limit=2.5", ["'rate_limit'", "2.5"]),
        ("BTC/USDT:latency=-1", ["'latency'"]),
        ("BTC/USDT:fill", ["'fill'", "needs a value"]),
        ("fill=0.5", ["'fill=0.5'", "SYMBOL:key=value"]),
        ("BTC/USDT@hold:fill=0.5", ["'BTC/USDT@hold'", "SYMBOL@buy/sell"]),
    ],
)
def test_bad_chaos_text_names_the_bad_part(text: str, names: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        ChaosConfig.parse(text)
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_chaos_on_an_unknown_symbol_is_refused(make: Make) -> None:
    with pytest.raises(ValueError, match="ETH/USD"):
        make(chaos="ETH/USD:fill=0.5")
    with pytest.raises(ValueError, match="SOL/EUR"):
        make(chaos="SOL/EUR@buy:fill=0.5")


# --- fit with the engine ------------------------------------------------------------------


async def test_errors_are_ccxt_classes_the_engine_understands(make: Make) -> None:
    ex = make(chaos="ETH/USDT:rate_limit=1,timeout_after_accept=1", balances={"USDT": 1.0})
    errors: list[BaseException] = []
    for call in (
        ex.create_order("ETH/USDT", "market", "buy", 1.0, None, cid(1)),  # rate limited
        ex.create_order("ETH/USDT", "market", "sell", 1.0, None, cid(2)),  # InsufficientFunds
        ex.create_order("XRP/USDT", "market", "buy", 0.05),  # InvalidOrder
        ex.create_order("NOPE/USDT", "market", "buy", 1.0),
        ex.fetch_order("42", "ETH/USDT"),
    ):
        with pytest.raises(ccxt.BaseError) as caught:
            await call
        errors.append(caught.value)
    assert [classify(e) for e in errors] == [
        ErrorMeaning.RETRY_LATER,
        ErrorMeaning.REJECTED,
        ErrorMeaning.REJECTED,
        ErrorMeaning.REJECTED,
        ErrorMeaning.NOT_FOUND,
    ]


async def test_the_engine_trades_through_a_ghost_order(make: Make, db_url: str) -> None:
    ex = make(chaos="ETH/USDT:timeout_after_accept=1")
    async with ExecutionEngine(ex, store=db_url, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(btc_eth(amount=0.01, hedge_ratio=15.0))
    assert outcome.state is TradeState.DONE, outcome.reason
    assert outcome.filled_x == 0.01
    assert outcome.filled_y == pytest.approx(0.15)
    assert len([o for o in ex.all_orders() if o["symbol"] == "ETH/USDT"]) == 1
