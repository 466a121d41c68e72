"""The paper exchange's matching book, in its own SQLite file so it outlives the engine.

Crash tests kill the engine process mid-trade and start a new one: the new process must see
exactly the orders and balances the old one left, as a real venue would. So the venue is not
an in-memory object but a small SQLite database (WAL, ``synchronous=FULL``), and every call is
one short ``BEGIN IMMEDIATE`` transaction, which also lets several processes share one file.

The book knows nothing of asyncio, faults or ccxt's dict formats (only ccxt's exception
classes, which is how every venue says "rejected"): the ccxt facade over it is
``pairexec.fsm.paper.exchange``, and the HTTP fake of Binance in the tests reuses it as is.

Like a real venue, a client order id can be used once (``ccxt.DuplicateOrderId`` after that),
which is what makes a resend with the same id safe.

Swap markets (``MarketSpec.contract_size`` > 0, ``SWAP_MARKETS``) count orders in contracts of
``contract_size`` base units, as ccxt does, and keep one net position per symbol (one-way mode:
long > 0, short < 0, in contracts) instead of moving the base balance; reducing it realises the
profit or loss in the quote (settle) currency. A ``reduce_only`` order that would open or grow
the position is rejected, one larger than it is filled only up to it. No margin is modelled.

By default a market has one price and infinite depth at it. A ``BookDepth`` given to
``PaperBook.place`` (the exchange builds one from the chaos keys ``spread_bps``, ``depth``,
``thin_book``...) puts a seeded book of levels around that price instead: an order walks the
levels it crosses and fills at their volume-weighted average. The book is not stored: it is
regenerated around the current price for every order (taken liquidity replenishes at once).
A limit order with ``time_in_force="IOC"`` never rests: what does not fill at once is
cancelled.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import ccxt

from pairexec.fsm.model import base_currency

_SLACK = 1e-9
"""Relative float noise forgiven in amounts: 0.1 + 0.2 is a multiple of 0.1."""
_BUSY_TIMEOUT_MS = 30_000
_SCHEMA_VERSION = 2
"""2: swap markets (``markets.contract_size``) and ``positions``; a version-1 file is
upgraded when opened (its markets are spot: contract size 0)."""


@dataclass(frozen=True)
class MarketSpec:
    """One spot market: its current price and what an order on it must respect."""

    symbol: str
    price: float
    amount_step: float
    min_amount: float
    min_cost: float
    price_step: float = 1e-8
    """Reported in the ccxt market structure only; limit prices are not checked against it."""
    contract_size: float = 0.0
    """Base units per contract on a swap market (its amounts, step and minimum are in
    contracts, its price per base unit); 0: a spot market."""

    @property
    def is_contract(self) -> bool:
        return self.contract_size > 0

    @property
    def base(self) -> str:
        return base_currency(self.symbol)

    @property
    def quote(self) -> str:
        return _quote(self.symbol)


def _quote(symbol: str) -> str:
    return symbol.split("/")[1].split(":")[0]  # BTC/USDT:USDT (a swap) settles in USDT


@dataclass(frozen=True)
class BookDepth:
    """A seeded order book around a market's price (its mid), opt-in per order.

    The best ask is ``mid * (1 + spread/2)``, the best bid ``mid * (1 - spread/2)``; each of
    the ``levels`` levels on a side is ``level_bps`` further from the mid than the one before
    (prices are not rounded to the market's tick). A level holds ``level_notional`` (in the
    quote currency) times a seeded factor in [0.5, 1.5), in base units rounded down to the
    amount step (at least one step); the factors depend only on ``seed``, the symbol, the side
    and the level, so the same seed gives the same book. ``level_notional`` 0: one level per
    side at the best price, of infinite size (a spread, no slippage).
    """

    spread_bps: float = 0.0
    level_bps: float = 1.0
    levels: int = 10
    level_notional: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        numbers = (self.spread_bps, self.level_bps, self.level_notional)
        if not all(math.isfinite(n) and n >= 0 for n in numbers) or self.spread_bps >= 20_000:
            raise ValueError(f"BookDepth needs finite numbers >= 0 (spread < 20000 bps): {self}")
        if self.levels < 1:
            raise ValueError(f"BookDepth needs at least one level, got {self.levels}")

    def best(self, mid: float, side: str) -> float:
        """The best price a ``side`` order meets: the best ask for a buy, bid for a sell."""
        half = self.spread_bps / 20_000
        return mid * (1 + half) if side == "buy" else mid * (1 - half)

    def levels_for(self, spec: MarketSpec, side: str) -> list[tuple[float, float]]:
        """The (price, size) levels a ``side`` order walks, best first: asks for a buy, bids
        for a sell, around ``spec.price``."""
        best, sign = self.best(spec.price, side), (1.0 if side == "buy" else -1.0)
        if self.level_notional <= 0:
            return [(best, math.inf)]
        book = "asks" if side == "buy" else "bids"
        rng = random.Random(f"paper-book/{self.seed}/{spec.symbol}/{book}")
        price_per_unit = spec.contract_size if spec.is_contract else 1.0
        levels = []
        for i in range(self.levels):
            price = best * (1 + sign * i * self.level_bps / 10_000)
            if price <= 0:
                break
            size = self.level_notional * rng.uniform(0.5, 1.5) / (price * price_per_unit)
            levels.append((price, max(floor_to_step(size, spec.amount_step), spec.amount_step)))
        return levels


DEFAULT_MARKETS: dict[str, MarketSpec] = {
    m.symbol: m
    for m in (
        MarketSpec("BTC/USDT", 60000.0, 0.00001, 0.00001, 5.0, 0.01),
        MarketSpec("ETH/USDT", 3000.0, 0.0001, 0.0001, 5.0, 0.01),
        MarketSpec("SOL/USDT", 150.0, 0.001, 0.001, 5.0, 0.01),
        MarketSpec("BNB/USDT", 600.0, 0.001, 0.001, 5.0, 0.01),
        MarketSpec("XRP/USDT", 0.6, 0.1, 0.1, 5.0, 0.0001),
        MarketSpec("DOGE/USDT", 0.15, 1.0, 1.0, 5.0, 0.00001),
        MarketSpec("LTC/USDT", 80.0, 0.001, 0.001, 5.0, 0.01),
        MarketSpec("ADA/USDT", 0.4, 0.1, 0.1, 5.0, 0.0001),
    )
}


SWAP_MARKETS: dict[str, MarketSpec] = {
    m.symbol: m
    for m in (
        MarketSpec("BTC/USDT:USDT", 60000.0, 1.0, 1.0, 5.0, 0.1, contract_size=0.01),
        MarketSpec("ETH/USDT:USDT", 3000.0, 1.0, 1.0, 5.0, 0.01, contract_size=0.1),
    )
}
"""Linear USDT perpetual swaps (ccxt symbols ``BASE/USDT:USDT``), amounts in contracts. Not in
``DEFAULT_MARKETS``, which the simulation draws its markets from; a paper exchange opened
without ``markets`` has both."""

PAPER_MARKETS: dict[str, MarketSpec] = {**DEFAULT_MARKETS, **SWAP_MARKETS}
"""A paper exchange's markets unless it is given its own."""


@dataclass(frozen=True)
class Position:
    """A swap market's net position (one-way mode)."""

    symbol: str
    contracts: float
    """Long > 0, short < 0, in contracts."""
    entry_price: float
    """Average price of the contracts held (0 when flat)."""


def default_balances(markets: dict[str, MarketSpec]) -> dict[str, float]:
    """Deep pockets, so demos with many trades never run dry; tests pass small balances."""
    balances = {m.base: 1_000_000.0 for m in markets.values()}
    balances.update({m.quote: 10_000_000.0 for m in markets.values()})
    return balances


@dataclass(frozen=True)
class Balance:
    total: float
    used: float
    """Reserved for the unfilled rest of open orders."""

    @property
    def free(self) -> float:
        return self.total - self.used


@dataclass(frozen=True)
class PaperOrder:
    """An order as the book stores it."""

    id: int
    client_order_id: str | None
    timestamp: int
    """Milliseconds since the epoch, when the order was accepted."""
    symbol: str
    type: str
    side: str
    price: float | None
    """The limit price; None for a market order."""
    fill_price: float
    """The price its fills happen at (and the unfilled rest is reserved at while open)."""
    amount: float
    filled: float
    cost: float
    status: str
    """"open", "closed" (nothing more will fill) or "canceled"."""

    @property
    def remaining(self) -> float:
        return self.amount - self.filled

    @property
    def average(self) -> float | None:
        return self.cost / self.filled if self.filled > 0 else None


_UPGRADE_TO_2 = (
    "ALTER TABLE markets ADD COLUMN contract_size REAL NOT NULL DEFAULT 0",
    """CREATE TABLE positions (
        symbol TEXT PRIMARY KEY, contracts REAL NOT NULL, entry_price REAL NOT NULL)""",
)
_SCHEMA = (
    """CREATE TABLE markets (
        symbol TEXT PRIMARY KEY, price REAL NOT NULL, amount_step REAL NOT NULL,
        min_amount REAL NOT NULL, min_cost REAL NOT NULL, price_step REAL NOT NULL)""",
    "CREATE TABLE balances (asset TEXT PRIMARY KEY, total REAL NOT NULL)",
    """CREATE TABLE orders (
        id INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT UNIQUE,
        timestamp INTEGER NOT NULL, symbol TEXT NOT NULL, type TEXT NOT NULL,
        side TEXT NOT NULL, price REAL, fill_price REAL NOT NULL, amount REAL NOT NULL,
        filled REAL NOT NULL, cost REAL NOT NULL, status TEXT NOT NULL)""",
    "CREATE INDEX orders_open ON orders (status, symbol)",
    *_UPGRADE_TO_2,
)
_ORDER_FIELDS = tuple(f.name for f in dataclasses.fields(PaperOrder))
_ORDER_COLUMNS = ", ".join(_ORDER_FIELDS)
_MARKET_COLUMNS = ", ".join(f.name for f in dataclasses.fields(MarketSpec))
_MARKET_PLACES = ", ".join("?" for _ in dataclasses.fields(MarketSpec))


class PaperBook:
    """Markets, balances and orders in one SQLite database; the matching rules of the venue.

    Thread-safe (one lock around the connection), so the async facade can run calls in a worker
    thread and a long wait for another process's write lock never blocks the event loop.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        markets: dict[str, MarketSpec] | None = None,
        balances: dict[str, float] | None = None,
        taker_fee: float = 0.0,
    ) -> None:
        """``taker_fee``: the fee rate every fill on a spot market pays (0.001: 0.1%), on a
        buy in the base currency it receives (as Binance charges by default), on a sell in
        the quote currency; contract markets are charged none. Not stored in the file: it is
        this process's venue setting, applied to the fills it makes."""
        if not 0 <= taker_fee < 1:
            raise ValueError(f"taker_fee must be >= 0 and < 1, got {taker_fee!r}")
        self.taker_fee = float(taker_fee)
        self.in_memory = path is None
        """An in-memory book: its calls are quick enough to run inline, on the event loop."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            ":memory:" if path is None else os.fspath(path),
            timeout=_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
            check_same_thread=False,
        )
        try:
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            if path is not None:
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._seed(markets or PAPER_MARKETS, balances)
        except BaseException:
            self._db.close()
            raise

    def _seed(self, markets: dict[str, MarketSpec], balances: dict[str, float] | None) -> None:
        """Create and fill a new file; an existing one keeps its state (prices, orders...)."""
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == _SCHEMA_VERSION:
                return
            if version == 1:  # a file of an earlier pairexec: spot markets only
                for statement in _UPGRADE_TO_2:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                return
            if version != 0 or db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise ValueError("this file is not a paper exchange database")
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                f"INSERT INTO markets ({_MARKET_COLUMNS}) VALUES ({_MARKET_PLACES})",
                [dataclasses.astuple(m) for m in markets.values()],
            )
            if balances is None:
                balances = default_balances(markets)
            db.executemany("INSERT INTO balances VALUES (?, ?)", list(balances.items()))
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One short transaction, reads included: other processes wait for it (busy_timeout),
        and a read-then-write (a lookup that fills more) never races another writer."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- markets and balances ------------------------------------------------------------

    def markets(self) -> dict[str, MarketSpec]:
        with self._transaction() as db:
            rows = db.execute(f"SELECT {_MARKET_COLUMNS} FROM markets ORDER BY symbol")
            return {row[0]: MarketSpec(*row) for row in rows}

    def market(self, symbol: str) -> MarketSpec:
        with self._transaction() as db:
            return _market(db, symbol)

    def set_price(self, symbol: str, price: float) -> None:
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"price must be a positive number, not {price!r}")
        with self._transaction() as db:
            _market(db, symbol)
            db.execute("UPDATE markets SET price = ? WHERE symbol = ?", (price, symbol))

    def move_price(self, symbol: str, fraction: float) -> float:
        """Move ``symbol``'s price by ``fraction`` of it (signed: -0.02 is 2% down) in one
        transaction; the new price."""
        if not math.isfinite(fraction) or fraction <= -1:
            raise ValueError(f"fraction must be a finite number > -1, not {fraction!r}")
        with self._transaction() as db:
            price = _market(db, symbol).price * (1 + fraction)
            db.execute("UPDATE markets SET price = ? WHERE symbol = ?", (price, symbol))
            return price

    def balances(self) -> dict[str, Balance]:
        with self._transaction() as db:
            totals = dict(db.execute("SELECT asset, total FROM balances ORDER BY asset"))
            used = _reserved(db)
        return {a: Balance(total=t, used=used.get(a, 0.0)) for a, t in totals.items()}

    def positions(self) -> dict[str, Position]:
        """Every swap market's position that is not flat."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT symbol, contracts, entry_price FROM positions"
                " WHERE contracts != 0 ORDER BY symbol"
            )
            return {row[0]: Position(*row) for row in rows}

    # --- orders --------------------------------------------------------------------------

    def place(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        client_order_id: str | None = None,
        *,
        fill: float = 1.0,
        leave_open: bool = False,
        reduce_only: bool = False,
        time_in_force: str | None = None,
        depth: BookDepth | None = None,
    ) -> PaperOrder:
        """Validate and accept an order; a market (or crossing limit) order fills at once.

        ``fill`` is the fraction of it that fills now, rounded down to the step; the rest is
        dropped ("closed" partly filled, as an IOC order would be) unless ``leave_open``, which
        keeps it "open" with the rest reserved. A limit order that does not cross rests "open".
        ``reduce_only`` (swap markets; ignored on spot, as ccxt drops it there): rejected if it
        would open or grow the position, filled at most up to the position's size.

        ``time_in_force`` ("GTC" or "IOC", any case; None: GTC): a limit IOC order fills at
        once what crosses its limit and is never "open": "closed" if it filled in full, else
        "canceled" with what it filled (Binance says EXPIRED, ccxt "expired"; the paper
        exchange says "canceled"), ``leave_open`` ignored. A market order is immediate anyway:
        IOC changes nothing for it.

        ``depth``: walk a seeded book of levels instead of filling at the market's price. A
        market order takes levels until it is filled (or the book is exhausted: "closed" with
        the rest unfilled), a limit order only levels up to its limit (a GTC order's rest then
        rests "open" at its limit); the fill is at the levels' volume-weighted average, which is
        what the balances, fees and position move at.
        """
        amount = _number(amount, "amount")
        if side not in ("buy", "sell"):
            raise ccxt.InvalidOrder(f"paper: side must be 'buy' or 'sell', not {side!r}")
        if type not in ("market", "limit"):
            raise ccxt.InvalidOrder(f"paper: type must be 'market' or 'limit', not {type!r}")
        tif = "GTC" if time_in_force is None else str(time_in_force).upper()
        if tif not in ("GTC", "IOC"):
            raise ccxt.InvalidOrder(
                f"paper: timeInForce must be 'GTC' or 'IOC', not {time_in_force!r}"
            )
        if type == "limit":
            if price is None:
                raise ccxt.InvalidOrder("paper: a limit order needs a price")
            price = _number(price, "price")
        else:
            price = None
        ioc = tif == "IOC" and price is not None
        with self._transaction() as db:
            if client_order_id is not None and _find(db, None, client_order_id):
                raise ccxt.DuplicateOrderId(
                    f"paper: clientOrderId {client_order_id} is already used on this exchange"
                )
            spec = _market(db, symbol)
            if depth is not None:
                return self._place_on_book(
                    db,
                    spec,
                    type,
                    side,
                    amount,
                    price,
                    client_order_id,
                    fill,
                    leave_open,
                    reduce_only,
                    ioc,
                    depth,
                )
            if price is None:
                crosses = True
            else:
                crosses = price >= spec.price if side == "buy" else price <= spec.price
            fill_price = price if price is not None and not crosses else spec.price
            _validate(spec, amount, spec.price if price is None else price)
            _check_funds(db, spec, side, amount, fill_price)
            filled = _part(amount, fill, spec.amount_step) if crosses else 0.0
            if reduce_only and spec.is_contract:
                filled = min(filled, _reducible(db, spec, side, amount))
            if ioc:
                status = "closed" if filled >= amount else "canceled"
            elif not crosses or (leave_open and filled < amount):
                status = "open"
            else:
                status = "closed" if filled > 0 else "canceled"  # an IOC that got nothing
            return self._insert(
                db, spec, type, side, amount, price, client_order_id, fill_price, filled, status
            )

    def _place_on_book(
        self,
        db: sqlite3.Connection,
        spec: MarketSpec,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        client_order_id: str | None,
        fill: float,
        leave_open: bool,
        reduce_only: bool,
        ioc: bool,
        depth: BookDepth,
    ) -> PaperOrder:
        """``place`` on a ``depth`` book (inside its transaction)."""
        _validate(spec, amount, spec.price if price is None else price)
        target = _part(amount, fill, spec.amount_step)
        if reduce_only and spec.is_contract:
            target = min(target, _reducible(db, spec, side, amount))
        filled, cost = _walk(depth.levels_for(spec, side), side, target, price, spec.amount_step)
        average = cost / filled if filled > 0 else depth.best(spec.price, side)
        _check_funds(db, spec, side, amount, average if price is None else price)
        if filled >= amount:
            status = "closed"
        elif ioc:
            status = "canceled"
        elif leave_open or (price is not None and filled < target):
            status = "open"  # a GTC limit's rest the book could not fill rests at its limit
        else:
            status = "closed" if filled > 0 else "canceled"
        fill_price = price if status == "open" and price is not None else average
        return self._insert(
            db,
            spec,
            type,
            side,
            amount,
            price,
            client_order_id,
            fill_price,
            filled,
            status,
            average,
        )

    def _insert(
        self,
        db: sqlite3.Connection,
        spec: MarketSpec,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        client_order_id: str | None,
        fill_price: float,
        filled: float,
        status: str,
        at: float | None = None,
    ) -> PaperOrder:
        """Store a new order and make its immediate fill of ``filled`` (at ``at``, else at its
        fill price)."""
        row = (client_order_id, int(time.time() * 1000), spec.symbol, type, side, price)
        cursor = db.execute(
            "INSERT INTO orders (client_order_id, timestamp, symbol, type, side, price,"
            " fill_price, amount, filled, cost, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)",
            (*row, fill_price, amount, status),
        )
        order = PaperOrder(int(cursor.lastrowid or 0), *row, fill_price, amount, 0, 0, status)
        return _execute(db, order, filled, status, self.taker_fee, at)

    def find(self, order_id: str | None, client_order_id: str | None = None) -> PaperOrder | None:
        """The order with this client order id if one is given, else with this id."""
        with self._transaction() as db:
            return _find(db, order_id, client_order_id)

    def fetch(
        self,
        order_id: str | None,
        client_order_id: str | None = None,
        *,
        symbol: str | None = None,
        fill_more: float = 0.0,
    ) -> PaperOrder:
        """Look an order up (OrderNotFound if absent); an open one first fills ``fill_more``
        of its amount more, as a resting order would between two polls."""
        with self._transaction() as db:
            order = _find_or_raise(db, order_id, client_order_id, symbol)
            if order.status != "open" or fill_more <= 0:
                return order
            spec = _market(db, order.symbol)
            filled = order.filled + _part(order.amount, fill_more, spec.amount_step)
            if filled >= order.amount * (1 - _SLACK):
                return _execute(db, order, order.amount, "closed", self.taker_fee)
            return _execute(db, order, filled, "open", self.taker_fee)

    def cancel(
        self, order_id: str | None, client_order_id: str | None = None, *, symbol: str | None = None
    ) -> PaperOrder:
        """Cancel the rest of an open order, keeping its fill; OrderNotFound if not open."""
        with self._transaction() as db:
            order = _find_or_raise(db, order_id, client_order_id, symbol)
            if order.status != "open":
                raise ccxt.OrderNotFound(f"paper: order {order.id} is {order.status}, not open")
            db.execute("UPDATE orders SET status = 'canceled' WHERE id = ?", (order.id,))
            return _load(db, order.id)

    def orders(self, symbol: str | None = None, status: str | None = None) -> list[PaperOrder]:
        """All orders, oldest first, optionally only one symbol's and/or one status."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE (:symbol IS NULL OR symbol = :symbol)"
                " AND (:status IS NULL OR status = :status) ORDER BY id",
                {"symbol": symbol, "status": status},  # named: a sequence fails on Python 3.14
            )
            return [PaperOrder(*row) for row in rows]

    def orders_with_client_id(self, client_order_id: str) -> list[PaperOrder]:
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = ? ORDER BY id",
                (client_order_id,),
            )
            return [PaperOrder(*row) for row in rows]


# --- the book's rules, inside a transaction -------------------------------------------------


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ccxt.InvalidOrder(f"paper: {name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ccxt.InvalidOrder(f"paper: {name} must be a positive number, not {value!r}")
    return number


def floor_to_step(amount: float, step: float) -> float:
    """``amount`` rounded down to a multiple of ``step``, float noise forgiven."""
    d_step = Decimal(repr(step))
    nudged = Decimal(repr(amount * (1 + _SLACK)))
    return float((nudged / d_step).to_integral_value(rounding=ROUND_FLOOR) * d_step)


def _part(amount: float, fraction: float, step: float) -> float:
    """``fraction`` of ``amount`` in whole steps, as a real venue fills in lots."""
    return amount if fraction >= 1 else min(amount, floor_to_step(amount * fraction, step))


def _walk(
    levels: list[tuple[float, float]], side: str, target: float, limit: float | None, step: float
) -> tuple[float, float]:
    """Take up to ``target`` from ``levels`` (best first), only those at or better than
    ``limit`` if given: the quantity taken (a multiple of ``step``) and its cost."""
    taken = cost = 0.0
    for price, size in levels:
        if taken >= target or (
            limit is not None and (price > limit if side == "buy" else price < limit)
        ):
            break
        quantity = min(size, target - taken)
        taken += quantity
        cost += quantity * price
    if taken >= target * (1 - _SLACK):
        return (target, cost) if taken > 0 else (0.0, 0.0)
    clean = floor_to_step(taken, step)
    return clean, cost * clean / taken if taken > 0 else 0.0


def _validate(spec: MarketSpec, amount: float, price: float) -> None:
    if amount < spec.min_amount * (1 - _SLACK):
        raise ccxt.InvalidOrder(
            f"paper: amount {amount:g} is below {spec.symbol}'s minimum {spec.min_amount:g}"
        )
    steps = amount / spec.amount_step
    if abs(steps - round(steps)) > _SLACK * max(1.0, steps):
        raise ccxt.InvalidOrder(
            f"paper: amount {amount:g} is not a multiple of {spec.symbol}'s step "
            f"{spec.amount_step:g}"
        )
    value = amount * price * (spec.contract_size if spec.is_contract else 1.0)
    if value < spec.min_cost * (1 - _SLACK):
        raise ccxt.InvalidOrder(
            f"paper: order value {value:g} {spec.quote} is below {spec.symbol}'s "
            f"minimum cost {spec.min_cost:g}"
        )


def _position(db: sqlite3.Connection, symbol: str) -> Position:
    row = db.execute(
        "SELECT contracts, entry_price FROM positions WHERE symbol = ?", (symbol,)
    ).fetchone()
    return Position(symbol, *(row or (0.0, 0.0)))


def _reducible(db: sqlite3.Connection, spec: MarketSpec, side: str, amount: float) -> float:
    """How much of a reduce-only ``side`` order of ``amount`` contracts may fill: up to the
    position it reduces; InvalidOrder if it would open or grow one (as venues reject it)."""
    held = _position(db, spec.symbol).contracts
    if (side == "sell" and held <= 0) or (side == "buy" and held >= 0):
        raise ccxt.InvalidOrder(
            f"paper: reduce-only {side} of {amount:g} {spec.symbol} rejected: it would not "
            f"reduce the position ({held:g} contracts)"
        )
    return min(amount, abs(held))


def _market(db: sqlite3.Connection, symbol: str) -> MarketSpec:
    row = db.execute(
        f"SELECT {_MARKET_COLUMNS} FROM markets WHERE symbol = ?", (symbol,)
    ).fetchone()
    if row is None:
        raise ccxt.BadSymbol(f"paper: no market {symbol!r}")
    return MarketSpec(*row)


def _reserved(db: sqlite3.Connection, asset: str | None = None) -> dict[str, float]:
    """What open orders hold back: quote for the rest of a buy, base for the rest of a sell
    (of every asset, or of ``asset`` only: an order's funds check must not scan them all)."""
    sql = (
        "SELECT symbol, side, amount - filled, fill_price FROM orders WHERE status = 'open'"
        " AND symbol NOT IN (SELECT symbol FROM markets WHERE contract_size > 0)"
    )  # a swap order holds no base nor quote back: no margin is modelled
    params: tuple[str, ...] = ()
    if asset is not None:  # a cheap superset in SQL; the exact match is below
        sql += " AND instr(symbol, ?) > 0"
        params = (asset,)
    used: dict[str, float] = {}
    for symbol, side, remaining, fill_price in db.execute(sql, params):
        buy = side == "buy"
        held_asset, held = (
            (_quote(symbol), remaining * fill_price) if buy else (base_currency(symbol), remaining)
        )
        if asset is None or held_asset == asset:
            used[held_asset] = used.get(held_asset, 0.0) + held
    return used


def _check_funds(
    db: sqlite3.Connection, spec: MarketSpec, side: str, amount: float, price: float
) -> None:
    if spec.is_contract:
        return  # no margin is modelled: a position needs no funds
    asset, needed = (spec.quote, amount * price) if side == "buy" else (spec.base, amount)
    row = db.execute("SELECT total FROM balances WHERE asset = ?", (asset,)).fetchone()
    free = (row[0] if row else 0.0) - _reserved(db, asset).get(asset, 0.0)
    if needed > free * (1 + _SLACK):
        raise ccxt.InsufficientFunds(
            f"paper: {side} {amount:g} {spec.symbol} needs {needed:g} {asset}, "
            f"only {max(free, 0.0):g} free"
        )


def _execute(
    db: sqlite3.Connection,
    order: PaperOrder,
    filled: float,
    status: str,
    taker_fee: float = 0.0,
    at: float | None = None,
) -> PaperOrder:
    """Fill ``order`` up to ``filled`` at ``at`` (default: its fill price), move the balances,
    set its status.

    The new total is set, not added, so a completed order's filled is exactly its amount.
    A spot fill pays ``taker_fee`` of what it receives: a buy in the base, a sell in the quote.
    """
    quantity, price = filled - order.filled, order.fill_price if at is None else at
    db.execute(
        "UPDATE orders SET filled = ?, cost = cost + ?, status = ? WHERE id = ?",
        (filled, quantity * price, status, order.id),
    )
    sign = 1.0 if order.side == "buy" else -1.0
    size = _market(db, order.symbol).contract_size
    moves = (
        [(_quote(order.symbol), _move_position(db, order.symbol, sign * quantity, price, size))]
        if size > 0
        else [
            (
                base_currency(order.symbol),
                sign * quantity - (taker_fee * quantity if sign > 0 else 0.0),
            ),
            (
                _quote(order.symbol),
                -sign * quantity * price - (taker_fee * quantity * price if sign < 0 else 0.0),
            ),
        ]
    )
    for asset, delta in moves:
        db.execute(
            "INSERT INTO balances (asset, total) VALUES (?, ?)"
            " ON CONFLICT (asset) DO UPDATE SET total = total + excluded.total",
            (asset, delta),
        )
    return dataclasses.replace(  # what the row now holds (the same float arithmetic)
        order, filled=filled, cost=order.cost + quantity * price, status=status
    )


def _move_position(
    db: sqlite3.Connection, symbol: str, contracts: float, price: float, size: float
) -> float:
    """Add ``contracts`` (signed) at ``price`` to ``symbol``'s position; the profit or loss
    the part that closes realises, in the quote currency."""
    held = _position(db, symbol)
    new = held.contracts + contracts
    if abs(new) <= _SLACK * max(abs(held.contracts), abs(contracts)):
        new = 0.0
    pnl = 0.0
    if held.contracts * contracts < 0:  # reducing (and maybe flipping)
        closed = min(abs(contracts), abs(held.contracts))
        direction = 1.0 if held.contracts > 0 else -1.0
        pnl = closed * size * (price - held.entry_price) * direction
    if new == 0:
        entry = 0.0
    elif held.contracts * new < 0 or held.contracts == 0:  # opened, or flipped: this price
        entry = price
    elif abs(new) > abs(held.contracts):  # grown: the average
        entry = (abs(held.contracts) * held.entry_price + abs(contracts) * price) / abs(new)
    else:  # reduced: the rest keeps its entry
        entry = held.entry_price
    db.execute(
        "INSERT INTO positions (symbol, contracts, entry_price) VALUES (?, ?, ?)"
        " ON CONFLICT (symbol) DO UPDATE SET contracts = excluded.contracts,"
        " entry_price = excluded.entry_price",
        (symbol, new, entry),
    )
    return pnl


def _load(db: sqlite3.Connection, order_id: int) -> PaperOrder:
    row = db.execute(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,)).fetchone()
    return PaperOrder(*row)


def _find(
    db: sqlite3.Connection, order_id: str | None, client_order_id: str | None
) -> PaperOrder | None:
    if client_order_id is not None:
        row = db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = ?", (client_order_id,)
        ).fetchone()
        return PaperOrder(*row) if row else None
    if order_id is None or not str(order_id).isdigit():
        return None
    row = db.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (int(order_id),)
    ).fetchone()
    return PaperOrder(*row) if row else None


def _find_or_raise(
    db: sqlite3.Connection, order_id: str | None, client_order_id: str | None, symbol: str | None
) -> PaperOrder:
    order = _find(db, order_id, client_order_id)
    if order is None or (symbol is not None and order.symbol != symbol):
        raise ccxt.OrderNotFound(
            f"paper: no order {client_order_id or order_id}" + (f" on {symbol}" if symbol else "")
        )
    return order
