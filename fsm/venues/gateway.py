"""The engine's only contact with the exchange: three calls, each answered as a plain result.

Every call is bounded by ``EngineConfig.call_timeout`` and every failure is sorted by what it
means for the order (``pairexec.fsm.venues.errors``), so the engine never inspects exceptions
itself. Exceptions that are not ``Exception`` (cancellation, interpreter exit) pass through
untouched.

What differs between venues (how a client order id is passed and how an order is found by
it) is data in ``pairexec.fsm.venues.ccxt_ids``; the lookups themselves are
``pairexec.fsm.venues.ccxt_lookup``. The paper exchange and test doubles (no ccxt ``has``) use
ccxt's unified ``clientOrderId`` for all three calls, as before.

Amounts: the engine speaks base units everywhere. On a contract market (``MarketRules``
``is_contract``) ``create`` sends ``amount / contractSize`` contracts, and every reply's
``filled`` (``amount``, ``remaining``) is read back as base units before it is checked, so an
order's fill is always in the units it was decided in. An order that reduces a position
(``OrderFacts.reduces_position``: an unwind) carries ccxt's unified ``reduceOnly`` there;
with ``EngineConfig(position_mode="hedge")`` every contract order carries ``hedged`` too, which
ccxt maps to the venue's position side (binance ``positionSide``, okx ``posSide``, bybit
``positionIdx``). Spot orders carry neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.markets import ANY_AMOUNT, MarketRules, rules_from_ccxt
from pairexec.fsm.model import OrderFacts
from pairexec.fsm.venues.ccxt_ids import check_support, rules_for
from pairexec.fsm.venues.ccxt_lookup import find_order
from pairexec.fsm.venues.ccxt_secrets import CredentialGuard
from pairexec.fsm.venues.errors import ErrorMeaning, classify, describe
from pairexec.fsm.venues.reports import ExchangeReport, MalformedOrder, NotBelievable, parse_order

log = logging.getLogger("pairexec.gateway")

T = TypeVar("T")


async def _within(seconds: float, call: Awaitable[T]) -> T:
    """``call``'s result, or TimeoutError after ``seconds``. On Python 3.11+ without the task
    ``wait_for`` wraps every call in: at hundreds of trades at once that task was a visible
    part of the engine's CPU per exchange call."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, seconds)  # pragma: no cover - Python 3.10


@dataclass(frozen=True)
class Answered:
    """The exchange answered with the order."""

    report: ExchangeReport


@dataclass(frozen=True)
class Failed:
    """The call failed; ``meaning`` says what that implies for the order."""

    meaning: ErrorMeaning
    error: str


@dataclass(frozen=True)
class NotBelieved(Failed):
    """The exchange answered, but not with this order as it can be (another order's ids, an
    impossible fill: ``venues.reports.NotBelievable``). Its outcome is unknown, as after a lost
    reply; unlike a lost reply, asking again may keep getting the same answer, so the engine
    parks a trade whose lookups answer only like this instead of waiting for recover."""


CallResult = Answered | Failed


class ExchangeGateway:
    def __init__(self, exchange: Any, config: EngineConfig) -> None:
        self.exchange = exchange
        self.config = config
        self.rules = rules_for(exchange)
        self._credentials = CredentialGuard(exchange)
        self._markets: dict[str, MarketRules] = {}
        """The rules ``market_rules`` read: how ``create`` sizes an order in contracts."""
        self._modes: dict[str, str | None] = {}
        """Each contract symbol's position mode as the venue told it (None: it would not)."""

    async def market_rules(self) -> dict[str, MarketRules]:
        """Each market's amount step and minimum; empty for a venue without ``load_markets``.

        First checks that the venue can place and find orders by client id at all
        (``UnsupportedExchange`` otherwise), so nothing is ever sent to one that cannot.
        """
        check_support(self.exchange, self.rules, client_order_id("start-up", Leg.A, 1))
        if not self.rules.verified:
            log.warning(
                "%s: no verified client-order-id rules; orders of unknown outcome are found by "
                "scanning its open and closed orders",
                getattr(self.exchange, "id", "exchange"),
            )
        load = getattr(self.exchange, "load_markets", None)
        if load is None:
            return {}
        markets = await _within(self.config.call_timeout, load())
        mode = getattr(self.exchange, "precisionMode", None)
        self._markets = {
            symbol: rules_from_ccxt(m, mode, symbol) for symbol, m in (markets or {}).items()
        }
        return dict(self._markets)

    def market_buy_problem(self, symbol: str) -> str | None:
        """Why a market buy of an amount in the base currency cannot be sent on ``symbol``, or
        None. Some venues' spot market buys are sized by the quote currency they spend: ccxt
        then wants a price to turn the amount into a cost (``createMarketBuyOrderRequiresPrice``:
        gate, htx, coinbase, bitget... refused by ccxt before anything is sent), or, with
        okx's ``tgtCcy="quote_ccy"``, sends the amount as USDT to spend: a wrong amount."""
        if self._markets.get(symbol, ANY_AMOUNT).is_contract:
            return None  # contracts are counted in contracts, whichever the side
        options = getattr(self.exchange, "options", None)
        options = options if isinstance(options, dict) else {}
        create = options.get("createOrder")
        key = "createMarketBuyOrderRequiresPrice"
        needs_price = (create if isinstance(create, dict) else {}).get(key, options.get(key))
        if needs_price is True:
            return f"needs a price for a market buy on {symbol} (ccxt option {key})"
        if options.get("tgtCcy") == "quote_ccy":
            return (
                f"sizes a market buy on {symbol} in the quote currency (ccxt option "
                "tgtCcy='quote_ccy'): the amount would be spent, not bought"
            )
        return None

    async def position_mode_mismatch(self, symbols: Iterable[str]) -> str | None:
        """Why orders on ``symbols`` would carry the wrong position flags, or None.

        For each contract market among them, asks the venue its position mode once (ccxt's
        ``fetchPositionMode``, where the venue has it: binance's futures, okx), and says so if
        it is not ``EngineConfig.position_mode``. A venue without it, or whose answer fails,
        is trusted to match (logged): its refusal of an order is handled like any other.
        """
        for symbol in symbols:
            if not self._markets.get(symbol, ANY_AMOUNT).is_contract:
                continue
            if symbol not in self._modes:
                self._modes[symbol] = await self._position_mode(symbol)
            mode = self._modes[symbol]
            if mode is not None and mode != self.config.position_mode:
                return (
                    f"{symbol}: the account is in {mode} position mode, but "
                    f"EngineConfig.position_mode is {self.config.position_mode!r}; nothing sent"
                )
        return None

    async def _position_mode(self, symbol: str) -> str | None:
        has = getattr(self.exchange, "has", None)
        if not isinstance(has, dict) or not has.get("fetchPositionMode"):
            return None
        try:
            info = await _within(
                self.config.call_timeout, self.exchange.fetch_position_mode(symbol)
            )
        except Exception as exc:
            log.warning(
                "%s: position mode unknown, taken to be %r: %s",
                symbol,
                self.config.position_mode,
                self._credentials.redact(describe(exc)),
            )
            return None
        hedged = info.get("hedged") if isinstance(info, dict) else None
        if not isinstance(hedged, bool):
            return None
        return "hedge" if hedged else "oneway"

    def _params(self, order: OrderFacts, rules: MarketRules) -> dict[str, Any]:
        """create_order's params: our client id, and on a contract market the position
        flags (never on spot)."""
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}  # renamed per venue
        if rules.is_contract:
            if order.reduces_position:
                params["reduceOnly"] = True
            if self.config.position_mode == "hedge":
                params["hedged"] = True  # ccxt: positionSide / posSide / positionIdx
        return params

    def _failed(self, exc: Exception) -> Failed:
        return Failed(classify(exc), self._credentials.redact(describe(exc)))

    async def _call(
        self, order: OrderFacts, call: Callable[[], Awaitable[Any]], *, new_send: bool = False
    ) -> CallResult:
        """The call's reply checked against ``order`` before anyone acts on it."""
        try:
            reply = await _within(self.config.call_timeout, call())
        except Exception as exc:
            return self._failed(exc)
        reply = _in_base_units(reply, self._markets.get(order.symbol, ANY_AMOUNT))
        try:
            return Answered(parse_order(reply, order, new_send=new_send))
        except NotBelievable as exc:
            why = self._credentials.redact(str(exc))
            log.warning("%s: not believed: %s", getattr(self.exchange, "id", "exchange"), why)
            return NotBelieved(ErrorMeaning.UNKNOWN, f"not believed: {why}")
        except MalformedOrder as exc:
            return Failed(ErrorMeaning.UNKNOWN, self._credentials.redact(str(exc)))

    async def create(self, order: OrderFacts) -> CallResult:
        if not self.rules.accepts(order.client_order_id):  # nothing sent: a plain reject
            return Failed(
                ErrorMeaning.REJECTED,
                f"client order id {order.client_order_id!r} does not fit {self.rules.name}",
            )
        rules = self._markets.get(order.symbol, ANY_AMOUNT)
        unsupported = rules.unsupported()
        if unsupported is not None:  # nothing sent: never a mis-sized order
            return Failed(ErrorMeaning.REJECTED, unsupported)
        amount = rules.to_contracts(order.amount)
        if amount <= 0:
            return Failed(
                ErrorMeaning.REJECTED,
                f"{order.amount:g} {order.symbol} is less than one contract step "
                f"({rules.amount_step or 0:g})",
            )
        params = self._params(order, rules)
        kind, price = "market", None
        if order.limit_price is not None:  # a limit IOC: fills what its limit allows, at once
            kind, price = "limit", order.limit_price
            params = {**params, "timeInForce": "IOC"}
        return await self._call(
            order,
            lambda: self.exchange.create_order(
                order.symbol, kind, order.side, amount, price, params
            ),
            new_send=True,
        )

    async def fetch(self, order: OrderFacts) -> CallResult:
        """Look the order up by its client order id (or its exchange id, once known), the way
        the venue supports; NOT_FOUND only when the venue really answered "no such order"."""
        return await self._call(order, lambda: find_order(self.exchange, self.rules, order))

    async def price(self, symbol: str) -> float | None:
        """A recent price of ``symbol`` (last trade, else mid quote), None if the venue will
        not say; only ever used to check a minimum order value (see ``venues.prices``)."""
        try:
            ticker = await _within(self.config.call_timeout, self.exchange.fetch_ticker(symbol))
        except Exception as exc:
            log.warning(
                "no price for %s, its minimum order value is left to the venue: %s",
                symbol,
                self._credentials.redact(describe(exc)),
            )
            return None
        ticker = ticker if isinstance(ticker, dict) else {}
        for value in (ticker.get("last"), ticker.get("close")):
            if isinstance(value, (int, float)) and value > 0:
                return float(value)
        bid, ask = ticker.get("bid"), ticker.get("ask")
        if isinstance(bid, (int, float)) and isinstance(ask, (int, float)) and bid > 0 < ask:
            return (float(bid) + float(ask)) / 2
        return None

    async def quote(self, symbol: str, side: str) -> float | None:
        """The best price an order on ``side`` would take now: the ask for a buy, the bid for
        a sell (a limit's reference, ``pricing``); None if the venue will not say. Never the
        last trade's price: in a thin book it can be far from what an order gets."""
        try:
            ticker = await _within(self.config.call_timeout, self.exchange.fetch_ticker(symbol))
        except Exception as exc:
            log.warning("no quote for %s: %s", symbol, self._credentials.redact(describe(exc)))
            return None
        best = (ticker if isinstance(ticker, dict) else {}).get("ask" if side == "buy" else "bid")
        if isinstance(best, bool) or not isinstance(best, (int, float)):
            return None
        return float(best) if math.isfinite(best) and best > 0 else None

    async def cancel(self, order: OrderFacts) -> Failed | None:
        """Ask for the rest of the order to be cancelled; the fill is read by a fetch after."""
        order_id, params = self.rules.cancel_args(order.client_order_id, order.exchange_order_id)
        try:
            await _within(  # inside try: a sync raise is classified too
                self.config.call_timeout, self.exchange.cancel_order(order_id, order.symbol, params)
            )
        except Exception as exc:
            return self._failed(exc)
        return None


_AMOUNT_KEYS = ("amount", "filled", "remaining")


def _in_base_units(reply: Any, rules: MarketRules) -> Any:
    """A ccxt order dict of a contract market with its amounts (contracts) in base units; any
    other reply as it is (``parse_order`` judges it)."""
    if not rules.is_contract or not isinstance(reply, dict):
        return reply
    converted = dict(reply)
    for key in _AMOUNT_KEYS:
        value = reply.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            converted[key] = rules.to_base(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # else as it is: parse_order judges it
                converted[key] = rules.to_base(float(value))
    return converted
