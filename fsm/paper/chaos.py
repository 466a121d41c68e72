"""Seeded, deterministic fault injection for the paper exchange, configured per symbol.

The faults are the ones that make pair trading dangerous on a real venue: partial fills, orders
left open, timeouts before or after the exchange accepted an order, lookups and cancels that
time out, rejections and throttling, errors nobody recognises after an order was placed, and
replies that lie about an order. A test or a demo names them in one line of text::

    ETH/USDT:timeout_after_accept=1;BTC/USDT:fill=0.6,leave_open=1;*:latency=0.01

An entry is for a symbol, for one side of it (``BTC/USDT@buy``: e.g. a partly filled leg A
whose closing sell fills in full), or for every symbol (``*``, ``*@sell``). A call gets the
most specific entry, whole: ``SYMBOL@side``, then ``SYMBOL``, then ``*@side``, then ``*``.

Fault counters (``timeout_*``, ``lookup_timeouts``, ``cancel_timeouts``, ``reject_*``,
``rate_limit``, ``error_after_accept``, ``insane_reports``) read either as a count or as a
probability: an integer N >= 1 faults the first N calls that reach that check on the symbol
(counted per symbol and entry); a value strictly between 0 and 1 faults each such call with
that probability, drawn from the venue's own seeded RNG so a run can be replayed. A counter
named after a ``pairexec.fsm.paper.faults.Fault`` is that fault on create_order; the others
say which call they fault.

Market keys change the market, not the calls: ``spread_bps``, ``depth``, ``level_bps``,
``levels`` and ``thin_book`` put an order book of seeded levels around the price (a
``pairexec.fsm.paper.book.BookDepth``; off by default: one price, infinite depth), and
``price_jump`` moves the price just before each order, so a price read before it is stale.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pairexec.fsm.paper.faults import Fault, Fills

ANY_SYMBOL = "*"
SIDES = ("buy", "sell")


@dataclass(frozen=True)
class SymbolChaos(Fills):
    """The fills and faults on one symbol (the fill keys first, from ``Fills``; fills are
    rounded down to the amount step). The defaults are a perfect exchange."""

    latency: float = 0.0
    """Seconds slept at the start of every call on this symbol."""
    timeout_before_accept: float = 0
    """``Fault.TIMEOUT_BEFORE_ACCEPT``: create_order raises ccxt.RequestTimeout."""
    timeout_after_accept: float = 0
    """``Fault.TIMEOUT_AFTER_ACCEPT``: create_order places the order, then raises
    ccxt.RequestTimeout."""
    lookup_timeouts: float = 0
    """``Fault.TIMEOUT_BEFORE_ACCEPT`` on fetch_order: ccxt.RequestTimeout before the lookup."""
    cancel_timeouts: float = 0
    """``Fault.TIMEOUT_BEFORE_ACCEPT`` on cancel_order: ccxt.RequestTimeout, nothing
    cancelled."""
    reject_funds: float = 0
    """``Fault.REJECT_FUNDS``: create_order raises ccxt.InsufficientFunds."""
    reject_invalid: float = 0
    """``Fault.REJECT_INVALID``: create_order raises ccxt.InvalidOrder."""
    rate_limit: float = 0
    """``Fault.RATE_LIMIT``: create_order raises ccxt.RateLimitExceeded."""
    error_after_accept: float = 0
    """``Fault.ERROR_AFTER_ACCEPT``: create_order places the order, then raises a bare
    ccxt.ExchangeError."""
    insane_reports: float = 0
    """A create_order or fetch_order reply that is not the order's truth: the ``LIES`` of
    ``pairexec.fsm.paper.faults`` in turn (over-fill, another order, done without a fill)."""
    spread_bps: float = 0.0
    """Bid-ask spread around the price, in basis points: best ask = price x (1 + spread/2),
    best bid = price x (1 - spread/2). Alone, infinite depth at the best bid and ask."""
    depth: float = 0.0
    """Average size of a book level, in the quote currency (seeded per level, x 0.5 to 1.5):
    orders walk the levels and fill at their average price. 0: infinite depth."""
    level_bps: float = 1.0
    """Distance between two levels of the book, in basis points of the price."""
    levels: int = 10
    """Levels on each side of the book; an order that takes them all fills no more."""
    thin_book: bool = False
    """A book whose levels hold about the market's minimum order value each (unless ``depth``
    is given): market orders slip and limit IOC orders fill partly."""
    price_jump: float = 0.0
    """Fraction the price moves by (up or down, seeded) just before each create_order."""

    @property
    def has_book(self) -> bool:
        """Whether orders walk a book of levels rather than fill at the one price."""
        return self.spread_bps > 0 or self.depth > 0 or self.thin_book


_FIELDS = {f.name: f for f in dataclasses.fields(SymbolChaos)}
_FRACTIONS = ("fill", "fills_while_open", "price_jump")
_BOOLEANS = ("leave_open", "thin_book")
_SECONDS = ("latency",)
_MARKET_NUMBERS = ("spread_bps", "depth", "level_bps", "levels")
COUNTERS = tuple(
    n for n in _FIELDS if n not in {*_FRACTIONS, *_BOOLEANS, *_SECONDS, *_MARKET_NUMBERS}
)
"""The fault counters: a count (first N calls) or a probability (each call)."""
_VALID_KEYS = ", ".join(_FIELDS)
_NO_CHAOS = SymbolChaos()


@dataclass(frozen=True)
class ChaosConfig:
    """Faults per entry: ``SYMBOL``, ``SYMBOL@side``, ``*`` or ``*@side`` (see the module)."""

    symbols: dict[str, SymbolChaos] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def parse(cls, text: str | Iterable[str], seed: int = 0) -> ChaosConfig:
        """Read ``SYMBOL:key=value,...;SYMBOL2:...``; a list of such texts is read in order.

        A symbol named twice (in one text or across texts) keeps every key it was given, later
        values winning, so several ``--chaos`` options on a command line add up.
        Raises ValueError naming the bad part and listing the valid keys.
        """
        texts = [text] if isinstance(text, str) else list(text)
        settings: dict[str, dict[str, Any]] = {}
        for one in texts:
            for part in one.split(";"):
                part = part.strip()
                if not part:
                    continue
                symbol, values = _parse_part(part)
                settings.setdefault(symbol, {}).update(values)
        return cls({s: SymbolChaos(**v) for s, v in settings.items()}, seed)

    def entry(self, symbol: str, side: str | None = None) -> tuple[str, SymbolChaos]:
        """The most specific entry for a call, with its name ("" when none applies)."""
        if not self.symbols:  # the common case, on every call: no chaos at all
            return "", _NO_CHAOS
        names = [symbol, ANY_SYMBOL]
        if side:
            names = [f"{symbol}@{side}", symbol, f"{ANY_SYMBOL}@{side}", ANY_SYMBOL]
        for name in names:
            if name in self.symbols:
                return name, self.symbols[name]
        return "", _NO_CHAOS

    def for_symbol(self, symbol: str, side: str | None = None) -> SymbolChaos:
        return self.entry(symbol, side)[1]

    def market_symbols(self) -> set[str]:
        """The symbols the entries name (without sides and ``*``), to check they exist."""
        return {name.partition("@")[0] for name in self.symbols} - {ANY_SYMBOL}


class FaultInjector:
    """Decides, call by call, whether a fault strikes: the counts and the RNG of one venue.

    Counts are kept per (symbol, entry, fault) and only for calls that reach that check, so
    ``rate_limit=2,timeout_before_accept=1`` throttles calls 1 and 2 and times out call 3.
    The RNG is drawn from only for probabilities, so the same seed and the same sequence of
    calls give the same faults.
    """

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._seen: Counter[tuple[str, str, str]] = Counter()

    def settings(self, symbol: str, side: str | None = None) -> SymbolChaos:
        return self.config.for_symbol(symbol, side)

    def strikes(self, fault: Fault | str, symbol: str, side: str | None = None) -> bool:
        """Whether the fault counter ``fault`` (a Fault, or e.g. "lookup_timeouts") hits this
        call."""
        if fault not in COUNTERS:
            raise ValueError(f"{fault!r} is not a fault counter; counters: {', '.join(COUNTERS)}")
        name, chaos = self.config.entry(symbol, side)
        value = float(getattr(chaos, fault))
        if value <= 0:
            return False
        if value < 1:
            return self._rng.random() < value
        self._seen[(symbol, name, fault)] += 1
        return self._seen[(symbol, name, fault)] <= value

    def jump(self, symbol: str, side: str | None = None) -> float:
        """The signed fraction the price moves by before this order (``price_jump``, its sign
        drawn from the RNG); 0 without one (and no draw)."""
        size = self.config.for_symbol(symbol, side).price_jump
        if size <= 0:
            return 0.0
        return size if self._rng.random() < 0.5 else -size


def _parse_part(part: str) -> tuple[str, dict[str, Any]]:
    # rpartition: a symbol may itself contain ":" (BTC/USDT:USDT), keys and values never do.
    symbol, colon, body = part.rpartition(":")
    symbol = symbol.strip()
    if not colon or not symbol:
        raise ValueError(f"bad chaos part {part!r}: expected SYMBOL:key=value[,key=value...]")
    market, at, side = symbol.partition("@")
    if at and (not market or side not in SIDES):
        raise ValueError(f"bad chaos target {symbol!r} in {part!r}: use SYMBOL or SYMBOL@buy/sell")
    values: dict[str, Any] = {}
    for item in body.split(","):
        key, equals, raw = (s.strip() for s in item.partition("="))
        if key not in _FIELDS:
            raise ValueError(f"unknown chaos key {key!r} in {part!r}; valid keys: {_VALID_KEYS}")
        if not equals or not raw:
            raise ValueError(f"chaos key {key!r} in {part!r} needs a value (key=value)")
        values[key] = _value(key, raw, part)
    return symbol, values


def _value(key: str, raw: str, part: str) -> Any:
    if key in _BOOLEANS:
        if raw.lower() in ("1", "true"):
            return True
        if raw.lower() in ("0", "false"):
            return False
        raise ValueError(f"chaos key {key!r} in {part!r} takes 1/0/true/false, not {raw!r}")
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"chaos key {key!r} in {part!r} takes a number, not {raw!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"chaos key {key!r} in {part!r} must be a finite number >= 0")
    if key in _FRACTIONS and number > 1:
        raise ValueError(f"chaos key {key!r} in {part!r} is a fraction: 0 to 1, not {raw}")
    if key == "price_jump" and number >= 1:
        raise ValueError(f"chaos key {key!r} in {part!r} must be below 1, not {raw}")
    if key == "spread_bps" and number >= 20_000:
        raise ValueError(f"chaos key {key!r} in {part!r} must be below 20000 (200%), not {raw}")
    if key == "levels":
        if number < 1 or not number.is_integer():
            raise ValueError(f"chaos key {key!r} in {part!r} is a count (integer >= 1), not {raw}")
        return int(number)
    if key in COUNTERS and number > 1 and not number.is_integer():
        raise ValueError(
            f"chaos key {key!r} in {part!r} is a count (integer >= 1) or a probability "
            f"(between 0 and 1), not {raw}"
        )
    return number
