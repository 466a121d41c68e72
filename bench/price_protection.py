"""Price-protected leg B: realised slippage in a deep-ish book, and what the quote costs.

A market leg B takes whatever the book holds; a limit IOC leg B (``OrderPolicy("limit_ioc")``)
reads the best bid or ask first (one ``fetch_ticker`` round trip), fills what its band allows
and sends the remainder one rung wider. Both are measured here on the same trades, alternating
trade by trade between two engines (a SQLite file each, WAL, synchronous=FULL), so a drifting
load weighs on each alike:

- market: ``EngineConfig.leg_b`` the default ``MARKET``;
- ladder: ``OrderPolicy("limit_ioc", max_slippage_bps=BAND, widen_bps=BAND, cap_bps=CAP)``.

Each venue is an in-memory paper exchange with ``LATENCY`` per call and a book of seeded levels
(``BOOK``: a spread, ``level_bps`` apart, about ``depth`` USDT a level). Leg A buys one unit
(a tenth of a level); leg B sells ``RATIO`` units, several levels deep.

Reported: leg B's realised slippage (its volume-weighted average against the best bid when it
was decided), the worst order's slippage as a share of its own band, the ladder's orders per
trade and hedged share, and the unhedged window two ways: leg A's ack to leg B's first
``create_order`` call (the ladder pays the quote's round trip there) and leg A's ack to the
last leg B order's ack (the ladder pays a round trip per rung). The paper book regenerates
around its price for every order (taken liquidity replenishes at once), so a later rung meets
a fresh top of book: the ladder's slippage gain over market is the best case; the bound that
holds on any venue is the per-order band.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import BENCH_CONFIG, Result, distinct_pairs, median, percentile, synthetic_markets
from bench.leg_b_latency import Stamps
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.model import OrderFacts, TradeRecord
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.paper.book import BookDepth
from pairexec.fsm.pricing import OrderPolicy, slippage_bps
from pairexec.fsm.states import TradeState
from pairexec.persistence.store import TradeStore

LATENCY = 0.005
"""Per-call latency of the venue (seconds): a quote costs one such round trip."""
SPREAD_BPS, LEVEL_BPS, DEPTH = 4.0, 3.0, 100.0
BOOK = f"*:latency={LATENCY},spread_bps={SPREAD_BPS},level_bps={LEVEL_BPS},depth={DEPTH},levels=40"
RATIO = 50.0
"""Leg B's units per unit of leg A: 500 USDT at price 10, about five levels of the book."""
BAND, CAP = 5.0, 20.0
LADDER = OrderPolicy("limit_ioc", max_slippage_bps=BAND, widen_bps=BAND, cap_bps=CAP)
CONDITIONS: dict[str, EngineConfig] = {
    "market": BENCH_CONFIG,
    "ladder": dataclasses.replace(BENCH_CONFIG, leg_b=LADDER, leg_attempts=8),
}


@dataclasses.dataclass
class Measured:
    """One condition's trades and the stamps of their create_order calls."""

    stamps: Stamps
    trades: list[TradeRecord] = dataclasses.field(default_factory=list)


async def _measure(tmp: Path, n: int) -> dict[str, Measured]:
    markets = synthetic_markets(400)
    requests = [dataclasses.replace(r, hedge_ratio=RATIO) for r in distinct_pairs(markets, n)]
    measured = {
        name: Measured(Stamps(PaperExchange(None, chaos=BOOK, markets=markets)))
        for name in CONDITIONS
    }
    async with contextlib.AsyncExitStack() as stack:
        engines = {
            name: await stack.enter_async_context(
                ExecutionEngine(
                    measured[name].stamps, store=f"sqlite:///{tmp / name}.db", config=config
                )
            )
            for name, config in CONDITIONS.items()
        }
        ids: dict[str, list[str]] = {name: [] for name in CONDITIONS}
        for request in requests:
            for name, engine in engines.items():
                ids[name].append((await engine.execute_pair_trade(request)).trade_id)
    for name in CONDITIONS:
        async with TradeStore(f"sqlite:///{tmp / name}.db") as store:
            measured[name].trades = list((await store.load_many(ids[name])).values())
    return measured


def _leg_b(trade: TradeRecord) -> list[OrderFacts]:
    return [o for o in trade.orders if o.leg is Leg.B]


def _vwap_slippage(trade: TradeRecord, reference: float) -> float | None:
    """Leg B's volume-weighted slippage against ``reference`` (bps); None if nothing filled."""
    filled = [(o.filled, o.average) for o in _leg_b(trade) if o.filled > 0 and o.average]
    total = sum(f for f, _ in filled)
    if total <= 0:
        return None
    average = sum(f * (a or 0.0) for f, a in filled) / total
    return slippage_bps(trade.request.side_y, reference, average)


def _worst_share_of_band(trades: Sequence[TradeRecord]) -> float:
    """The largest slippage / band over every filled limit order of leg B (<= 1: inside)."""
    shares = []
    for trade in trades:
        for o in _leg_b(trade):
            if o.filled <= 0 or o.average is None or o.reference_price is None:
                continue
            band = LADDER.band_bps(o.attempt)
            shares.append(slippage_bps(o.side, o.reference_price, o.average) / band)
    return max(shares, default=0.0)


def _windows(m: Measured, last: bool) -> list[float]:
    """Leg A's ack to leg B's first create_order call, or (``last``) to its last one's ack."""
    out = []
    for trade in m.trades:
        [a] = [o for o in trade.orders if o.leg is Leg.A]
        legs = _leg_b(trade)
        if not legs:
            continue
        end = (
            m.stamps.returned[legs[-1].client_order_id]
            if last
            else m.stamps.called[legs[0].client_order_id]
        )
        out.append(end - m.stamps.returned[a.client_order_id])
    return out


def _spread(values: list[float], scale: float, unit: str) -> str:
    p50, p99 = percentile(values, 50) * scale, percentile(values, 99) * scale
    return f"p50 {p50:.1f} {unit}, p99 {p99:.1f} {unit}"


def run(quick: bool) -> Result:
    n = 30 if quick else 100
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        measured = asyncio.run(_measure(Path(tmp), n))
    best_bid = BookDepth(spread_bps=SPREAD_BPS).best(10.0, "sell")
    result = Result("price_protection", data={"trades": n, "latency_s": LATENCY, "book": BOOK})
    slip = {
        name: [s for t in m.trades if (s := _vwap_slippage(t, best_bid)) is not None]
        for name, m in measured.items()
    }
    result.add(
        "leg B's realised slippage vs the best bid: market / ladder",
        f"{_spread(slip['market'], 1, 'bps')}, max {max(slip['market'], default=0):.1f} / "
        f"{_spread(slip['ladder'], 1, 'bps')}, max {max(slip['ladder'], default=0):.1f}",
        f"ladder: {BAND:g} bps a rung up to {CAP:g}; the paper book replenishes at once",
        market_slippage_bps=slip["market"],
        ladder_slippage_bps=slip["ladder"],
    )
    ladder = measured["ladder"].trades
    worst = _worst_share_of_band(ladder)
    result.add(
        "worst leg B limit order's slippage / its band",
        f"{worst:.2f}",
        "≤ 1 ✓" if worst <= 1 + 1e-9 else "≤ 1 ✗",
        worst_share_of_band=worst,
    )
    orders = [len(_leg_b(t)) for t in ladder]
    done = sum(t.state is TradeState.DONE for t in ladder)
    result.add(
        "ladder: leg B orders per trade (median / max); trades DONE",
        f"{median([float(x) for x in orders]):g} / {max(orders, default=0)}; {done}/{len(ladder)}",
        "market: 1 order, DONE "
        f"{sum(t.state is TradeState.DONE for t in measured['market'].trades)}/{n}",
        ladder_orders=orders,
        ladder_done=done,
    )
    for last, what in ((False, "leg B's first create sent"), (True, "leg B's last order acked")):
        windows = {name: _windows(m, last) for name, m in measured.items()}
        ratio = median(windows["ladder"]) / median(windows["market"])
        result.add(
            f"leg A acked -> {what}: market / ladder ({LATENCY * 1e3:g} ms a call)",
            f"{_spread(windows['market'], 1e3, 'ms')} / {_spread(windows['ladder'], 1e3, 'ms')}",
            f"ladder/market p50 {ratio:.2f}×: "
            + ("one quote round trip" if not last else "a quote and a round trip per rung"),
            **{
                f"{'hedged' if last else 'sent'}_{k}_ms": [w * 1e3 for w in v]
                for k, v in windows.items()
            },
        )
    return result
