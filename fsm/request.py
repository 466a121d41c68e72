"""What a bot hands the engine (a request) and what it gets back (an outcome)."""

from __future__ import annotations

import enum
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.states import TradeState

SIDES = ("buy", "sell")

MAX_AMOUNT = 1e15
"""Largest leg amount (leg A's, and leg B's: ratio x amount) accepted. It is about the whole
supply of the most plentiful listed tokens (SHIB: ~1e15 units), so no real order is larger;
and near 2**53 (~9e15) a float stops holding whole units, so the market-step flooring and the
fill comparisons the engine relies on would silently lose meaning."""


TRADE_ID = re.compile(r"[0-9a-f]{32}")
"""A trade's id as the store makes it (a UUID's hex)."""

VENUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
"""A venue's name (a key of the engine's exchange mapping, a config file's ``[venues.NAME]``):
short, and without ``@`` or ``|``, which separate it from a symbol in a market key and in the
in-flight pair key."""


class InvalidRequest(ValueError):
    """The request is malformed. Raised before anything is persisted or sent."""


class DuplicateReason(str, enum.Enum):
    """Why a request was refused as a duplicate (nothing stored, nothing sent)."""

    SIGNAL_REPLAYED = "signal_replayed"
    """Its signal id already made a trade (checked first, whatever that trade's state)."""
    PAIR_BUSY = "pair_busy"
    """An identical pair trade (same pairs and sides) is in flight; a signal id does not
    exempt a request from that."""
    PAIR_PARKED = "pair_parked"
    """An identical pair trade is PARKED: its legs may be naked until a human resolves it
    (``TradeStore.resolve`` / ``pairexec resolve``)."""
    ALREADY_CLOSED = "already_closed"
    """The trade this exit would close already has an exit (one that did not end ABORTED or
    FAILED): ``ExecutionEngine.close_pair_trade`` makes at most one."""


@dataclass(frozen=True)
class PairTradeRequest:
    """Buy/sell ``amount_x`` of ``pair_x`` (leg A), then hedge with ``pair_y`` (leg B).

    Leg B's amount is ``hedge_ratio * leg A's actual fill``, never of the requested amount.
    ``signal_id`` is an optional idempotency key: one trade per signal id, ever.
    """

    pair_x: str
    side_x: str
    amount_x: float
    pair_y: str
    side_y: str
    hedge_ratio: float = 1.0
    signal_id: str | None = None
    venue_x: str | None = None
    """The venue of leg A (and of its unwinds): a name of the engine's exchange mapping; None
    with a single exchange."""
    venue_y: str | None = None
    """The venue of leg B."""
    price_x: float | None = None
    """Leg A's limit price: leg A goes out as a limit IOC at this price (a buy pays at most
    it, a sell gets at least it), whatever ``EngineConfig.leg_a`` says; None: as it says."""
    closes: str | None = None
    """The id of the DONE trade this one closes (an exit: ``close_pair_trade`` sets it). At
    most one exit per trade, bar exits that ended ABORTED or FAILED."""

    def validated(self) -> PairTradeRequest:
        """Return a normalised copy, or raise InvalidRequest naming the bad field."""
        pair_x = _symbol("pair_x", self.pair_x)
        pair_y = _symbol("pair_y", self.pair_y)
        venue_x = None if self.venue_x is None else venue_name("venue_x", self.venue_x)
        venue_y = None if self.venue_y is None else venue_name("venue_y", self.venue_y)
        if pair_x == pair_y and venue_x == venue_y:
            # The same symbol on two venues is the main cross-venue trade; on one venue the two
            # legs would cancel out (and share the one market's position).
            where = f" on venue {venue_x!r}" if venue_x else ""
            raise InvalidRequest(
                f"pair_x and pair_y are the same symbol ({pair_x!r}){where}: a pair trade "
                "needs two markets"
            )
        signal_id = self.signal_id
        if signal_id is not None:
            if not isinstance(signal_id, str) or not signal_id.strip():
                raise InvalidRequest("signal_id must be a non-empty string or None")
            if len(signal_id) > 200:
                raise InvalidRequest("signal_id is longer than 200 characters")
            checked_text("signal_id", signal_id)
        amount_x = _positive("amount_x", self.amount_x)
        if amount_x > MAX_AMOUNT:
            raise InvalidRequest(f"amount_x must be at most {MAX_AMOUNT:g}, got {amount_x!r}")
        hedge_ratio = _positive("hedge_ratio", self.hedge_ratio)
        leg_b = amount_x * hedge_ratio
        if not 0 < leg_b <= MAX_AMOUNT:  # inf when it overflows, 0 when it underflows
            raise InvalidRequest(
                f"hedge_ratio x amount_x (leg B's size) must be > 0 and at most "
                f"{MAX_AMOUNT:g}, got {hedge_ratio!r} x {amount_x!r} = {leg_b!r}"
            )
        price_x = None if self.price_x is None else _positive("price_x", self.price_x)
        closes = self.closes
        if closes is not None and (
            not isinstance(closes, str) or TRADE_ID.fullmatch(closes) is None
        ):
            raise InvalidRequest(f"closes must be a trade id (32 hex digits), got {closes!r}")
        return PairTradeRequest(
            pair_x=pair_x,
            side_x=_side("side_x", self.side_x),
            amount_x=amount_x,
            pair_y=pair_y,
            side_y=_side("side_y", self.side_y),
            hedge_ratio=hedge_ratio,
            signal_id=signal_id,
            venue_x=venue_x,
            venue_y=venue_y,
            price_x=price_x,
            closes=closes,
        )

    @property
    def market_x(self) -> str:
        """Leg A's market: ``BTC/USDT@binance``, or the symbol alone with a single exchange."""
        return market_key(self.pair_x, self.venue_x)

    @property
    def market_y(self) -> str:
        """Leg B's market (see ``market_x``)."""
        return market_key(self.pair_y, self.venue_y)

    def venue_of(self, leg: Leg) -> str | None:
        """Where ``leg``'s orders go: leg B to ``venue_y``; leg A and its unwinds, which close
        leg A's position and can only do so where it was opened, to ``venue_x``."""
        return self.venue_y if leg is Leg.B else self.venue_x

    @property
    def inflight_key(self) -> str:
        """At most one in-flight trade per key (markets, venues included, and sides); with a
        single exchange the key is as it always was, so stored trades keep blocking."""
        return f"{self.market_x}|{self.market_y}|{self.side_x}|{self.side_y}"


def market_key(symbol: str, venue: str | None) -> str:
    """One market of one venue as one text: ``BTC/USDT@binance`` (the CLI's notation too);
    the symbol alone for a single exchange's (venue None)."""
    return symbol if venue is None else f"{symbol}@{venue}"


def split_market(text: str) -> tuple[str, str | None]:
    """``BTC/USDT@binance`` -> (``BTC/USDT``, ``binance``); no ``@``: (text, None)."""
    symbol, at, venue = text.rpartition("@")
    return (symbol, venue) if at else (text, None)


def venue_name(field: str, value: object) -> str:
    """``value`` if it is a usable venue name (``VENUE_NAME``), else InvalidRequest."""
    if not isinstance(value, str) or VENUE_NAME.fullmatch(value) is None:
        raise InvalidRequest(
            f"{field} must be a venue name (letters, digits, '_' or '-', at most 32, "
            f"starting with a letter or digit), got {value!r}"
        )
    return value


def _symbol(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a non-empty market symbol such as 'BTC/USDT'")
    return checked_text(field, value.strip())


def checked_text(field: str, value: str) -> str:
    """Text that is stored and printed must be real text. A lone surrogate (what Python makes
    of non-UTF-8 bytes in argv or a file name) cannot be encoded: SQLite raises mid-write and
    PostgreSQL refuses it, after the trade was half stored. A control character (a newline, a
    terminal escape) would forge lines or colours in every table and log that shows it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{field} is not valid UTF-8 text (position {exc.start}): {value!r}"
        ) from None
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            raise InvalidRequest(
                f"{field} contains a control character at position {position}: {value!r}"
            )
    return value


def _side(field: str, value: object) -> str:
    side = value.strip().lower() if isinstance(value, str) else value
    if side not in SIDES:
        raise InvalidRequest(f"{field} must be 'buy' or 'sell', got {value!r}")
    return str(side)


def _positive(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{field} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range (10**400)
        raise InvalidRequest(
            f"{field} must be a finite number > 0, got an integer of {len(str(value))} digits"
        ) from None
    if math.isnan(number) or math.isinf(number) or number <= 0:
        raise InvalidRequest(f"{field} must be a finite number > 0, got {value!r}")
    return number


@dataclass(frozen=True)
class TradeOutcome:
    """Where a trade ended up when the engine stopped driving it.

    ``ok`` is True only for DONE. A non-terminal ``state`` (e.g. UNKNOWN) means the engine could
    not finish safely now (an order's existence is still unknown); ``recover()`` resumes it.
    """

    trade_id: str
    state: TradeState
    filled_x: float = 0.0
    filled_y: float = 0.0
    unwound_x: float = 0.0
    reason: str = ""
    duplicate: bool = False
    duplicate_reason: DuplicateReason | None = None
    """Why this request was a duplicate; None if it was not one."""
    net_x: float = 0.0
    """Leg A's base amount that actually moved on the account before any unwind: its fill
    minus fees charged in its base currency on a buy, plus them on a sell."""
    net_y: float = 0.0
    """The same for leg B."""
    average_x: float | None = None
    """Leg A's volume-weighted average fill price over its orders (None: unknown)."""
    average_y: float | None = None
    """The same for leg B."""
    fees: Mapping[str, float] = field(default_factory=dict)
    """Every fee the trade's orders paid (unwinds included), summed per currency; a negative
    total is a rebate received."""
    closes: str | None = None
    """For an exit (``close_pair_trade``): the id of the trade it closes."""

    @property
    def ok(self) -> bool:
        return self.state is TradeState.DONE and not self.duplicate

    def __bool__(self) -> bool:
        return self.ok
