"""What a bot hands the engine (a request) and what it gets back (an outcome)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fsm.states import TradeState

SIDES = ("buy", "sell")


class InvalidRequest(ValueError):
    """The request is malformed. Raised before anything is persisted or sent."""


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

    def validated(self) -> PairTradeRequest:
        """Return a normalised copy, or raise InvalidRequest naming the bad field."""
        pair_x = _symbol("pair_x", self.pair_x)
        pair_y = _symbol("pair_y", self.pair_y)
        if pair_x == pair_y:
            raise InvalidRequest(
                f"pair_x and pair_y are the same symbol ({pair_x!r}): a pair trade needs two"
            )
        signal_id = self.signal_id
        if signal_id is not None:
            if not isinstance(signal_id, str) or not signal_id.strip():
                raise InvalidRequest("signal_id must be a non-empty string or None")
            if len(signal_id) > 200:
                raise InvalidRequest("signal_id is longer than 200 characters")
        return PairTradeRequest(
            pair_x=pair_x,
            side_x=_side("side_x", self.side_x),
            amount_x=_positive("amount_x", self.amount_x),
            pair_y=pair_y,
            side_y=_side("side_y", self.side_y),
            hedge_ratio=_positive("hedge_ratio", self.hedge_ratio),
            signal_id=signal_id,
        )

    @property
    def inflight_key(self) -> str:
        """At most one in-flight trade per key when no signal id is given."""
        return f"{self.pair_x}|{self.pair_y}|{self.side_x}|{self.side_y}"


def _symbol(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{field} must be a non-empty market symbol such as 'BTC/USDT'")
    return value.strip()


def _side(field: str, value: object) -> str:
    side = value.strip().lower() if isinstance(value, str) else value
    if side not in SIDES:
        raise InvalidRequest(f"{field} must be 'buy' or 'sell', got {value!r}")
    return str(side)


def _positive(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"{field} must be a number, got {value!r}")
    number = float(value)
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

    @property
    def ok(self) -> bool:
        return self.state is TradeState.DONE and not self.duplicate

    def __bool__(self) -> bool:
        return self.ok
