"""Engine tunables, with the defaults the seed scenarios were written against."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from pairexec.fsm.pricing import MARKET, OrderPolicy

MAX_SECONDS = 86_400.0
"""Upper bound of every duration (a day). A trade execution core that waits longer than that
for anything was given a typo, and the lease is added to a wall-clock time, which overflows
(an exception mid-trade) long before a float does."""

POSITION_MODES = ("oneway", "hedge")
"""``EngineConfig.position_mode``'s values."""

HEDGE_BASES = ("net", "filled")
"""``EngineConfig.hedge_basis``'s values."""

_DURATIONS = (
    "call_timeout",
    "lease_seconds",
    "lookup_backoff",
    "max_backoff",
    "settle_timeout",
    "settle_poll_interval",
)


@dataclass(frozen=True)
class EngineConfig:
    full_fill_ratio: float = 0.95
    """Leg A fill ratio at or above which it counts as filled."""
    abort_fill_ratio: float = 0.5
    """Leg A fill ratio below which the trade aborts without sending leg B."""
    unwind_on_abort: bool = True
    """Close leg A's fill with an opposite order when the trade aborts."""
    leg_a: OrderPolicy = MARKET
    """How leg A's order is priced (``pricing.OrderPolicy``: market, or a limit IOC in a band
    from the best price; a request's ``price_x`` is leg A's limit, whatever this says)."""
    leg_b: OrderPolicy = MARKET
    """How leg B's orders are priced; with ``limit_ioc``, each further order for a remainder
    widens the band (the ladder), and ``after_cap`` says what a last remainder becomes."""
    unwind: OrderPolicy = MARKET
    """How unwind orders are priced (an unwind that cannot finish parks the trade)."""
    call_timeout: float = 30.0
    """Seconds one exchange call may take before its outcome counts as unknown (a hung call is
    treated exactly like a timeout: looked up, never blindly repeated)."""
    recover_concurrency: int = 32
    """Trades ``recover()`` drives at once."""
    lease_seconds: float = 30.0
    """How long a trade stays reserved to the process driving it without renewal (renewed
    every third of it). After that, another process's ``recover()`` may take it over."""

    lookup_attempts: int = 5
    """Lookups of an order whose outcome is unknown before the engine stops and leaves it for
    ``recover()``. Never a resend while the lookups are inconclusive."""
    lookup_backoff: float = 0.5
    """Seconds before the second lookup; doubles each time, capped at ``max_backoff``."""
    max_backoff: float = 10.0

    rate_limit_attempts: int = 5
    """Sends of one order answered by a rate limit before it counts as rejected."""
    max_sends_per_order: int = 3
    """Sends of one client order id confirmed absent each time before it counts as rejected."""
    leg_attempts: int = 3
    """Orders per leg (leg B, unwind) to complete a partly filled leg before giving up."""

    settle_timeout: float = 2.0
    """Seconds an open order may keep filling before its remainder is cancelled."""
    settle_poll_interval: float = 0.2

    hedge_basis: str = "net"
    """What leg B hedges of leg A: ``"net"``, the base amount that moved on the account (a
    buy's fill minus fees charged in the base currency, a sell's plus them), or ``"filled"``,
    the gross fill. An unwind never sells more than leg A's net, whichever basis."""

    hedge_tolerance: float = 1e-9
    """Relative remainder of a leg small enough to count as complete (float noise)."""

    position_mode: str = "oneway"
    """The account's position mode on contract markets (swap, future): ``"oneway"`` (one net
    position per symbol; an unwind is sent ``reduceOnly``) or ``"hedge"`` (long and short
    positions apart; every contract order carries ccxt's ``hedged``, an unwind ``reduceOnly``
    too, which ccxt maps to the venue's position side). Spot orders carry neither."""

    block_pair_while_parked: bool = True
    """A PARKED trade keeps its pair key (pairs and sides): an identical request is refused as
    a duplicate (``pair_parked``), nothing sent, until a human resolves the parked one.
    False: the next identical request trades while the parked one's leg may still be naked."""

    max_resume_age: float | None = None
    """Seconds after a trade's creation past which ``recover()`` no longer sends its leg A
    once a lookup confirmed it absent: the trade is FAILED instead of buying late. None: no
    limit. A leg A found placed is always hedged, however old."""

    freeze_startup_heap: bool = True
    """When the process's first engine starts, collect the garbage once and move every object
    then alive (modules, ccxt's exchange classes, the markets: about 240,000 in the bench)
    out of the cyclic garbage collector's scans (``gc.freeze``), once per process.

    Why: a full collection scans them all with the event loop stopped, 90-160 ms on a small
    machine, and one that lands inside a trade's unhedged window is that window (measured:
    200 trades at once on SQLite, p99 222 / 261 -> 155 / 122 ms in two runs). The cost: the
    start pays one full collection, and a reference cycle among those objects that becomes
    garbage later is never freed (reference counting still frees everything else)."""

    def __post_init__(self) -> None:
        self._check_types()
        if not 0 < self.abort_fill_ratio <= self.full_fill_ratio <= 1:
            raise ValueError("need 0 < abort_fill_ratio <= full_fill_ratio <= 1")
        for name in (
            "lookup_attempts",
            "rate_limit_attempts",
            "max_sends_per_order",
            "leg_attempts",
            "recover_concurrency",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("lookup_backoff", "max_backoff", "settle_timeout", "settle_poll_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.call_timeout <= 0:
            raise ValueError("call_timeout must be > 0")
        if self.lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        if self.hedge_basis not in HEDGE_BASES:
            raise ValueError(f"hedge_basis must be 'net' or 'filled', got {self.hedge_basis!r}")
        for name in _DURATIONS:
            if getattr(self, name) > MAX_SECONDS:
                raise ValueError(f"{name} must be at most {MAX_SECONDS:g} s (a day)")
        if not 0 <= self.hedge_tolerance < 1:
            raise ValueError("hedge_tolerance must be >= 0 and < 1")
        if self.position_mode not in POSITION_MODES:
            raise ValueError(
                f"position_mode must be 'oneway' or 'hedge', got {self.position_mode!r}"
            )
        if self.max_resume_age is not None and not 0 < self.max_resume_age <= 365 * MAX_SECONDS:
            raise ValueError("max_resume_age must be None or > 0 and at most a year (s)")

    def _check_types(self) -> None:
        """Every field, by its declared type, before any comparison: NaN passes every ``<``
        check (all comparisons with it are false), and a str or bool where a number belongs
        fails far from here, mid-trade. Generic, so a field added later is covered too."""
        for f in fields(self):
            value = getattr(self, f.name)
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if kind.endswith(" | None"):
                if value is None:
                    continue
                kind = kind.removesuffix(" | None")
            if kind == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{f.name} must be a number, got {value!r}")
                try:
                    finite = math.isfinite(value)
                except OverflowError:  # an int too big for a float
                    finite = False
                if not finite:
                    raise ValueError(f"{f.name} must be a finite number, got {value!r}")
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{f.name} must be an integer, got {value!r}")
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be True or False, got {value!r}")
            elif kind == "str" and not isinstance(value, str):
                raise ValueError(f"{f.name} must be a string, got {value!r}")
            elif kind == "OrderPolicy" and not isinstance(value, OrderPolicy):
                raise ValueError(f"{f.name} must be an OrderPolicy, got {value!r}")

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1-based) of a lookup or rate-limited send.

        The exponent is capped below float's range: with a thousand-odd attempts configured,
        ``2.0 ** attempt`` raises OverflowError instead of reaching ``max_backoff``."""
        doubling = 2.0 ** min(attempt - 1, 1023)
        return float(min(self.lookup_backoff * doubling, self.max_backoff))
