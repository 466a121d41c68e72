"""What a market allows: amount step, minimum amount and minimum order value (notional).
Pure data, read once from ccxt's markets.

The engine rounds every amount down to the market's step before persisting the order (so the
stored amount is what is sent), and never decides to send an amount the exchange must reject:
a remainder below the minimum is dust, handled by an explicit decision in ``pairexec.fsm.decide``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

# ccxt precision modes (ccxt.DECIMAL_PLACES, ccxt.TICK_SIZE); copied as numbers to keep this
# module free of the ccxt import.
DECIMAL_PLACES = 2
TICK_SIZE = 4

_FLOAT_NOISE = 1e-9  # 0.6 * 1.5 = 0.8999999999999999 must floor to 0.9, not 0.8999


@dataclass(frozen=True)
class MarketRules:
    amount_step: float | None = None
    min_amount: float = 0.0
    min_cost: float = 0.0
    """Minimum order value in the quote currency (amount x price); 0: none."""

    def floor(self, amount: float) -> float:
        """``amount`` rounded down to the step (float noise forgiven)."""
        if not self.amount_step:
            return amount
        step = Decimal(repr(self.amount_step))
        nudged = Decimal(repr(amount * (1 + _FLOAT_NOISE)))
        return float((nudged / step).to_integral_value(rounding=ROUND_FLOOR) * step)

    def sendable(self, amount: float, price: float | None = None) -> float | None:
        """The amount an order may carry, or None if it rounds below what the market accepts:
        its minimum amount, or (given a reference ``price``) its minimum order value."""
        floored = self.floor(amount)
        if floored <= 0 or floored < self.min_amount * (1 - _FLOAT_NOISE):
            return None
        if self.min_cost and price and floored * price < self.min_cost * (1 - _FLOAT_NOISE):
            return None
        return floored


ANY_AMOUNT = MarketRules()


def rules_from_ccxt(market: Mapping[str, Any], precision_mode: int | None) -> MarketRules:
    precision = (market.get("precision") or {}).get("amount")
    step: float | None = None
    if isinstance(precision, (int, float)) and not math.isnan(precision):
        if precision_mode == DECIMAL_PLACES:
            step = 10.0 ** -int(precision)
        elif precision_mode == TICK_SIZE and precision > 0:
            step = float(precision)
    limits = market.get("limits") or {}
    minimum = (limits.get("amount") or {}).get("min")
    min_cost = (limits.get("cost") or {}).get("min")
    return MarketRules(
        amount_step=step, min_amount=float(minimum or 0.0), min_cost=float(min_cost or 0.0)
    )
