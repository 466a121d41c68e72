"""Swap markets on the paper exchange: amounts in contracts, one net position per symbol,
reduce-only honoured; and the engine's spot-perp basis trade on it, end to end."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ccxt
import pytest

from pairexec import ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.paper import (
    DEFAULT_MARKETS,
    SWAP_MARKETS,
    ChaosConfig,
    PaperExchange,
    Position,
    SymbolChaos,
)
from tests.conftest import FAST

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
Make = Callable[..., PaperExchange]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    opened: list[PaperExchange] = []

    def factory(**kwargs: Any) -> PaperExchange:
        exchange = PaperExchange(tmp_path / "paper.db", **kwargs)
        opened.append(exchange)
        return exchange

    yield factory
    for exchange in opened:
        exchange.book.close()


def cid(n: int, **params: Any) -> dict[str, Any]:
    return {"clientOrderId": f"cid-{n}", **params}


def test_swap_markets_are_ccxt_linear_contracts_and_not_drawn_by_the_simulation(make: Make):
    assert not set(SWAP_MARKETS) & set(DEFAULT_MARKETS)  # the simulation draws from these
    market = make().market(PERP)
    assert (market["type"], market["contract"], market["linear"]) == ("swap", True, True)
    assert (market["contractSize"], market["inverse"], market["settle"]) == (0.01, False, "USDT")
    assert market["precision"]["amount"] == 1.0 and market["limits"]["amount"]["min"] == 1.0
    assert make().market(SPOT)["contract"] is False


async def test_contracts_open_and_reduce_a_net_position_and_realise_its_pnl(make: Make):
    ex = make(balances={"USDT": 1000.0, "BTC": 0.0})
    opened = await ex.create_order(PERP, "market", "sell", 5, None, cid(1))
    assert (opened["amount"], opened["filled"], opened["status"]) == (5, 5, "closed")
    assert ex.book.positions() == {PERP: Position(PERP, -5.0, 60000.0)}
    [short] = await ex.fetch_positions()
    assert (short["side"], short["contracts"], short["notional"]) == ("short", 5.0, 3000.0)
    balances = await ex.fetch_balance()
    assert balances["BTC"]["total"] == 0.0 and balances["USDT"]["total"] == 1000.0  # no base

    ex.set_price(PERP, 59000.0)
    closed = await ex.create_order(PERP, "market", "buy", 7, None, cid(2, reduceOnly=True))
    assert (closed["amount"], closed["filled"]) == (7, 5)  # only up to the position
    assert ex.book.positions() == {}
    assert (await ex.fetch_balance())["USDT"]["total"] == pytest.approx(1050.0)  # 5 x 0.01 x 1000


async def test_reduce_only_that_would_open_a_position_is_rejected(make: Make):
    ex = make()
    with pytest.raises(ccxt.InvalidOrder, match="reduce-only"):
        await ex.create_order(PERP, "market", "buy", 1, None, cid(1, reduceOnly=True))
    await ex.create_order(PERP, "market", "buy", 2, None, cid(2))
    with pytest.raises(ccxt.InvalidOrder, match="reduce-only"):  # it would grow the long
        await ex.create_order(PERP, "market", "buy", 1, None, cid(3, reduceOnly=True))
    await ex.create_order(SPOT, "market", "sell", 0.01, None, cid(4, reduceOnly=True))  # spot
    with pytest.raises(ccxt.NotSupported, match="hedge mode"):
        await ex.create_order(PERP, "market", "sell", 1, None, cid(5, hedged=True))


async def test_spot_perp_basis_trade_leg_b_is_five_contracts(make: Make):
    ex = make()
    request = PairTradeRequest(SPOT, "buy", 0.05, PERP, "sell", hedge_ratio=1.0)
    async with ExecutionEngine(ex, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(request)

    assert outcome.state is TradeState.DONE, outcome.reason
    assert (outcome.filled_x, outcome.filled_y) == (0.05, 0.05)  # base units, both legs
    spot, perp = ex.all_orders()
    assert (spot["symbol"], spot["amount"]) == (SPOT, 0.05)
    assert (perp["symbol"], perp["amount"], perp["filled"]) == (PERP, 5.0, 5.0)  # contracts
    assert ex.book.positions() == {PERP: Position(PERP, -5.0, 60000.0)}


async def test_a_perp_leg_a_is_unwound_reduce_only_to_a_flat_position(make: Make, monkeypatch):
    # leg A sells 0.3 BTC of the perp (30 contracts), fills 40%: below the abort ratio, so
    # the 12 contracts short are bought back, reduce-only
    chaos = ChaosConfig({f"{PERP}@sell": SymbolChaos(fill=0.4)})
    ex = make(chaos=chaos)
    request = PairTradeRequest(PERP, "sell", 0.3, "ETH/USDT", "buy", hedge_ratio=10.0)
    sent: list[dict[str, Any]] = []
    create = ex.create_order

    async def recording(*args: Any) -> Any:
        sent.append({"args": args[:4], "params": dict(args[5] or {})})
        return await create(*args)

    monkeypatch.setattr(ex, "create_order", recording)
    async with ExecutionEngine(ex, config=FAST) as engine:
        outcome = await engine.execute_pair_trade(request)

    assert outcome.state is TradeState.ABORTED, outcome.reason
    leg_a, unwind = sent
    assert leg_a["args"] == (PERP, "market", "sell", 30.0) and "reduceOnly" not in leg_a["params"]
    assert unwind["args"] == (PERP, "market", "buy", 12.0) and unwind["params"]["reduceOnly"]
    assert ex.book.positions() == {}  # flat again


async def test_hedge_mode_is_refused_by_the_one_way_paper_exchange_nothing_filled(make: Make):
    ex = make()
    request = PairTradeRequest(SPOT, "buy", 0.05, PERP, "sell", hedge_ratio=1.0)
    config = replace(FAST, position_mode="hedge")
    async with ExecutionEngine(ex, config=config) as engine:
        outcome = await engine.execute_pair_trade(request)
    # leg B (the perp) refused: leg A's spot buy is sold back, no position was opened
    assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 0.05, outcome.reason
    assert ex.book.positions() == {}


def test_a_version_1_paper_file_is_upgraded_with_spot_markets(tmp_path: Path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE markets (symbol TEXT PRIMARY KEY, price REAL NOT NULL,
               amount_step REAL NOT NULL, min_amount REAL NOT NULL, min_cost REAL NOT NULL,
               price_step REAL NOT NULL);
           CREATE TABLE balances (asset TEXT PRIMARY KEY, total REAL NOT NULL);
           CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT,
               client_order_id TEXT UNIQUE, timestamp INTEGER NOT NULL, symbol TEXT NOT NULL,
               type TEXT NOT NULL, side TEXT NOT NULL, price REAL, fill_price REAL NOT NULL,
               amount REAL NOT NULL, filled REAL NOT NULL, cost REAL NOT NULL,
               status TEXT NOT NULL);
           INSERT INTO markets VALUES ('BTC/USDT', 60000, 0.00001, 0.00001, 5, 0.01);
           INSERT INTO balances VALUES ('USDT', 1000);
           PRAGMA user_version = 1;"""
    )
    db.close()
    ex = PaperExchange(path)
    try:
        assert ex.book.market(SPOT).contract_size == 0.0 and not ex.market(SPOT)["contract"]
        assert ex.book.positions() == {}
    finally:
        ex.book.close()
