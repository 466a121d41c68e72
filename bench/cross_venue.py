"""Two venues: a cross-venue trade's unhedged window, and a burst on one venue vs the other's legs.

The unhedged window is the time from leg A's ``create_order`` returning (its fill known) to
leg B's returning (the hedge acknowledged): leg A is filled and not yet hedged on the venue.
It is measured from outside the engine, as ``leg_b_latency`` does: a proxy of each venue's
exchange timestamps each ``create_order``'s return by client order id.

1. Leg A on venue x, leg B on venue y, trades one at a time, each venue an in-memory paper
   exchange with its own per-call latency: x at 5 ms, y at 5 ms or at 50 ms (two venues
   y_fast and y_slow of one engine, alternating). The window is leg B's round trip plus the
   engine's work in between (one commit): it follows y's latency, and its excess over y's
   latency is the engine's share.
2. "A burst on one venue must not delay the other's leg." Each venue throttles itself as a
   ccxt instance does (its rate limiter admits one call per ``THROTTLE`` seconds, in order);
   nothing in the engine serialises venues. Trades with both legs on x run one at a time,
   alternating: quiet, while a background flood keeps ``FLOOD_DEPTH`` calls queued on y's
   rate limiter (y's calls then wait ~``FLOOD_DEPTH x THROTTLE`` each), and while the same
   flood places paper orders on y. The x trades' window and wall time flooded vs quiet:
   expected ~1.0 (the paper-order flood adds the simulated venue's matching CPU, which runs
   in this process). A control runs the flood with x and y behind ONE rate limiter (one
   exchange instance for both venues, the design the engine avoids): x's legs then queue
   behind the flood, well above 1.0, which shows the measurement sees a venue holding up
   the other.

The conditions alternate trade by trade within one engine (a SQLite file, WAL,
synchronous=FULL), so a machine whose load drifts weighs on each alike; ratios and
percentiles come from this one run, never from a timed assertion.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import BENCH_CONFIG, Result, distinct_pairs, percentile, synthetic_markets
from bench.leg_b_latency import Stamps
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState
from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall

FAST = 0.005
"""Per-call latency of a near venue (seconds)."""
SLOW = 0.05
"""Per-call latency of a far venue."""
THROTTLE = 0.002
"""A venue's rate limit: one order call per 2 ms (500/s), ccxt's ``rateLimit`` in seconds."""
FLOOD_DEPTH = 16
"""Order calls the flood keeps queued on venue y's rate limiter at all times."""


class Throttle:
    """ccxt's per-instance rate limiter, reduced to its effect: calls start at least
    ``interval`` apart, in the order they asked (a queue, not a refusal)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class Throttled(ExchangeProxy):
    """An exchange whose order calls wait their turn at ``throttle`` (its own, or shared)."""

    def __init__(self, exchange: Any, throttle: Throttle) -> None:
        super().__init__(exchange)
        self.throttle = throttle
        self.calls = 0
        """Order calls answered."""

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        await self.throttle.wait()
        answer = await forward()
        self.calls += 1
        return answer


def _paper(latency: float) -> PaperExchange:
    return PaperExchange(None, chaos=f"*:latency={latency}", markets=synthetic_markets(400))


@dataclasses.dataclass
class Timings:
    windows: list[float] = dataclasses.field(default_factory=list)
    """Per trade: leg B's create_order returned minus leg A's returned (seconds)."""
    walls: list[float] = dataclasses.field(default_factory=list)
    """Per trade: execute_pair_trade from call to outcome (seconds)."""


async def _trades(
    tmp: Path,
    name: str,
    venues: dict[str, ExchangeProxy],
    runs: list[tuple[str, PairTradeRequest]],
    flood: Throttled | None = None,
) -> dict[str, Timings]:
    """``runs`` (condition, request) one at a time on one fresh database and engine, by
    condition. A request under ``"flood"`` runs while ``flood`` is flooded with calls, under
    ``"order_flood"`` with paper orders.

    The conditions alternate trade by trade, so a machine whose load drifts over seconds
    weighs on each alike."""
    stamps = {venue: Stamps(exchange) for venue, exchange in venues.items()}
    store = f"sqlite:///{tmp / name}.db"
    timings: dict[str, Timings] = {}
    async with ExecutionEngine(stamps, store=store, config=BENCH_CONFIG) as engine:
        for condition, request in runs:
            background = None
            if condition in ("flood", "order_flood") and flood is not None:
                background = asyncio.create_task(_flood(flood, condition == "order_flood"))
                await asyncio.sleep(0.001)  # its workers have each queued a call
            try:
                started = time.perf_counter()
                outcome = await engine.execute_pair_trade(request)
                wall = time.perf_counter() - started
            finally:
                if background is not None:
                    background.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await background
                    # the turns its cancelled calls had booked pass before the next trade
                    await asyncio.sleep(FLOOD_DEPTH * THROTTLE)
            if outcome.state is not TradeState.DONE:
                raise RuntimeError(f"trade {outcome.trade_id} ended {outcome.state}")
            a = client_order_id(outcome.trade_id, Leg.A, 1)
            b = client_order_id(outcome.trade_id, Leg.B, 1)
            returned_a = stamps[str(request.venue_x)].returned[a]
            timing = timings.setdefault(condition, Timings())
            timing.windows.append(stamps[str(request.venue_y)].returned[b] - returned_a)
            timing.walls.append(wall)
    return timings


async def _flood(venue: Throttled, orders: bool) -> None:
    """``FLOOD_DEPTH`` workers calling ``venue`` back to back until cancelled.

    Each call takes a turn at the venue's rate limiter and the venue's latency. With
    ``orders`` it is a market order on the paper book (buys and sells alternate, so the
    account never runs dry); without, the call stops there: the paper book's matching, which
    a real venue does on its own servers, costs this process ~0.5 ms of CPU an order, and at
    500 calls/s that would measure the simulated venue's CPU, not the venues' independence.
    """
    symbols = itertools.cycle(sorted(synthetic_markets(400)))

    async def worker() -> None:
        for i in itertools.count():
            if orders:
                side = "buy" if i % 2 == 0 else "sell"
                await venue.create_order(next(symbols), "market", side, 1.0, None, {})
            else:
                await venue.throttle.wait()
                await asyncio.sleep(FAST)
                venue.calls += 1

    await asyncio.gather(*(worker() for _ in range(FLOOD_DEPTH)))


def _throttled(shared: bool) -> dict[str, Throttled]:
    """Venues x and y at 5 ms a call, each behind its own rate limiter or one shared."""
    throttle_x = Throttle(THROTTLE)
    throttle_y = throttle_x if shared else Throttle(THROTTLE)
    return {"x": Throttled(_paper(FAST), throttle_x), "y": Throttled(_paper(FAST), throttle_y)}


async def _measure(tmp: Path, n: int) -> tuple[dict[str, dict[str, Timings]], int]:
    """Part 1's windows by y's latency; part 2's by flood, with own and one shared limiter;
    and the calls both floods made on y (its own limiter)."""
    pairs = distinct_pairs(synthetic_markets(400), 3 * n)
    cross = [
        (condition, dataclasses.replace(r, venue_x="x", venue_y=condition))
        for r, condition in zip(pairs[: 2 * n], itertools.cycle(("y_fast", "y_slow")))
    ]
    latencies = {"x": FAST, "y_fast": FAST, "y_slow": SLOW}
    plain = {venue: ExchangeProxy(_paper(latency)) for venue, latency in latencies.items()}

    def on_x(conditions: tuple[str, ...]) -> list[tuple[str, PairTradeRequest]]:
        return [
            (condition, dataclasses.replace(r, venue_x="x", venue_y="x"))
            for r, condition in zip(pairs, itertools.cycle(conditions))
        ]

    own, shared = _throttled(shared=False), _throttled(shared=True)
    timings = {
        "latency": await _trades(tmp, "latency", plain, cross),
        "own": await _trades(
            tmp, "own", dict(own), on_x(("quiet", "flood", "order_flood")), flood=own["y"]
        ),
        # about 3x slower a flooded trade: a third as many suffice to show it
        "shared": await _trades(
            tmp,
            "shared",
            dict(shared),
            on_x(("quiet", "flood"))[: 2 * max(3, n // 3)],
            flood=shared["y"],
        ),
    }
    return timings, own["y"].calls


def run(quick: bool) -> Result:
    n = 10 if quick else 100
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        t, flood_calls = asyncio.run(_measure(Path(tmp), n))
    result = Result("cross_venue", data={"trades": n, "flood_calls": flood_calls})

    def ms(values: list[float]) -> tuple[float, float]:
        return percentile(values, 50) * 1e3, percentile(values, 99) * 1e3

    fast, slow = ms(t["latency"]["y_fast"].windows), ms(t["latency"]["y_slow"].windows)
    result.add(
        "unhedged window (leg A ack -> leg B ack), x 5 ms / y 5 ms",
        f"p50 {fast[0]:.1f} ms, p99 {fast[1]:.1f} ms",
        f"leg A on x, leg B on y; {n} trades one at a time, alternating with the row below",
        fast_y_p50_ms=fast[0],
        fast_y_p99_ms=fast[1],
    )
    result.add(
        "the same, x 5 ms / y 50 ms",
        f"p50 {slow[0]:.1f} ms, p99 {slow[1]:.1f} ms = {slow[0] / fast[0]:.1f}x",
        f"follows y's latency: p50 less y's call, {slow[0] - SLOW * 1e3:.1f} ms "
        f"(at 5 ms: {fast[0] - FAST * 1e3:.1f} ms), is the engine's share (one commit)",
        slow_y_p50_ms=slow[0],
        slow_y_p99_ms=slow[1],
        slow_over_fast=slow[0] / fast[0],
    )
    for key, condition, label, note in (
        (
            "own",
            "flood",
            f"{FLOOD_DEPTH} calls always queued on y (flood) vs none (quiet)",
            f"expected ~1.0: a burst on y does not delay x's legs "
            f"({flood_calls} calls on y, both floods)",
        ),
        (
            "own_orders",
            "order_flood",
            "the same flood as paper orders on y",
            "the paper book's matching runs in this process: its CPU, not the venue, costs x",
        ),
        (
            "shared",
            "flood",
            "control: the flood, x and y behind one rate limiter",
            "x's legs queue behind y's burst: what a venue holding up the other looks like",
        ),
    ):
        timings = t["own" if key == "own_orders" else key]
        quiet, flood = timings["quiet"], timings[condition]
        q_w, f_w, q_t, f_t = ms(quiet.windows), ms(flood.windows), ms(quiet.walls), ms(flood.walls)
        result.add(
            f"trades on x, {label}",
            f"p50 window {f_w[0]:.1f} vs {q_w[0]:.1f} ms = {f_w[0] / q_w[0]:.2f}x, "
            f"trade {f_t[0]:.1f} vs {q_t[0]:.1f} ms = {f_t[0] / q_t[0]:.2f}x; "
            f"p99 window {f_w[1]:.1f} vs {q_w[1]:.1f} ms",
            note,
            **{
                f"{key}_quiet_window_p50_ms": q_w[0],
                f"{key}_quiet_window_p99_ms": q_w[1],
                f"{key}_flood_window_p50_ms": f_w[0],
                f"{key}_flood_window_p99_ms": f_w[1],
                f"{key}_quiet_trade_p50_ms": q_t[0],
                f"{key}_flood_trade_p50_ms": f_t[0],
                f"{key}_window_ratio": f_w[0] / q_w[0],
                f"{key}_trade_ratio": f_t[0] / q_t[0],
            },
        )
    return result
