"""``pairexec demo``: the seed's seven chaos scenarios and ours, on the paper exchange.

Every check reads what really happened — the orders on the paper exchange (by client order id),
the exchange calls made, the trade's persisted state — never what the scenario intended.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from pairexec.fsm.cli import render
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.crashpoints import ENV_VAR as KILL_ENV
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.paper import ChaosConfig, PaperExchange
from pairexec.fsm.pricing import OrderPolicy
from pairexec.fsm.request import PairTradeRequest, TradeOutcome
from pairexec.fsm.settings import load_config
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore

DEMO_CONFIG = EngineConfig(
    lookup_backoff=0.01, max_backoff=0.05, settle_timeout=0.1, settle_poll_interval=0.02
)
SPAM_LATENCY = "*:latency=0.02"


def btc_eth(amount: float = 1.0, ratio: float = 1.0, signal: str | None = None) -> PairTradeRequest:
    return PairTradeRequest("BTC/USDT", "buy", amount, "ETH/USDT", "sell", ratio, signal)


@dataclass
class Run:
    """One scenario's execution: outcomes, exchange calls, and the trades as persisted."""

    outcomes: list[TradeOutcome]
    calls: CallRecorder
    trades: list[TradeRecord]
    paper: PaperExchange

    @property
    def executed(self) -> list[TradeOutcome]:
        return [o for o in self.outcomes if not o.duplicate]

    @property
    def creates(self) -> int:
        return sum(n for (method, _), n in self.calls.calls.items() if method == "create_order")

    def leg_calls(self, leg: Leg, method: str) -> int:
        cids = {o.client_order_id for t in self.trades for o in t.orders if o.leg is leg}
        return self.calls.count(method, cids)

    def exchange_orders(self, leg: Leg) -> int:
        """Orders that exist on the paper exchange for this leg, found by client order id."""
        cids = {o.client_order_id for t in self.trades for o in t.orders if o.leg is leg}
        return sum(len(self.paper.orders_with_client_id(cid)) for cid in cids)


@dataclass
class Demo:
    workdir: Path
    opened: list[PaperExchange] = field(default_factory=list)
    """Venues stay open until the end, so checks can read the exchange after the run."""

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'demo.db'}"

    @property
    def paper_path(self) -> Path:
        return self.workdir / "demo.paper.db"

    def paper(self, chaos: str = "", taker_fee: float = 0.0) -> PaperExchange:
        paper = PaperExchange(
            self.paper_path,
            chaos=ChaosConfig.parse(chaos) if chaos else None,
            taker_fee=taker_fee,
        )
        self.opened.append(paper)
        return paper

    async def close(self) -> None:
        for paper in self.opened:
            await paper.close()

    async def run(
        self,
        chaos: str,
        *requests: PairTradeRequest,
        concurrent: bool = False,
        config: EngineConfig = DEMO_CONFIG,
        taker_fee: float = 0.0,
    ) -> Run:
        paper = self.paper(chaos, taker_fee)
        calls = CallRecorder(paper)
        async with ExecutionEngine(calls, store=TradeStore(self.db_url), config=config) as engine:
            if concurrent:
                outcomes = list(
                    await asyncio.gather(*(engine.execute_pair_trade(r) for r in requests))
                )
            else:
                outcomes = [await engine.execute_pair_trade(r) for r in requests]
            trades = [await engine.store.load(o.trade_id) for o in outcomes if not o.duplicate]
        return Run(outcomes, calls, trades, paper)


Check = tuple[str, bool]


# --- the scenarios ---------------------------------------------------------------------------


async def seed_1(d: Demo) -> Check:
    r = await d.run("BTC/USDT@buy:fill=0.6", btc_eth())
    [o] = r.executed
    b = r.trades[0].orders[-1].amount
    return f"{o.state.value}, leg A 0.6 → leg B {b:g}", o.state is TradeState.DONE and b == 0.6


async def seed_2(d: Demo) -> Check:
    r = await d.run("BTC/USDT@buy:fill=0.1", btc_eth())
    [o] = r.executed
    sent_b = r.leg_calls(Leg.B, "create_order")
    return (
        f"{o.state.value}, leg B sent {sent_b}×, unwound {o.unwound_x:g}",
        o.state is TradeState.ABORTED and sent_b == 0 and o.unwound_x == 0.1,
    )


async def seed_3(d: Demo) -> Check:
    r = await d.run("ETH/USDT:timeout_after_accept=1", btc_eth())
    lookups = r.leg_calls(Leg.B, "fetch_order")
    return (
        f"create_order {r.creates}×, leg B looked up {lookups}×",
        r.creates == 2 and lookups >= 1 and r.executed[0].ok,
    )


async def seed_4(d: Demo) -> Check:
    r = await d.run("ETH/USDT:timeout_after_accept=1", btc_eth())
    on_exchange = r.exchange_orders(Leg.B)
    return (
        f"create_order {r.creates}×, leg B orders on exchange {on_exchange}",
        r.creates <= 2 and on_exchange == 1,
    )


async def seed_5(d: Demo) -> Check:
    r = await d.run(SPAM_LATENCY, *[btc_eth()] * 5, concurrent=True)
    dup = sum(o.duplicate for o in r.outcomes)
    return (
        f"{len(r.executed)} executed, {dup} rejected, create_order {r.creates}×",
        len(r.executed) == 1 and dup == 4 and r.creates == 2,
    )


async def seed_6(d: Demo) -> Check:
    r = await d.run("", *[btc_eth()] * 5)
    done = sum(o.ok for o in r.outcomes)
    return f"{done}/5 done, create_order {r.creates}×", done == 5 and r.creates == 10


async def seed_7(d: Demo) -> Check:
    r = await d.run(
        f"{SPAM_LATENCY};BTC/USDT@buy:fill=0.6,latency=0.02", *[btc_eth()] * 3, concurrent=True
    )
    [o] = r.executed
    return (
        f"1 executed hedged {o.filled_y:g}, create_order {r.creates}×",
        len(r.executed) == 1 and o.filled_y == 0.6 and r.creates == 2,
    )


async def lost_leg_b(d: Demo) -> Check:
    r = await d.run("ETH/USDT:timeout_before_accept=1", btc_eth())
    [trade] = r.trades
    leg_b = trade.orders[-1]
    sends = r.calls.count("create_order", {leg_b.client_order_id})
    return (
        f"leg B sent {sends}× under one client id, on exchange {r.exchange_orders(Leg.B)}",
        sends == 2 and r.exchange_orders(Leg.B) == 1 and r.executed[0].ok,
    )


async def ghost_leg_a_60(d: Demo) -> Check:
    r = await d.run("BTC/USDT@buy:fill=0.6,timeout_after_accept=1", btc_eth())
    [o] = r.executed
    sends = r.leg_calls(Leg.A, "create_order")
    return (
        f"leg A sent {sends}×, found 0.6, hedged {o.filled_y:g}",
        sends == 1 and o.filled_y == 0.6 and o.ok,
    )


async def slow_lookups(d: Demo) -> Check:
    r = await d.run("ETH/USDT:timeout_after_accept=1,lookup_timeouts=2", btc_eth())
    lookups, sends = r.leg_calls(Leg.B, "fetch_order"), r.leg_calls(Leg.B, "create_order")
    return (
        f"leg B looked up {lookups}×, sent {sends}×",
        lookups == 3 and sends == 1 and r.executed[0].ok,
    )


async def leg_a_rejected(d: Demo) -> Check:
    r = await d.run("BTC/USDT:reject_funds=1", btc_eth())
    [o] = r.executed
    return f"{o.state.value}, create_order {r.creates}×", (
        o.state is TradeState.FAILED and r.creates == 1
    )


async def leg_b_rejected(d: Demo) -> Check:
    r = await d.run("ETH/USDT:reject_invalid=1", btc_eth())
    [o] = r.executed
    return (
        f"{o.state.value}, leg A unwound {o.unwound_x:g}",
        o.state is TradeState.ABORTED and o.unwound_x == 1.0,
    )


async def replayed_signal(d: Demo) -> Check:
    first = await d.run("", btc_eth(signal="demo-signal-1"))
    again = await d.run("", btc_eth(signal="demo-signal-1"))  # a new engine: "after a restart"
    return (
        f"first {first.outcomes[0].state.value}, replay duplicate={again.outcomes[0].duplicate}",
        first.outcomes[0].ok and again.outcomes[0].duplicate and again.creates == 0,
    )


async def _bought_with_a_fee(d: Demo, chaos: str) -> TradeOutcome:
    """1 BTC bought at a 0.1% fee charged in BTC, as Binance does: the account holds 0.999."""
    [outcome] = (await d.run(chaos, btc_eth(), taker_fee=0.001)).executed
    return outcome


async def fee_in_the_coin(d: Demo) -> Check:
    o = await _bought_with_a_fee(d, "")
    text = f"{o.state.value}, leg A net {o.net_x:g} of {o.filled_x:g}, leg B {o.filled_y:g}"
    return text, o.state is TradeState.DONE and o.filled_y == o.net_x == 0.999


async def unwind_after_a_fee(d: Demo) -> Check:
    o = await _bought_with_a_fee(d, "ETH/USDT:reject_invalid=1")
    text = f"{o.state.value}, unwound {o.unwound_x:g} of {o.filled_x:g} (net {o.net_x:g})"
    return text, o.state is TradeState.ABORTED and o.unwound_x == o.net_x == 0.999


async def spot_perp_basis(d: Demo) -> Check:
    """Buy 0.05 BTC spot, short the same on the perpetual: 5 contracts of 0.01 BTC."""
    basis = PairTradeRequest("BTC/USDT", "buy", 0.05, "BTC/USDT:USDT", "sell", 1.0)
    r = await d.run("", basis)
    [o] = r.executed
    [leg_b] = [x for t in r.trades for x in t.orders if x.leg is Leg.B]
    [placed] = r.paper.orders_with_client_id(leg_b.client_order_id)
    return (
        f"{o.state.value}, leg B {o.filled_y:g} BTC = {placed['amount']:g} contracts",
        o.state is TradeState.DONE and o.filled_y == 0.05 and placed["amount"] == 5,
    )


THIN_ETH = "ETH/USDT:spread_bps=10,depth=2000,level_bps=5,levels=10"
"""ETH/USDT in a thin book: 5 bps either side of the price, a level every 5 bps of about
2,000 USDT: a 15 ETH hedge (~45,000 USDT) cannot fill inside a narrow band."""


async def thin_book_ladder(d: Demo) -> Check:
    """Leg B as limit IOCs in a thin book: the first, 10 bps from the bid, fills what the band
    holds; each remainder goes out 40 bps wider; every fill is inside its order's limit."""
    ladder = OrderPolicy("limit_ioc", max_slippage_bps=10, widen_bps=40)
    config = replace(DEMO_CONFIG, leg_b=ladder, leg_attempts=4)
    r = await d.run(THIN_ETH, btc_eth(0.5, ratio=30.0), config=config)
    [o] = r.executed
    rungs = [x for t in r.trades for x in t.orders if x.leg is Leg.B]
    inside = all(
        x.limit_price is not None and x.average is not None and x.average >= x.limit_price
        for x in rungs
        if x.filled > 0
    )
    fills = " + ".join(f"{x.filled:g}" for x in rungs)
    return (
        f"{o.state.value}, leg B {fills} = {o.filled_y:g} in {len(rungs)} IOCs, "
        f"{'all' if inside else 'not all'} inside their limits",
        o.state is TradeState.DONE and len(rungs) >= 2 and o.filled_y == 15.0 and inside,
    )


async def parked_pair_blocked(d: Demo) -> Check:
    """Leg B and every unwind refused: PARKED, and the next signal on the pair is refused
    until a human resolves the parked trade (``pairexec resolve``); then it trades."""
    parked = await d.run(
        "ETH/USDT:reject_funds=1;BTC/USDT@sell:reject_invalid=9", btc_eth(signal="demo-park-1")
    )
    again = await d.run("", btc_eth(signal="demo-park-2"))
    [first], [second] = parked.outcomes, again.outcomes
    reason = second.duplicate_reason.value if second.duplicate_reason else "none"
    async with TradeStore(d.db_url) as store:
        await store.resolve(first.trade_id, "demo: leg A closed by hand")
    after = await d.run("", btc_eth(signal="demo-park-3"))
    return (
        f"{first.state.value}; next signal refused ({reason}); resolved: "
        f"then {after.outcomes[0].state.value}",
        first.state is TradeState.PARKED
        and reason == "pair_parked"
        and again.creates == 0
        and after.outcomes[0].ok,
    )


async def killed_mid_trade(d: Demo) -> Check:
    """A real process, SIGKILLed after leg B's intent is stored, then recover() finishes it."""
    env = {**os.environ, KILL_ENV: "intent:B"}
    req = btc_eth()
    argv = ["trade", req.pair_x, req.side_x, f"{req.amount_x:g}", req.pair_y, req.side_y]
    argv += ["--db", d.db_url, "--paper-state", str(d.paper_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    paper = d.paper()
    calls = CallRecorder(paper)
    async with ExecutionEngine(calls, store=TradeStore(d.db_url), config=DEMO_CONFIG) as engine:
        outcomes = await engine.recover()
        trades = [await engine.store.load(o.trade_id) for o in outcomes]
    r = Run(outcomes, calls, trades, paper)
    per_leg = (r.exchange_orders(Leg.A), r.exchange_orders(Leg.B))
    after = outcomes[0].state.value if outcomes else "nothing"
    return (
        f"killed (exit {proc.returncode}), recovered {after}, orders per leg {per_leg}",
        proc.returncode == -9 and len(outcomes) == 1 and outcomes[0].ok and per_leg == (1, 1),
    )


VENUES_DB = "demo.venues.db"
"""The cross-venue scenario's own trades database: its trade must be the only one recover
finds, whatever the other scenarios left in ``demo.db``."""
VENUE_STATES = {"spot": "demo.spot.paper.db", "perp": "demo.perp.paper.db"}
"""Its two paper venues, each its own state file (its own book and balances)."""
OVERRIDES = ("PAIREXEC_DB", "PAIREXEC_EXCHANGE")
"""Variables that would override the file's database or venues: not passed to the trade."""


def venues_config(d: Demo) -> Path:
    """The config file a bot and the CLI share: the database and two independent paper venues."""
    path = d.workdir / "demo.venues.toml"
    tables = "".join(
        f'\n[venues.{name}]\nexchange = "paper"\nstate = "{state}"\n'
        for name, state in VENUE_STATES.items()
    )
    path.write_text(f'database = "{VENUES_DB}"\n{tables}')
    return path


async def killed_across_venues(d: Demo) -> Check:
    """Buy BTC/USDT on one paper venue and sell it on another, from the config file; the process
    is SIGKILLed after leg B's intent is stored (not sent). A bot reading the same file
    (``pairexec.load_config``) recovers it: each leg sent once, each on its own venue."""
    config = venues_config(d)
    argv = ["trade", "BTC/USDT@spot", "buy", "1", "BTC/USDT@perp", "sell", "--config", str(config)]
    proc = subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", *argv],
        env={**{k: v for k, v in os.environ.items() if k not in OVERRIDES}, KILL_ENV: "intent:B"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    settings = load_config(config)  # what a bot calls: pairexec.load_config
    assert settings.database_url is not None
    papers = settings.open_exchanges()
    d.opened.extend(papers.values())
    venues = {name: CallRecorder(paper) for name, paper in papers.items()}  # a count per venue
    async with ExecutionEngine(
        venues, store=TradeStore(settings.database_url), config=DEMO_CONFIG
    ) as engine:
        outcomes = await engine.recover()
        trades = [await engine.store.load(o.trade_id) for o in outcomes]
    cids = {
        leg: {o.client_order_id for t in trades for o in t.orders if o.leg is leg}
        for leg in (Leg.A, Leg.B)
    }
    books = {  # (leg, venue): the leg's orders on that venue's own book, by client order id
        (leg.value, name): sum(len(paper.orders_with_client_id(cid)) for cid in cids[leg])
        for leg in cids
        for name, paper in papers.items()
    }
    elsewhere = sum(  # any call for a leg on the venue it does not trade on
        n
        for name, leg in (("spot", Leg.B), ("perp", Leg.A))
        for (_, cid), n in venues[name].calls.items()
        if cid in cids[leg]
    )
    resent_b = venues["perp"].count("create_order", cids[Leg.B])
    after = outcomes[0].state.value if outcomes else "nothing"
    return (
        f"killed (exit {proc.returncode}), recovered {after}; leg A on spot "
        f"{books['A', 'spot']} perp {books['A', 'perp']}, leg B on perp "
        f"{books['B', 'perp']} spot {books['B', 'spot']}, sent {resent_b}×",
        proc.returncode == -9
        and len(outcomes) == 1
        and outcomes[0].state is TradeState.DONE
        and books == {("A", "spot"): 1, ("A", "perp"): 0, ("B", "spot"): 0, ("B", "perp"): 1}
        and resent_b == 1
        and elsewhere == 0,
    )


SCENARIOS: list[tuple[str, str, Callable[[Demo], Awaitable[Check]]]] = [
    ("seed 1", "partial fill 60%: hedge the actual fill", seed_1),
    ("seed 2", "severe partial 10%: abort, no leg B", seed_2),
    ("seed 3", "ghost leg B (timeout): looked up", seed_3),
    ("seed 4", "ghost leg B that filled: no duplicate", seed_4),
    ("seed 5", "5 concurrent identical signals", seed_5),
    ("seed 6", "5 sequential signals all execute", seed_6),
    ("seed 7", "partial fill + 3 concurrent signals", seed_7),
    ("ours", "leg B lost before the exchange: one resend", lost_leg_b),
    ("ours", "leg A timed out but filled 60%", ghost_leg_a_60),
    ("ours", "lookups time out twice", slow_lookups),
    ("ours", "leg A rejected: nothing else sent", leg_a_rejected),
    ("ours", "leg B rejected: leg A unwound", leg_b_rejected),
    ("ours", "signal replayed after a restart", replayed_signal),
    ("ours", "fee paid in the coin: leg B hedges the net", fee_in_the_coin),
    ("ours", "leg B rejected after a fee: unwind sells the net", unwind_after_a_fee),
    ("ours", "spot-perp basis trade in contracts", spot_perp_basis),
    ("ours", "thin book: leg B as limit IOCs, band widened", thin_book_ladder),
    ("ours", "a PARKED pair refuses signals until resolved", parked_pair_blocked),
    ("ours", "process SIGKILLed mid-trade, then recover", killed_mid_trade),
    ("ours", "killed mid-trade across two venues, then recover", killed_across_venues),
]


async def run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) if args.workdir else None
    with tempfile.TemporaryDirectory(prefix="pairexec-demo-") as tmp:
        demo = Demo(workdir or Path(tmp))
        demo.workdir.mkdir(parents=True, exist_ok=True)
        venues = [demo.workdir / VENUES_DB, *(demo.workdir / f for f in VENUE_STATES.values())]
        for stale in (demo.workdir / "demo.db", demo.paper_path, *venues):
            for path in (stale, Path(f"{stale}-wal"), Path(f"{stale}-shm")):
                path.unlink(missing_ok=True)
        render.demo_starts(len(SCENARIOS), demo.workdir)
        results: list[tuple[str, str, str, bool]] = []
        for number, (origin, title, scenario) in enumerate(SCENARIOS, 1):
            with render.working(f"{number}/{len(SCENARIOS)} {title}…"):
                try:
                    observed, ok = await scenario(demo)
                except Exception as exc:  # a broken scenario is a failed row, not a crash
                    observed, ok = f"error: {type(exc).__name__}: {exc}", False
            results.append((origin, title, observed, ok))
        await demo.close()
        kept = f"{demo.db_url} and sqlite:///{demo.workdir / VENUES_DB}"  # the two-venue trade's
        render.demo_results(results, kept if workdir else None)
        return 0 if all(ok for *_, ok in results) else 1
