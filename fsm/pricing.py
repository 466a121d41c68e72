"""Price protection: how each leg's orders are priced, and the band arithmetic. Pure.

A market order fills at whatever the book holds: in a thin book leg B can fill far from the
price leg A was hedged at. A leg may instead go out as a *marketable limit IOC*: a limit a
band away from the venue's best price on the side it takes (a buy's ask, a sell's bid) when
the order is decided, immediate-or-cancel so nothing rests on the book. It fills what the band
allows; the rest is cancelled at once, and the next order of the leg (leg B, an unwind) prices
its remainder again, a band wider by ``widen_bps`` each time (the ladder), at most
``cap_bps``. After the leg's last order (``EngineConfig.leg_attempts``), ``after_cap`` says
what becomes of a remainder.

The reference price and the limit are stored with the order's intent, before it is sent: a
process that restarts resends the order with the very limit it had, never a new one decided
from a later price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

ORDER_KINDS = ("market", "limit_ioc")
"""``OrderPolicy.kind``'s values."""

AFTER_CAP = ("unwind", "market", "park")
"""``OrderPolicy.after_cap``'s values: what a leg B remainder left after the ladder's last
order becomes. ``unwind``: leg A's unhedged part is unwound (as when leg B is rejected);
``market``: one more order, at market; ``park``: the trade is PARKED for a human."""

MAX_BPS = 5_000.0
"""Widest band accepted (50%): more is a typo, and a sell's limit must stay above zero."""


@dataclass(frozen=True)
class OrderPolicy:
    """How one leg's orders are priced (``EngineConfig.leg_a`` / ``leg_b`` / ``unwind``)."""

    kind: str = "market"
    """``"market"`` or ``"limit_ioc"`` (see the module)."""
    max_slippage_bps: float = 50.0
    """The first order's band: its limit is this many basis points (1/100 of a percent) worse
    than the reference price."""
    widen_bps: float = 0.0
    """Added to the band for each further order of the leg."""
    cap_bps: float | None = None
    """The widest band of the ladder (None: no cap but the leg's number of orders)."""
    after_cap: str = "unwind"
    """What a remainder after the leg's last order becomes (``AFTER_CAP``; leg B only: leg
    A is never sent twice, and an unwind that cannot finish parks the trade)."""

    def __post_init__(self) -> None:
        if self.kind not in ORDER_KINDS:
            raise ValueError(f"kind must be 'market' or 'limit_ioc', got {self.kind!r}")
        if self.after_cap not in AFTER_CAP:
            raise ValueError(
                f"after_cap must be 'unwind', 'market' or 'park', got {self.after_cap!r}"
            )
        for name in ("max_slippage_bps", "widen_bps", "cap_bps"):
            value = getattr(self, name)
            if value is None and name == "cap_bps":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or not 0 <= value <= MAX_BPS:
                raise ValueError(f"{name} must be between 0 and {MAX_BPS:g} bps, got {value!r}")
        if self.cap_bps is not None and self.cap_bps < self.max_slippage_bps:
            raise ValueError("cap_bps must be at least max_slippage_bps")

    @property
    def limited(self) -> bool:
        return self.kind == "limit_ioc"

    def band_bps(self, attempt: int) -> float:
        """The band of the leg's ``attempt``-th order (1-based): the ladder's rung."""
        band = self.max_slippage_bps + (attempt - 1) * self.widen_bps
        return min(band, self.cap_bps) if self.cap_bps is not None else band


MARKET = OrderPolicy()


def limit_price(side: str, reference: float, band_bps: float, tick: float | None) -> float:
    """The limit ``band_bps`` worse than ``reference`` for ``side``, on the price grid: a buy's
    rounded down, a sell's up, so rounding never takes an order outside its band."""
    factor = 1 + band_bps / 10_000 if side == "buy" else 1 - band_bps / 10_000
    raw = Decimal(repr(reference)) * Decimal(repr(factor))
    if not tick:
        return float(raw)
    step = Decimal(repr(tick))
    rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    return float((raw / step).to_integral_value(rounding=rounding) * step)


def slippage_bps(side: str, reference: float, average: float) -> float:
    """How much worse than ``reference`` an order filled, in basis points (negative: better)."""
    worse = average - reference if side == "buy" else reference - average
    return worse / reference * 10_000


def within_band(side: str, limit: float, average: float) -> bool:
    """Whether a fill at ``average`` respects the order's ``limit`` (to float noise)."""
    noise = 1e-9 * limit
    return average <= limit + noise if side == "buy" else average >= limit - noise
