"""Seeded scenarios: what is traded, when, how the exchange misbehaves, and where the engine dies.

``generate(seed)`` is a pure function of the seed (its own ``random.Random``), so a seed printed
by a failing CI run rebuilds the very same scenario anywhere. Everything the run needs is in
the returned ``Scenario``; the runner adds no randomness of its own.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from pairexec.fsm.config import EngineConfig
from pairexec.fsm.markets import MarketRules
from pairexec.fsm.paper import DEFAULT_MARKETS, SWAP_MARKETS, MarketSpec
from pairexec.fsm.pricing import AFTER_CAP, OrderPolicy
from pairexec.fsm.request import PairTradeRequest

CALL_TIMEOUT = 2.0
"""Seconds (virtual) one exchange call may take; a larger chaos latency makes it time out."""


@dataclass(frozen=True)
class Signal:
    """One call of ``execute_pair_trade``, ``delay`` virtual seconds after the start."""

    request: PairTradeRequest
    delay: float
    copy_of: int | None = None
    """Index of the signal this one duplicates (same signal id or same pair key), if any."""


@dataclass(frozen=True)
class Crash:
    """The engine process dies at its ``at``-th exchange call or store write of one phase.

    ``after``: the call reaches the exchange (or the write commits) first, then the process
    dies before the engine hears back; otherwise it dies just before.
    """

    target: str
    """"exchange" (create/fetch/cancel calls) or "store" (create_trade/apply writes)."""
    at: int
    after: bool

    def __str__(self) -> str:
        when = "after" if self.after else "before"
        return f"{self.target} call #{self.at} ({when} it takes effect)"


@dataclass(frozen=True)
class StoreFault:
    """One write of the trading engine that the database fails: refused (nothing written: a
    full disk, a lock timeout, a dropped connection), written with its reply lost (did it
    commit? the engine cannot know, and must not send on it), or committed slowly: the
    database answers it, and anything else, only after ``SLOW_COMMIT`` times the lease (its
    lease may have run out meanwhile, and another process be driving the trade)."""

    at: int
    """Which write (create_trade or apply) of the trading engine, from 1."""
    how: str
    """"refused", "reply lost" or "slow" (``STORE_FAULT_KINDS``)."""
    why: str

    @property
    def reply_lost(self) -> bool:
        return self.how == "reply lost"

    def __str__(self) -> str:
        how = {
            "refused": f"refused ({self.why})",
            "reply lost": f"committed, its reply lost ({self.why})",
            "slow": f"committed, answered after {SLOW_COMMIT:g}x the lease (the database stalled)",
        }[self.how]
        return f"store write #{self.at} {how}"


STORE_FAULT_KINDS = ("refused", "reply lost", "slow")
SLOW_COMMIT = 1.2
"""A slow commit's answer comes this many lease lengths after the write began."""

STORE_FAULTS = (
    "database or disk is full",
    "database is locked (lock timeout)",
    "connection dropped",
)
STORE_FAULT_SHARE = 0.15
"""The share of scenarios in which one write of the trading engine fails; drawn from an RNG
of its own, so every other draw of a seed stays what it was."""


@dataclass(frozen=True)
class Venue:
    """One exchange of a cross-venue scenario: a paper book of its own, with its own faults."""

    name: str
    chaos: str
    seed: int
    """Seeds this venue's faults: two venues with the same chaos still fail apart."""


@dataclass(frozen=True)
class Scenario:
    seed: int
    markets: dict[str, MarketSpec]
    signals: tuple[Signal, ...]
    chaos: str
    """Paper exchange faults while trading (``pairexec.fsm.paper.chaos`` syntax), seeded by
    ``seed``."""
    recovery: str
    """Faults while recovering: "same" (the exchange stays as flaky), "calm" (chaos off)."""
    crash: Crash | None
    """Where the trading engine dies (None: it does not)."""
    recovery_crash: Crash | None
    """Where the first recovering engine dies too (None: it does not)."""
    config: EngineConfig = field(default_factory=EngineConfig)
    taker_fee: float = 0.0
    """The paper exchange's fee rate (buys pay it in the base coin, sells in the quote)."""
    store_fault: StoreFault | None = None
    """A write of the trading engine the database fails (None: none does)."""
    venues: tuple[Venue, ...] = ()
    """A cross-venue scenario's exchanges by name (each signal names its legs' venues), the
    first with ``chaos`` and ``seed``; empty: one exchange, as the engine of a single
    exchange sees it."""

    def describe(self) -> list[str]:
        """The scenario for a human reading a failure, one fact per line."""
        lines = [f"seed {self.seed}: {len(self.markets)} markets, recovery chaos {self.recovery}"]
        for i, s in enumerate(self.signals):
            r = s.request
            dup = f" (copy of #{s.copy_of})" if s.copy_of is not None else ""
            lines.append(
                f"  signal #{i} at t={s.delay:g}s: {r.side_x} {r.amount_x:g} {r.market_x} / "
                f"{r.side_y} {r.market_y} x{r.hedge_ratio:g} signal_id={r.signal_id}{dup}"
            )
        for v in self.venues:
            lines.append(f"  venue {v.name} chaos (seed {v.seed}): {v.chaos or '(none)'}")
        if not self.venues:
            lines.append(f"  chaos: {self.chaos or '(none)'}")
        lines.append(f"  fees: {self.taker_fee:g} taker, hedge basis {self.config.hedge_basis}")
        lines.append(
            f"  crash: {self.crash or 'none'}; recovery crash: {self.recovery_crash or 'none'}"
            f"; database fault: {self.store_fault or 'none'}"
        )
        c = self.config
        lines.append(
            f"  config: lookups {c.lookup_attempts} backoff {c.lookup_backoff:g}s, "
            f"rate-limit sends {c.rate_limit_attempts}, sends/order {c.max_sends_per_order}, "
            f"leg attempts {c.leg_attempts}, settle {c.settle_timeout:g}s/"
            f"{c.settle_poll_interval:g}s, unwind {c.unwind_on_abort}, "
            f"fill ratios {c.abort_fill_ratio:g}/{c.full_fill_ratio:g}, "
            f"recover concurrency {c.recover_concurrency}"
        )
        for leg in ("leg_a", "leg_b", "unwind"):
            policy = getattr(c, leg)
            if policy.limited:
                lines.append(
                    f"  {leg}: limit IOC {policy.max_slippage_bps:g} bps, widen "
                    f"{policy.widen_bps:g}, cap {policy.cap_bps}, after cap {policy.after_cap}"
                )
        return lines


# --- generation ------------------------------------------------------------------------------

_COUNTERS = {
    # fault counter: weight. Rejections end most trades at leg A, so they are drawn less.
    "timeout_before_accept": 3,
    "timeout_after_accept": 3,
    "lookup_timeouts": 3,
    "cancel_timeouts": 2,
    "reject_funds": 1,
    "reject_invalid": 1,
    "rate_limit": 2,
}

_RARE_COUNTERS = {
    # fault counter: the share of scenarios (with chaos) that get it.
    "error_after_accept": 0.08,  # placed, then an error nobody recognises (Bybit 10016)
    "insane_reports": 0.08,  # a create or fetch reply that lies about the order
}
"""Faults added after the first 10,000 seeds were studied, drawn from an RNG of their own
(``_rare_faults``) so every other draw of a seed is what it was before: a seed reported
earlier still replays the same trades, crashes and other faults."""


def generate(seed: int) -> Scenario:
    rng = random.Random(seed)
    fees = random.Random(f"fees {seed}")  # drawn apart, as _RARE_COUNTERS are: see there
    perps = random.Random(f"perps {seed}")
    markets = _default_markets(rng) if rng.random() < 0.5 else _synthetic_markets(rng)
    signals = _signals(rng, seed, markets)
    used = sorted({s for sig in signals for s in (sig.request.pair_x, sig.request.pair_y)})
    chaos = _chaos(rng, used, random.Random(f"rare faults {seed}"))
    crash = _crash(rng, calls=3 * len(signals)) if rng.random() < 0.8 else None
    recovery_crash = _crash(rng, calls=4) if crash and rng.random() < 0.2 else None
    if perps.random() < PERP_SHARE:
        markets, signals = _with_basis_trade(perps, seed, markets, signals)
    across = random.Random(f"venues {seed}")
    venues: tuple[Venue, ...] = ()
    if across.random() < CROSS_VENUE_SHARE:
        traded = sorted({s for sig in signals for s in (sig.request.pair_x, sig.request.pair_y)})
        chaos_b = _chaos(across, traded, random.Random(f"rare faults b {seed}"))
        venues = (Venue("a", chaos, seed), Venue("b", chaos_b, across.randrange(1, 1 << 31)))
        signals = _across_venues(across, seed, markets, signals)
    recovery = rng.choice(("same", "calm"))
    config = replace(_config(rng), hedge_basis=fees.choice(("net", "net", "filled")))
    taker_fee = fees.choice((0.0, 0.0, 0.0004, 0.001, 0.002))
    priced = random.Random(f"prices {seed}")
    if priced.random() < PRICED_SHARE:
        config = _priced(priced, config)
        if venues:  # each venue its own book
            venues = tuple(replace(v, chaos=_with_book(priced, v.chaos)) for v in venues)
            chaos = venues[0].chaos
        else:
            chaos = _with_book(priced, chaos)
    faults = random.Random(f"store faults {seed}")
    store_fault = None
    if faults.random() < STORE_FAULT_SHARE:
        writes = 3 * len(signals)  # a trade writes about three times
        store_fault = StoreFault(
            faults.randint(1, writes), faults.choice(STORE_FAULT_KINDS), faults.choice(STORE_FAULTS)
        )
    return Scenario(
        seed=seed,
        markets=markets,
        signals=signals,
        chaos=chaos,
        recovery=recovery,
        crash=crash,
        recovery_crash=recovery_crash,
        config=config,
        taker_fee=taker_fee,
        store_fault=store_fault,
        venues=venues,
    )


PRICED_SHARE = 0.3
"""The share of scenarios whose legs are priced by ``OrderPolicy`` (limit IOC in a band, a
ladder, a cap) on paper books with depth, a spread or price jumps; drawn last, from an RNG of
its own, so every other draw of a seed stays what it was."""


def _priced(rng: random.Random, config: EngineConfig) -> EngineConfig:
    def policy() -> OrderPolicy:
        if rng.random() < 0.3:
            return OrderPolicy()
        band = rng.choice((0.0, 5.0, 20.0, 100.0))
        cap = rng.choice((None, band, band + 50.0))
        return OrderPolicy(
            "limit_ioc",
            max_slippage_bps=band,
            widen_bps=rng.choice((0.0, 10.0, 50.0)),
            cap_bps=cap,
            after_cap=rng.choice(AFTER_CAP),
        )

    return replace(config, leg_a=policy(), leg_b=policy(), unwind=policy())


def _with_book(rng: random.Random, chaos: str) -> str:
    """``chaos`` on a book with depth: the book's keys added to every entry (an entry of its
    own would take the place of a less specific one for its calls, changing its faults), and
    a ``*`` entry for the markets no entry names."""
    book = rng.choice(
        (
            "spread_bps=10",
            "spread_bps=4,depth=20000,level_bps=2",
            "spread_bps=20,depth=3000,level_bps=10,levels=5",
            "thin_book=1",
        )
    )
    if rng.random() < 0.3:
        book += f",price_jump={rng.choice((0.001, 0.005, 0.02))}"
    parts = [f"{part},{book}" for part in chaos.split(";") if part]
    if not any(part.startswith("*:") for part in parts):
        parts.append(f"*:{book}")
    return ";".join(parts)


PERP_SHARE = 0.2
"""The share of scenarios that also trade a spot-perp basis (a spot leg hedged on its linear
perpetual swap, ratio 1), added after every other draw of the seed so those stay what they
were; the swap's faults come from the ``*`` entries of the chaos."""


def _with_basis_trade(
    perps: random.Random, seed: int, markets: dict[str, MarketSpec], signals: tuple[Signal, ...]
) -> tuple[dict[str, MarketSpec], tuple[Signal, ...]]:
    swap = SWAP_MARKETS[perps.choice(sorted(SWAP_MARKETS))]
    spot = DEFAULT_MARKETS[swap.symbol.split(":")[0]]
    spot_first = perps.random() < 0.7  # else the perp is leg A and the spot its hedge
    x, y = (spot, swap) if spot_first else (swap, spot)
    side = perps.choice(("buy", "sell"))
    contracts = perps.randint(1, 20)
    amount = contracts * swap.contract_size  # base units, a whole number of contracts
    request = PairTradeRequest(
        pair_x=x.symbol,
        side_x=side,
        amount_x=amount,
        pair_y=y.symbol,
        side_y="sell" if side == "buy" else "buy",
        hedge_ratio=1.0,
        signal_id=f"sim{seed}-basis" if perps.random() < 0.6 else None,
    )
    signal = Signal(request, 0.0 if perps.random() < 0.5 else round(perps.uniform(0, 3), 3))
    return {**markets, spot.symbol: spot, swap.symbol: swap}, (*signals, signal)


CROSS_VENUE_SHARE = 0.25
"""The share of scenarios on two venues ("a" and "b": a paper exchange each, with its own book,
faults and fault seed), drawn last from an RNG of its own so every earlier draw of a seed
stays what it was. Venue a has the scenario's chaos, venue b a schedule drawn for it alone."""


def _across_venues(
    rng: random.Random, seed: int, markets: dict[str, MarketSpec], signals: tuple[Signal, ...]
) -> tuple[Signal, ...]:
    """``signals`` with a venue per leg (mostly leg A on a and leg B on b; sometimes the other
    way round or both on one), a copy on its original's; and sometimes an arbitrage between the
    venues' books, the same symbol bought on one and sold on the other."""
    placed: list[Signal] = []
    for signal in signals:
        if signal.copy_of is not None:
            original = placed[signal.copy_of].request
            x, y = original.venue_x, original.venue_y
        else:
            x, y = rng.choices((("a", "b"), ("b", "a"), ("a", "a"), ("b", "b")), (7, 2, 1, 1))[0]
        placed.append(replace(signal, request=replace(signal.request, venue_x=x, venue_y=y)))
    if rng.random() < 0.5:
        # A spot market: a swap is the basis trade's, and two trades on one venue's swap share
        # its one net position (an unwind's reduce-only order then finds less to close than
        # its trade opened: docs/configuration.md, "Contract markets").
        symbol = rng.choice(sorted(s for s, spec in markets.items() if not spec.is_contract))
        side = rng.choice(("buy", "sell"))
        request = PairTradeRequest(
            pair_x=symbol,
            side_x=side,
            amount_x=_amount(rng, markets[symbol]),
            pair_y=symbol,
            side_y="sell" if side == "buy" else "buy",
            hedge_ratio=1.0,
            signal_id=f"sim{seed}-arb" if rng.random() < 0.6 else None,
            venue_x="a",
            venue_y="b",
        )
        placed.append(Signal(request, _delay(rng)))
    return tuple(placed)


def _default_markets(rng: random.Random) -> dict[str, MarketSpec]:
    symbols = rng.sample(sorted(DEFAULT_MARKETS), rng.randint(2, len(DEFAULT_MARKETS)))
    return {s: DEFAULT_MARKETS[s] for s in sorted(symbols)}


def _synthetic_markets(rng: random.Random) -> dict[str, MarketSpec]:
    """Markets with odd prices and steps, so rounding and minimums bite in new places."""
    markets = {}
    for i in range(rng.randint(2, 6)):
        price = float(f"{10 ** rng.uniform(-2, 4.7):.4g}")
        step = float(f"1e{min(max(round(-math.log10(price) - rng.uniform(1, 4)), -8), 0)}")
        min_amount = step * rng.choice((1, 1, 2, 10))
        min_cost = rng.choice((0.0, 1.0, 5.0))
        markets[f"S{i}/USDT"] = MarketSpec(f"S{i}/USDT", price, step, min_amount, min_cost)
    return markets


def _signals(rng: random.Random, seed: int, markets: dict[str, MarketSpec]) -> tuple[Signal, ...]:
    symbols = sorted(markets)
    signals: list[Signal] = []
    for i in range(rng.randint(1, 3)):
        x, y = rng.sample(symbols, 2)
        spec_x, spec_y = markets[x], markets[y]
        request = PairTradeRequest(
            pair_x=x,
            side_x=rng.choice(("buy", "sell")),
            amount_x=_amount(rng, spec_x),
            pair_y=y,
            side_y=rng.choice(("buy", "sell")),
            hedge_ratio=_ratio(rng, spec_x, spec_y),
            signal_id=f"sim{seed}-{i}" if rng.random() < 0.6 else None,
        )
        signals.append(Signal(request, _delay(rng)))
    for _ in range(rng.choices((0, 1, 2), weights=(5, 4, 1))[0]):
        original = rng.randrange(len(signals))
        r = signals[original].request
        if r.signal_id is not None and rng.random() < 0.6:  # the same signal, replayed
            copy = r
        else:  # another signal on the same pair key while the first may be in flight
            copy = PairTradeRequest(
                r.pair_x, r.side_x, r.amount_x, r.pair_y, r.side_y, r.hedge_ratio, None
            )
        delay = signals[original].delay if rng.random() < 0.6 else _delay(rng)
        signals.append(Signal(copy, delay, copy_of=original))
    return tuple(signals)


def _amount(rng: random.Random, spec: MarketSpec) -> float:
    """Mostly a comfortable order value; sometimes a handful of steps above the minimum."""
    rules = MarketRules(spec.amount_step, spec.min_amount)
    if rng.random() < 0.15:
        amount = spec.min_amount + spec.amount_step * rng.randint(0, 5)
    else:
        amount = 10 ** rng.uniform(1, 3) / spec.price
    return rules.floor(max(amount, spec.min_amount))


def _ratio(rng: random.Random, x: MarketSpec, y: MarketSpec) -> float:
    """About value-neutral (leg B worth what leg A is), give or take, in four digits."""
    return float(f"{x.price / y.price * rng.uniform(0.3, 3):.4g}")


def _delay(rng: random.Random) -> float:
    return 0.0 if rng.random() < 0.6 else round(rng.uniform(0, 3), 3)


def _chaos(rng: random.Random, symbols: list[str], rare: random.Random) -> str:
    if rng.random() < 0.1:
        return ""
    parts = []
    targets = [*symbols, "*"]
    for _ in range(rng.randint(1, 4)):
        target = rng.choice(targets)
        if target != "*" and rng.random() < 0.4:
            target += rng.choice(("@buy", "@sell"))
        values = {}
        if rng.random() < 0.4:
            values["fill"] = rng.choice((0.0, 0.3, 0.5, 0.6, 0.9, 0.97))
            if rng.random() < 0.5:
                values["leave_open"] = 1
                values["fills_while_open"] = rng.choice((0.0, 0.1, 0.5, 1.0))
        if rng.random() < 0.3:
            values["latency"] = rng.choice((0.001, 0.02, 0.3, 5.0))  # 5 s > call timeout
        for counter in dict.fromkeys(rng.choices(list(_COUNTERS), list(_COUNTERS.values()), k=3)):
            values[counter] = _count_or_probability(rng)
        if values:
            parts.append(f"{target}:" + ",".join(f"{k}={v}" for k, v in values.items()))
    return ";".join(_rare_faults(rare, parts))


def _count_or_probability(rng: random.Random) -> float:
    if rng.random() < 0.4:
        return rng.randint(1, 2)  # the first N calls
    return round(rng.uniform(0.05, 0.4), 2)  # each call, seeded


def _rare_faults(rare: random.Random, parts: list[str]) -> list[str]:
    """``parts`` with the ``_RARE_COUNTERS`` added to some, each to an entry already there: a
    new entry would take the place of a less specific one for its calls, changing its other
    faults."""
    parts = list(parts)
    for counter, share in _RARE_COUNTERS.items():
        if parts and rare.random() < share:
            i = rare.randrange(len(parts))
            parts[i] += f",{counter}={_count_or_probability(rare)}"
    return parts


def _crash(rng: random.Random, calls: int) -> Crash:
    target = "exchange" if rng.random() < 0.6 else "store"
    span = calls if target == "exchange" else 2 * calls  # a trade writes about twice per call
    return Crash(target, rng.randint(1, max(span, 1)), after=rng.random() < 0.5)


def _config(rng: random.Random) -> EngineConfig:
    """Tunables varied too: a bug may hide behind one retry count. Backoffs and settle times
    are realistic, since the virtual clock makes waiting free."""
    abort, full = rng.choice(((0.5, 0.95), (0.5, 0.95), (0.3, 0.9), (0.9, 1.0)))
    return EngineConfig(
        full_fill_ratio=full,
        abort_fill_ratio=abort,
        unwind_on_abort=rng.random() < 0.9,
        call_timeout=CALL_TIMEOUT,
        recover_concurrency=rng.choice((1, 4, 32)),
        lookup_attempts=rng.choice((1, 2, 3, 5)),
        lookup_backoff=rng.choice((0.0, 0.05, 0.5)),
        max_backoff=2.0,
        rate_limit_attempts=rng.choice((1, 2, 5)),
        max_sends_per_order=rng.choice((1, 2, 3)),
        leg_attempts=rng.choice((1, 2, 3)),
        settle_timeout=rng.choice((0.0, 0.05, 2.0)),
        settle_poll_interval=rng.choice((0.01, 0.2)),
    )
