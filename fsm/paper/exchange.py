"""The paper exchange as the engine sees it: ccxt's async unified interface over a book.

The matching and the state are ``pairexec.fsm.paper.book``'s; this layer speaks ccxt (its
market, ticker, balance and order dicts), runs book calls off the event loop when the book is a
file, and injects the seeded faults of ``pairexec.fsm.paper.chaos``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from pairexec.fsm.paper.book import (
    BookDepth,
    MarketSpec,
    PaperBook,
    PaperOrder,
    Position,
    floor_to_step,
)
from pairexec.fsm.paper.chaos import ANY_SYMBOL, ChaosConfig, FaultInjector, SymbolChaos
from pairexec.fsm.paper.faults import LIES, Fault
from pairexec.fsm.venues.ccxt_ids import unified_client_id

T = TypeVar("T")


class PaperExchange:
    """The ccxt async unified interface over a ``PaperBook``, with seeded faults.

    On a file, calls run in a worker thread: SQLite may wait (up to 30 s) for another
    process's write, and the engine's own call timeouts must still fire meanwhile. A call the
    caller stopped waiting for still completes, exactly like a request that already reached a
    real venue. An in-memory book has no other process to wait for, and its calls take tens of
    microseconds, less than a thread hop: they run inline.
    """

    id = "paper"
    precisionMode = ccxt.TICK_SIZE

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        chaos: ChaosConfig | str | Iterable[str] | None = None,
        seed: int = 0,
        markets: dict[str, MarketSpec] | None = None,
        balances: dict[str, float] | None = None,
        taker_fee: float = 0.0,
        book: PaperBook | None = None,
    ) -> None:
        """``chaos``: a ChaosConfig or its text (a list of texts adds up, like repeated
        ``--chaos`` options). ``seed`` seeds the chaos RNG; 0 keeps a ChaosConfig's own seed.
        ``taker_fee``: the fee rate of every spot fill (0.001: 0.1%; default none), charged
        on a buy in the base currency, on a sell in the quote, and reported in ccxt's
        ``fee``/``fees``. ``book``: another facade's book (its orders, balances, prices and
        fee), seen with this one's faults; ``path``, ``markets``, ``balances`` and
        ``taker_fee`` are then the book's own."""
        if isinstance(chaos, ChaosConfig):
            config = dataclasses.replace(chaos, seed=seed) if seed else chaos
        else:
            config = ChaosConfig.parse(chaos or "", seed)
        self.chaos = config
        self._faults = FaultInjector(config)
        self._lies = 0
        """Lies told so far (``insane_reports``): picks the next one's kind."""
        if book is None:
            book = PaperBook(path, markets=markets, balances=balances, taker_fee=taker_fee)
        self.book = book
        self._inline = book.in_memory
        specs = self.book.markets()
        unknown = sorted(config.market_symbols() - set(specs))
        if unknown:
            self.book.close()
            raise ValueError(
                f"chaos names unknown symbol(s) {', '.join(unknown)}; markets: {', '.join(specs)}"
            )
        self.markets: dict[str, dict[str, Any]] = {s: _ccxt_market(m) for s, m in specs.items()}

    async def __aenter__(self) -> PaperExchange:
        return self

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a book call: inline for an in-memory book, else in a worker thread."""
        if self._inline:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- markets -------------------------------------------------------------------------

    async def load_markets(
        self, reload: bool = False, params: dict[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        return self.markets

    def market(self, symbol: str) -> dict[str, Any]:
        if symbol not in self.markets:
            raise ccxt.BadSymbol(f"paper: no market {symbol!r}")
        return self.markets[symbol]

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        """``amount`` truncated to the market's step, as ccxt's TRUNCATE mode does."""
        step = self.market(symbol)["precision"]["amount"]
        return format(Decimal(repr(floor_to_step(float(amount), step))).normalize(), "f")

    async def fetch_ticker(
        self, symbol: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The market's current price as a ccxt ticker: last = bid = ask, unless the symbol's
        chaos gives it a book (``spread_bps``, ``depth``, ``thin_book``: its entry for the
        symbol, not a side's), then bid and ask are the book's best, last the price (mid)."""
        chaos = self._faults.settings(symbol)
        await self._latency(chaos)
        price = (await self._call(self.book.market, symbol)).price
        depth = self._depth(symbol, chaos)
        bid, ask = (
            (price, price)
            if depth is None
            else (depth.best(price, "sell"), depth.best(price, "buy"))
        )
        now = int(time.time() * 1000)
        return {
            "symbol": symbol,
            "timestamp": now,
            "datetime": datetime.fromtimestamp(now / 1000, tz=timezone.utc).isoformat(),
            "last": price,
            "close": price,
            "bid": bid,
            "ask": ask,
            "info": {},
        }

    # --- account -------------------------------------------------------------------------

    async def fetch_balance(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        await self._latency(self._faults.settings(ANY_SYMBOL))
        balances = await self._call(self.book.balances)
        result: dict[str, Any] = {"info": {}, "timestamp": None, "datetime": None}
        for key in ("free", "used", "total"):
            result[key] = {asset: getattr(b, key) for asset, b in balances.items()}
        for asset, b in balances.items():
            result[asset] = {"free": b.free, "used": b.used, "total": b.total}
        return result

    # --- orders --------------------------------------------------------------------------

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Place an order; ``params``: ``clientOrderId``, ``reduceOnly``, ``timeInForce``
        ("GTC" or "IOC", any case: a limit IOC order never rests, what does not fill at once
        is "canceled", see ``PaperBook.place``). A ``price_jump`` moves the price first."""
        if (params or {}).get("hedged") and self.market(symbol)["contract"]:
            raise ccxt.NotSupported(
                f"paper: hedge mode is not supported on {symbol}: positions are one-way (net)"
            )
        chaos = self._faults.settings(symbol, side)
        await self._latency(chaos)
        jump = self._faults.jump(symbol, side)
        if jump:  # the market moved since the caller last looked
            await self._call(self.book.move_price, symbol, jump)
        if self._faults.strikes(Fault.RATE_LIMIT, symbol, side):
            raise ccxt.RateLimitExceeded(f"paper chaos: too many requests on {symbol}")
        if self._faults.strikes(Fault.TIMEOUT_BEFORE_ACCEPT, symbol, side):
            raise ccxt.RequestTimeout(f"paper chaos: create_order on {symbol} timed out")
        if self._faults.strikes(Fault.REJECT_FUNDS, symbol, side):
            raise ccxt.InsufficientFunds(f"paper chaos: insufficient balance for {symbol}")
        if self._faults.strikes(Fault.REJECT_INVALID, symbol, side):
            raise ccxt.InvalidOrder(f"paper chaos: order on {symbol} rejected as invalid")
        order = await self._call(
            self.book.place,
            symbol,
            type,
            side,
            amount,
            price,
            unified_client_id(params),
            fill=chaos.fill,
            leave_open=chaos.leave_open,
            reduce_only=bool((params or {}).get("reduceOnly")),
            time_in_force=(params or {}).get("timeInForce"),
            depth=self._depth(symbol, chaos),
        )
        if self._faults.strikes(Fault.TIMEOUT_AFTER_ACCEPT, symbol, side):
            raise ccxt.RequestTimeout(
                f"paper chaos: create_order on {symbol} timed out (the order was accepted)"
            )
        if self._faults.strikes(Fault.ERROR_AFTER_ACCEPT, symbol, side):
            raise ccxt.ExchangeError(
                f"paper chaos: create_order on {symbol}: System error (the order was accepted)"
            )
        return await self._reply(self._order_dict(order), symbol, side)

    async def _chaos_before(
        self,
        method: str,
        timeouts: str,
        id: str,
        symbol: str | None,
        params: dict[str, Any] | None,
    ) -> tuple[str | None, tuple[str, str | None]]:
        """The faults a call on an existing order meets first: latency, then its timeouts."""
        cid = unified_client_id(params)
        target = await self._target(id, cid, symbol)
        await self._latency(self._faults.settings(*target))
        if self._faults.strikes(timeouts, *target):
            raise ccxt.RequestTimeout(f"paper chaos: {method} {cid or id} timed out")
        return cid, target

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """By ``params["clientOrderId"]`` if given, else by id; OrderNotFound if absent."""
        cid, target = await self._chaos_before("fetch_order", "lookup_timeouts", id, symbol, params)
        fill_more = self._faults.settings(*target).fills_while_open
        order = await self._call(self.book.fetch, id, cid, symbol=symbol, fill_more=fill_more)
        return await self._reply(self._order_dict(order), *target)

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        cid, _ = await self._chaos_before("cancel_order", "cancel_timeouts", id, symbol, params)
        return self._order_dict(await self._call(self.book.cancel, id, cid, symbol=symbol))

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await self._orders(symbol, "open", since, limit)

    async def fetch_closed_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Orders with status "closed" (as ccxt's own fetchClosedOrders filters them)."""
        return await self._orders(symbol, "closed", since, limit)

    async def fetch_positions(
        self, symbols: list[str] | None = None, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Swap positions that are not flat, as ccxt position dicts (one-way mode)."""
        await self._latency(self._faults.settings(ANY_SYMBOL))
        positions = await self._call(self.book.positions)
        return [
            _ccxt_position(p, self.markets[s]["contractSize"])
            for s, p in positions.items()
            if symbols is None or s in symbols
        ]

    async def close(self) -> None:
        self.book.close()

    # --- helpers for tests, the CLI and the demo -----------------------------------------

    def set_price(self, symbol: str, price: float) -> None:
        self.book.set_price(symbol, price)

    def orders_with_client_id(self, client_order_id: str) -> list[dict[str, Any]]:
        return [self._order_dict(o) for o in self.book.orders_with_client_id(client_order_id)]

    def all_orders(self) -> list[dict[str, Any]]:
        return [self._order_dict(o) for o in self.book.orders()]

    # --- internals -----------------------------------------------------------------------

    def _order_dict(self, order: PaperOrder) -> dict[str, Any]:
        """``order`` as a ccxt order dict, with the fee it paid."""
        reply = _ccxt_order(order)
        rate = self.book.taker_fee
        if rate > 0 and order.filled > 0 and not self.markets[order.symbol].get("contract"):
            base, quote = order.symbol.split("/", 1)
            fee = (
                {"currency": base, "cost": rate * order.filled, "rate": rate}
                if order.side == "buy"
                else {"currency": quote, "cost": rate * order.cost, "rate": rate}
            )
            reply.update(fee=fee, fees=[fee])
        return reply

    async def _reply(self, reply: dict[str, Any], symbol: str, side: str | None) -> dict[str, Any]:
        """``reply``, or (``insane_reports``) a lie about it: the lies take turns, so a count
        of 3 tells each once. A lie is marked in ``info["paper_chaos"]`` for test harnesses,
        which no engine reads."""
        if not self._faults.strikes("insane_reports", symbol, side):
            return reply
        kind = LIES[self._lies % len(LIES)]
        self._lies += 1
        if kind is Fault.OVERFILL_AFTER_ACCEPT:
            amount = float(reply["amount"])
            lie = {**reply, "filled": amount * 1.5, "remaining": -amount / 2}
        elif kind is Fault.OTHER_ORDER_AFTER_ACCEPT:
            cid = reply["clientOrderId"]
            others = [o for o in await self._call(self.book.orders) if o.client_order_id != cid]
            other = {**reply, "clientOrderId": f"not-{cid}"}
            lie = self._order_dict(others[-1]) if others else other
        else:  # NO_FILL_AFTER_ACCEPT: "closed" without a fill
            lie = {**reply, "status": "closed", "filled": None, "remaining": None}
        return {**lie, "info": {**lie["info"], "paper_chaos": kind.value}}

    def _depth(self, symbol: str, chaos: SymbolChaos) -> BookDepth | None:
        """The book ``chaos`` gives ``symbol``'s orders, seeded by the venue's seed; None: the
        default market (one price, infinite depth)."""
        if not chaos.has_book:
            return None
        notional = chaos.depth
        if chaos.thin_book and notional <= 0:
            notional = float(self.market(symbol)["limits"]["cost"]["min"] or 1.0)
        return BookDepth(
            spread_bps=chaos.spread_bps,
            level_bps=chaos.level_bps,
            levels=chaos.levels,
            level_notional=notional,
            seed=self.chaos.seed,
        )

    async def _latency(self, chaos: SymbolChaos) -> None:
        if chaos.latency > 0:
            await asyncio.sleep(chaos.latency)

    async def _target(self, id: str, cid: str | None, symbol: str | None) -> tuple[str, str | None]:
        """The symbol and side whose chaos applies to a call on an existing order."""
        order = await self._call(self.book.find, id, cid)
        if order is not None and symbol in (None, order.symbol):
            return order.symbol, order.side
        return symbol or ANY_SYMBOL, None

    async def _orders(
        self, symbol: str | None, status: str, since: int | None, limit: int | None
    ) -> list[dict[str, Any]]:
        if symbol is not None:
            self.market(symbol)
        await self._latency(self._faults.settings(symbol or ANY_SYMBOL))
        orders = await self._call(self.book.orders, symbol, status)
        if since is not None:
            orders = [o for o in orders if o.timestamp >= since]
        if limit is not None:  # from ``since`` on: the first ones; otherwise the latest
            orders = orders[:limit] if since is not None else orders[max(len(orders) - limit, 0) :]
        return [self._order_dict(o) for o in orders]


def _ccxt_market(spec: MarketSpec) -> dict[str, Any]:
    kind: dict[str, Any] = {"type": "spot", "spot": True, "swap": False, "contract": False}
    if spec.is_contract:  # a linear perpetual swap, settled in its quote currency
        kind = {
            "type": "swap",
            "spot": False,
            "swap": True,
            "contract": True,
            "linear": True,
            "inverse": False,
            "settle": spec.quote,
            "contractSize": spec.contract_size,
        }
    return {
        "id": spec.symbol.replace("/", "").replace(":", "-"),
        "symbol": spec.symbol,
        "base": spec.base,
        "quote": spec.quote,
        **kind,
        "active": True,
        "precision": {"amount": spec.amount_step, "price": spec.price_step},
        "limits": {
            "amount": {"min": spec.min_amount, "max": None},
            "cost": {"min": spec.min_cost, "max": None},
        },
    }


def _ccxt_position(position: Position, contract_size: float) -> dict[str, Any]:
    contracts = abs(position.contracts)
    return {
        "symbol": position.symbol,
        "side": "long" if position.contracts > 0 else "short",
        "contracts": contracts,
        "contractSize": contract_size,
        "entryPrice": position.entry_price,
        "notional": contracts * contract_size * position.entry_price,
        "hedged": False,
        "marginMode": "cross",
        "info": dataclasses.asdict(position),
    }


def _ccxt_order(order: PaperOrder) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(order.timestamp / 1000, tz=timezone.utc)
    return {
        "id": str(order.id),
        "clientOrderId": order.client_order_id,
        "timestamp": order.timestamp,
        "datetime": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "symbol": order.symbol,
        "type": order.type,
        "side": order.side,
        "price": order.price if order.price is not None else order.average,
        "average": order.average,
        "amount": order.amount,
        "filled": order.filled,
        "remaining": order.remaining,
        "cost": order.cost,
        "status": order.status,
        "fee": None,
        "fees": [],
        "trades": [],
        "info": dict(vars(order)),  # its fields (flat: asdict's deep copy costs 4% of a run)
    }
