"""Recovery: N in-flight trades left in every FSM state by "crashes" -> ``engine.recover()``.

The trades are built by driving the store API directly (``create_trade`` + ``apply`` with the
same ``Change``/``OrderFacts.intent``/``OrderUpdate`` steps the engine takes), one shape per
state an engine can die in, and where the state implies that the order reached the exchange,
the order is placed on the paper book under the same client order id (with the fill the DB
recorded).
Half of the "intent" orders are on the exchange (died after the send), half not (died before).
Besides one shape per state: an unwind whose outcome is unknown (looked up), leg A found by a
lookup and RECONCILED, a leg-B remainder order after a partial fill (sent or not), and trades
leased by another process that is alive elsewhere: ``recover()`` must leave those alone, and
the check confirms it did (untouched, still in flight) while every other trade ended.

Then one engine recovers them all on a SQLite file (WAL, synchronous=FULL), against the
in-memory paper exchange at zero latency: the wall time and peak memory measured are the
engine's and the store's. ``check_invariants`` (``pairexec.fsm.sim.invariants``) then checks
every trade is terminal and consistent with the exchange.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import BENCH_CONFIG, Result, distinct_pairs, stopwatch, synthetic_markets
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.model import Change, Lease, OrderFacts, OrderStatus, OrderUpdate, TradeRecord
from pairexec.fsm.paper import PaperBook, PaperExchange
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.sim.invariants import check_invariants
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore

S = TradeState


@dataclass(frozen=True)
class _Order:
    cid: str
    symbol: str
    side: str
    amount: float


@dataclass
class _Builder:
    """Leaves one trade in a given state, as a crashed engine would have."""

    store: TradeStore
    book: PaperBook
    latest: dict[str, TradeRecord] = field(default_factory=dict)
    """Each trade as last written (a write names the version it changes)."""

    async def new(self, request: PairTradeRequest, lease: Lease | None = None) -> TradeRecord:
        created = await self.store.create_trade(request, lease)
        assert isinstance(created, TradeRecord), created
        self.latest[created.id] = created
        return created

    async def _apply(self, t: TradeRecord, frm: TradeState, change: Change) -> None:
        current = self.latest[t.id]
        assert current.state is frm, (current.state, frm)
        self.latest[t.id] = await self.store.apply(current, change)

    async def order(
        self,
        t: TradeRecord,
        leg: Leg,
        frm: TradeState,
        to: TradeState,
        attempt: int = 1,
        share: float = 1.0,
    ) -> _Order:
        """Persist the intent of the trade's ``attempt``-th ``leg`` order, for ``share`` of
        the leg, moving ``frm`` -> ``to``."""
        r = t.request
        symbol, side = {
            Leg.A: (r.pair_x, r.side_x),
            Leg.B: (r.pair_y, r.side_y),
            Leg.UNWIND: (r.pair_x, "sell" if r.side_x == "buy" else "buy"),
        }[leg]
        amount = round(r.amount_x * (r.hedge_ratio if leg is Leg.B else 1.0) * share, 9)
        order = _Order(client_order_id(t.id, leg, attempt), symbol, side, amount)
        new = OrderFacts.intent(leg, attempt, order.cid, symbol, side, amount)
        await self._apply(t, frm, Change(f"{leg.value} intent", to, new_order=new))
        return order

    def place(self, order: _Order, fill: float = 1.0, leave_open: bool = False) -> str:
        """The order as the exchange accepted it (same client id); its exchange id."""
        placed = self.book.place(
            order.symbol,
            "market",
            order.side,
            order.amount,
            None,
            order.cid,
            fill=fill,
            leave_open=leave_open,
        )
        return str(placed.id)

    async def fact(self, t: TradeRecord, state: TradeState, upd: OrderUpdate) -> None:
        await self._apply(t, state, Change("order fact", order_update=upd))

    async def move(
        self, t: TradeRecord, frm: TradeState, to: TradeState, upd: OrderUpdate | None = None
    ) -> None:
        await self._apply(t, frm, Change("moved", to, order_update=upd))


async def _pending(b: _Builder, t: TradeRecord) -> None:
    return None


async def _a_intent(b: _Builder, t: TradeRecord, placed: bool) -> None:
    order = await b.order(t, Leg.A, S.PENDING, S.LEG_A_SENT)
    if placed:
        b.place(order)


async def _a_unknown(b: _Builder, t: TradeRecord) -> None:
    order = await b.order(t, Leg.A, S.PENDING, S.LEG_A_SENT)
    b.place(order)
    await b.move(
        t, S.LEG_A_SENT, S.UNKNOWN, OrderUpdate(order.cid, OrderStatus.UNKNOWN, add_sends=1)
    )


async def _a_open(b: _Builder, t: TradeRecord) -> None:
    order = await b.order(t, Leg.A, S.PENDING, S.LEG_A_SENT)
    oid = b.place(order, fill=0.6, leave_open=True)
    await b.fact(t, S.LEG_A_SENT, OrderUpdate(order.cid, OrderStatus.OPEN, 0.6, oid, add_sends=1))


async def _a_final(b: _Builder, t: TradeRecord, fill: float) -> None:
    order = await b.order(t, Leg.A, S.PENDING, S.LEG_A_SENT)
    oid = b.place(order, fill=fill)
    await b.fact(
        t, S.LEG_A_SENT, OrderUpdate(order.cid, OrderStatus.CLOSED, fill, oid, add_sends=1)
    )
    full = fill >= BENCH_CONFIG.full_fill_ratio
    await b.move(t, S.LEG_A_SENT, S.LEG_A_FILLED if full else S.LEG_A_PARTIAL)


async def _b_intent(b: _Builder, t: TradeRecord, placed: bool) -> _Order:
    await _a_final(b, t, 1.0)
    order = await b.order(t, Leg.B, S.LEG_A_FILLED, S.LEG_B_SENT)
    if placed:
        b.place(order)
    return order


async def _b_unknown(b: _Builder, t: TradeRecord, placed: bool) -> None:
    order = await _b_intent(b, t, placed)
    unknown = OrderUpdate(order.cid, OrderStatus.UNKNOWN, add_sends=1)
    await b.move(t, S.LEG_B_SENT, S.UNKNOWN, unknown)
    if not placed:  # the lookup answered "absent" just before the crash
        absent = OrderUpdate(order.cid, OrderStatus.ABSENT, filled=0.0)
        await b.move(t, S.UNKNOWN, S.RECONCILED, absent)


async def _unwinding(b: _Builder, t: TradeRecord) -> None:
    leg_b = await _b_intent(b, t, placed=False)
    rejected = OrderUpdate(leg_b.cid, OrderStatus.REJECTED, filled=0.0, add_sends=1)
    await b.fact(t, S.LEG_B_SENT, rejected)
    b.place(await b.order(t, Leg.UNWIND, S.LEG_B_SENT, S.UNWINDING))


async def _a_reconciled(b: _Builder, t: TradeRecord) -> None:
    order = await b.order(t, Leg.A, S.PENDING, S.LEG_A_SENT)
    oid = b.place(order)
    await b.move(
        t, S.LEG_A_SENT, S.UNKNOWN, OrderUpdate(order.cid, OrderStatus.UNKNOWN, add_sends=1)
    )
    found = OrderUpdate(order.cid, OrderStatus.CLOSED, order.amount, oid)
    await b.move(t, S.UNKNOWN, S.RECONCILED, found)


async def _b_remainder(b: _Builder, t: TradeRecord, placed: bool) -> None:
    first = await _b_intent(b, t, placed=False)
    oid = b.place(first, fill=0.6)
    filled = round(first.amount * 0.6, 9)
    part = OrderUpdate(first.cid, OrderStatus.CANCELED, filled, oid, add_sends=1)
    await b.fact(t, S.LEG_B_SENT, part)
    rest = await b.order(t, Leg.B, S.LEG_B_SENT, S.LEG_B_SENT, attempt=2, share=0.4)
    if placed:
        b.place(rest)


async def _unwind_unknown(b: _Builder, t: TradeRecord) -> None:
    await _unwinding(b, t)
    unwind = client_order_id(t.id, Leg.UNWIND, 1)
    await b.move(t, S.UNWINDING, S.UNKNOWN, OrderUpdate(unwind, OrderStatus.UNKNOWN, add_sends=1))


ELSEWHERE = Lease("elsewhere.example:4242:b0b0", seconds=3600.0)
"""A live process on another host: its trades are not ``recover()``'s to take."""
LEASED = "leased by a live process elsewhere (left alone)"


async def _leased(b: _Builder, t: TradeRecord) -> None:
    return None  # created with ELSEWHERE's lease (see ``build``); nothing on the book


SHAPES: dict[str, Callable[[_Builder, TradeRecord], Awaitable[object]]] = {
    "PENDING (never sent)": _pending,
    "LEG_A_SENT, died before the send": lambda b, t: _a_intent(b, t, placed=False),
    "LEG_A_SENT, died after the send": lambda b, t: _a_intent(b, t, placed=True),
    "LEG_A_SENT, leg A open 60%": _a_open,
    "UNKNOWN (leg A timed out, exists)": _a_unknown,
    "LEG_A_FILLED": lambda b, t: _a_final(b, t, 1.0),
    "LEG_A_PARTIAL (60%)": lambda b, t: _a_final(b, t, 0.6),
    "LEG_B_SENT, died before the send": lambda b, t: _b_intent(b, t, placed=False),
    "LEG_B_SENT, died after the send": lambda b, t: _b_intent(b, t, placed=True),
    "UNKNOWN (leg B timed out, exists)": lambda b, t: _b_unknown(b, t, placed=True),
    "RECONCILED (leg B confirmed absent)": lambda b, t: _b_unknown(b, t, placed=False),
    "UNWINDING (leg B rejected)": _unwinding,
    "UNKNOWN (an unwind timed out, exists)": _unwind_unknown,
    "RECONCILED (leg A timed out, found filled)": _a_reconciled,
    "LEG_B_SENT, a remainder after 60%, died before its send": lambda b, t: _b_remainder(
        b, t, placed=False
    ),
    "LEG_B_SENT, a remainder after 60%, died after its send": lambda b, t: _b_remainder(
        b, t, placed=True
    ),
    LEASED: _leased,
}


async def build(
    store: TradeStore, book: PaperBook, requests: list[PairTradeRequest]
) -> tuple[Counter[str], set[str]]:
    """Leave ``requests`` in flight, spread round-robin over ``SHAPES``; returns the spread
    and the ids of the trades leased elsewhere."""
    builder = _Builder(store, book)
    shapes = list(SHAPES.items())
    spread: Counter[str] = Counter()
    leased: set[str] = set()
    for i, request in enumerate(requests):
        name, shape = shapes[i % len(shapes)]
        trade = await builder.new(request, ELSEWHERE if name == LEASED else None)
        await shape(builder, trade)
        spread[name] += 1
        if name == LEASED:
            leased.add(trade.id)
    return spread, leased


# --- the benchmark ------------------------------------------------------------------------


def _build_file_db(
    path: Path, book_markets: int, n: int
) -> tuple[PaperExchange, Counter[str], set[str]]:
    """Build the trades in an in-memory store (the deterministic runtime skips aiosqlite's
    thread hops: building is not what is measured), then copy them into ``path``."""
    from pairexec.fsm.sim.fast_store import scenario_database
    from pairexec.fsm.sim.runtime import run_deterministic

    markets = synthetic_markets(book_markets)
    paper = PaperExchange(None, markets=markets)
    uri = f"file:bench-recovery-{os.getpid()}?mode=memory&cache=shared"
    with scenario_database(uri) as db:

        async def fill() -> tuple[Counter[str], set[str]]:
            async with TradeStore(f"sqlite+aiosqlite:///{uri}&uri=true") as store:
                return await build(store, paper.book, distinct_pairs(markets, n))

        spread, leased = run_deterministic(fill)
        target = sqlite3.connect(path)
        db.backup(target)
        target.close()
    return paper, spread, leased


class _PeakRss:
    """Samples the resident set size while a coroutine runs (no tracemalloc slow-down)."""

    def __init__(self) -> None:
        self.before = self.peak = _rss()

    async def watch(self, every: float = 0.05) -> None:
        while True:
            self.peak = max(self.peak, _rss())
            await asyncio.sleep(every)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _recover(url: str, paper: PaperExchange) -> tuple[float, Counter[str], _PeakRss]:
    rss = _PeakRss()
    watcher = asyncio.create_task(rss.watch())
    with stopwatch() as watch:
        async with ExecutionEngine(paper, store=url, config=BENCH_CONFIG) as engine:
            outcomes = await engine.recover()
    watcher.cancel()
    rss.peak = max(rss.peak, _rss())
    return watch.seconds, Counter(o.state.value for o in outcomes), rss


async def _check(url: str, paper: PaperExchange, theirs: set[str]) -> list[str]:
    """The invariants over every trade but ``theirs`` (leased elsewhere), and a problem for
    each of those that ``recover()`` did not leave as it was, with its lease."""
    from pairexec.fsm.sim.fast_store import Snapshot

    async with TradeStore(url) as store:
        snapshot = await Snapshot.load(store)
        holders = {h.trade_id: h.owner for h in await store.lease_holders()}
    problems = [
        f"{t.id[:8]}: leased elsewhere, but recover() took it ({t.state.value}, "
        f"held by {holders.get(t.id)})"
        for t in snapshot.trades
        if t.id in theirs
        and (t.state is not S.PENDING or t.version != 0 or holders.get(t.id) != ELSEWHERE.owner)
    ]
    ours = Snapshot(
        [t for t in snapshot.trades if t.id not in theirs],
        {k: v for k, v in snapshot.events_of.items() if k not in theirs},
    )
    return problems + await check_invariants(ours, paper)


def run(quick: bool, trades: int | None = None) -> Result:
    n = trades or (240 if quick else 1000)
    result = Result("recovery")
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        path = Path(tmp) / "trades.db"
        with stopwatch() as built:
            paper, spread, leased = _build_file_db(path, 400, n)
        url = f"sqlite:///{path}"
        seconds, states, rss = asyncio.run(_recover(url, paper))
        problems = asyncio.run(_check(url, paper, leased))
    growth = (rss.peak - rss.before) / 2**20
    result.add(
        f"recover() of {n:,} in-flight trades",
        f"{seconds:.2f} s",
        f"target <= 10 s for 10,000 ({seconds / n * 1e3:.2f} ms per trade)",
        trades=n,
        recover_seconds=seconds,
        ms_per_trade=seconds / n * 1e3,
        spread=dict(spread),
        build_seconds=built.seconds,
    )
    result.add(
        "peak memory during recover()",
        f"+{growth:.0f} MiB",
        f"RSS {rss.before / 2**20:.0f} -> {rss.peak / 2**20:.0f} MiB",
        rss_before_mib=rss.before / 2**20,
        rss_peak_mib=rss.peak / 2**20,
    )
    result.add(
        "after: states / invariants",
        ", ".join(f"{s} {k}" for s, k in sorted(states.items())),
        (
            f"all terminal and consistent; {len(leased)} leased elsewhere left alone"
            if not problems
            else f"{len(problems)} VIOLATIONS"
        ),
        final_states=dict(states),
        left_alone=len(leased),
        violations=problems[:50],
    )
    return result
