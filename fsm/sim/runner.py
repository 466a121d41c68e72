"""One scenario, end to end: trade under chaos, die, recover until nothing is in flight, check.

Each scenario gets its own in-memory trade database (a shared-cache SQLite memory database, so
the send audit and the journal-order check can read it on a second connection), or with
``postgres=URL`` an emptied database of its process on that PostgreSQL server, and its own
in-memory paper exchange, and runs on the deterministic runtime: ``run_seed(seed)`` twice gives
the same calls, in the same order, with the same result (on PostgreSQL, up to the order in
which the server answers concurrent calls). Whatever goes wrong, the result names
the seed: a hang or an exception of the harness itself is reported as a violation too.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, replace

from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.ports import StoreError
from pairexec.fsm.request import InvalidRequest, market_key
from pairexec.fsm.sim.checks import Submitted, check_scenario
from pairexec.fsm.sim.crash import (
    CrashingExchange,
    CrashingStore,
    CrashSwitch,
    FaultyStore,
    LeaseWatch,
    SimulatedCrash,
)
from pairexec.fsm.sim.fast_store import (
    ScenarioDb,
    ScenarioStore,
    Snapshot,
    pg_database,
    postgres_scenario,
    sqlite_scenario,
)
from pairexec.fsm.sim.recorder import CallLog, RecordingExchange
from pairexec.fsm.sim.runtime import Hang, run_deterministic
from pairexec.fsm.sim.scenario import Scenario, Signal, generate
from pairexec.fsm.sim.venue import calm_facade

FLAKY_ROUNDS = 3
"""Recovery rounds against the scenario's recovery exchange before a calm one takes over."""
CALM_ROUNDS = 2
"""Further rounds against a fault-free exchange; a trade still in flight after them is a bug."""

_names = itertools.count()


@dataclass(frozen=True)
class ScenarioResult:
    seed: int
    signals: int
    trades: int
    orders: int
    exchange_calls: int
    faults: int
    """Chaos faults the exchange raised (timeouts, rejects, rate limits)."""
    partial_fills: int
    crashes: int
    recover_rounds: int
    duplicates: int
    final_states: dict[str, int]
    violations: tuple[str, ...]
    fingerprint: str
    virtual_seconds: float
    wall_seconds: float
    trace: tuple[str, ...] = ()
    """With ``trace=True``: the scenario, every exchange call and every trade's journal."""
    store_faults: int = 0
    """Writes the database failed (``Scenario.store_fault``: refused, or a reply lost)."""
    postgres: str | None = None
    """The PostgreSQL server it ran on (None: in-memory SQLite)."""

    @property
    def ok(self) -> bool:
        return not self.violations


def run_seed(seed: int, trace: bool = False, postgres: str | None = None) -> ScenarioResult:
    """Generate and run the scenario of ``seed`` (the unit a failing CI run reports)."""
    return run_scenario(generate(seed), trace, postgres)


def run_scenario(
    scenario: Scenario, trace: bool = False, postgres: str | None = None
) -> ScenarioResult:
    """``postgres``: a PostgreSQL URL whose role may create databases, to run on that server
    instead of in-memory SQLite."""
    started = time.perf_counter()
    try:
        if postgres is None:
            uri = f"file:sim-{os.getpid()}-{next(_names)}?mode=memory&cache=shared"
            with sqlite_scenario(uri) as db:
                result = run_deterministic(lambda: _run(scenario, db, trace))
        else:
            name = pg_database(postgres)
            result = run_deterministic(lambda: _run_on_server(scenario, postgres, name, trace))
    except Hang as hang:
        result = _failed(scenario, f"the run hangs: {hang}")
    except Exception as exc:  # e.g. engine.close() raising: still a seed to report
        result = _failed(scenario, f"the scenario raised {_describe(exc)}")
    return replace(result, wall_seconds=time.perf_counter() - started, postgres=postgres)


async def _run_on_server(
    scenario: Scenario, postgres: str, database: str, trace: bool
) -> ScenarioResult:
    async with postgres_scenario(postgres, database) as db:
        return await _run(scenario, db, trace)


async def _run(scenario: Scenario, db: ScenarioDb, trace: bool) -> ScenarioResult:
    store = db.store()
    await store.open()
    papers = _papers(scenario)
    log = CallLog()
    try:
        submitted, crashes, struck = await _trade(scenario, store, papers, db, log)
        rounds, more = await _recover(scenario, store, papers, db, log)
        violations = [f"execute_pair_trade raised {s.error}" for s in submitted if s.error]
        violations += log.violations
        snapshot = await Snapshot.load(store)
        violations += await check_scenario(
            snapshot,
            await db.journal_order(),
            _books(papers),
            scenario.markets,
            scenario.config,
            submitted,
        )
        trades = snapshot.trades
        lines = _trace(scenario, snapshot, log) if trace else []
    finally:
        await store.close()
        for paper in papers.values():
            paper.book.close()
    states = Counter(t.state.value for t in trades)
    return ScenarioResult(
        seed=scenario.seed,
        signals=len(scenario.signals),
        trades=len(trades),
        orders=sum(len(t.orders) for t in trades),
        exchange_calls=len(log.calls),
        faults=sum(log.faults.values()),
        partial_fills=log.partial_fills,
        crashes=crashes + more,
        recover_rounds=rounds,
        duplicates=sum(1 for s in submitted if s.kind == "duplicate"),
        final_states=dict(sorted(states.items())),
        violations=tuple(violations),
        fingerprint=log.fingerprint(repr(sorted(states.items()))),
        virtual_seconds=asyncio.get_running_loop().time(),
        wall_seconds=0.0,
        trace=tuple(lines),
        store_faults=int(struck),
    )


def _trace(scenario: Scenario, snapshot: Snapshot, log: CallLog) -> list[str]:
    lines = [*scenario.describe(), "exchange calls (virtual time, phase, call, result):"]
    for c in log.calls:
        market = market_key(c.symbol, c.venue) if c.symbol else ""
        what = f"{c.side or ''} {c.amount if c.amount is not None else ''} {market}".strip()
        lines.append(
            f"  {c.at:8.3f}s {c.phase:9} {c.method:12} {(c.client_order_id or '?')[:8]} "
            f"{what}: {c.result}"
        )
    for t in snapshot.trades:
        lines.append(f"trade {t.id[:8]} {t.state.value}: {t.reason}")
        for o in t.orders:
            lines.append(
                f"  order {o.client_order_id[:8]} {o.leg.value}#{o.attempt} {o.side} "
                f"{o.amount:g} {o.market}: {o.status.value}, filled {o.filled:g}, sends {o.sends}"
            )
        for e in snapshot.events_of[t.id]:
            before = e.from_state.value if e.from_state else "-"
            lines.append(f"  {before} -> {e.to_state.value}: {e.cause}")
    return lines


Papers = dict[str | None, PaperExchange]
"""A run's paper exchanges by venue name; the one exchange of a single-venue run is None's."""


def _papers(scenario: Scenario) -> Papers:
    """A paper exchange per venue, each with its own book, faults and fault seed."""

    def paper(chaos: str, seed: int) -> PaperExchange:
        return PaperExchange(
            None, chaos=chaos, seed=seed, markets=scenario.markets, taker_fee=scenario.taker_fee
        )

    if not scenario.venues:
        return {None: paper(scenario.chaos, scenario.seed)}
    return {v.name: paper(v.chaos, v.seed) for v in scenario.venues}


def _books(papers: Papers) -> PaperExchange | dict[str, PaperExchange]:
    """``papers`` as the checks take them: the one exchange, or each venue's by name."""
    if None in papers:
        return papers[None]
    return {str(name): paper for name, paper in papers.items()}


async def _trade(
    scenario: Scenario, store: ScenarioStore, papers: Papers, db: ScenarioDb, log: CallLog
) -> tuple[list[Submitted], int, bool]:
    """All signals at their times on one engine, which may die on the way, and whose
    database may fail a write."""
    switch = CrashSwitch(scenario.crash)
    faulty = FaultyStore(store, scenario.store_fault, scenario.config.lease_seconds)
    engine = _engine(scenario, faulty, papers, db, log, switch, "trade", faulty.leases)
    await engine.start()
    submitted = await asyncio.gather(*(_submit(engine, s, switch) for s in scenario.signals))
    await _bury(engine)
    return list(submitted), int(switch.dead), faulty.struck


async def _submit(engine: ExecutionEngine, signal: Signal, switch: CrashSwitch) -> Submitted:
    r = signal.request
    if signal.delay:
        await asyncio.sleep(signal.delay)
    if switch.dead:
        return Submitted(r.signal_id, r.inflight_key, "not sent")
    try:
        outcome = await engine.execute_pair_trade(r)
    except InvalidRequest:
        return Submitted(r.signal_id, r.inflight_key, "invalid")
    except SimulatedCrash:
        return Submitted(r.signal_id, r.inflight_key, "crashed")
    except StoreError:  # the database failed a write (TradeInterrupted once stored)
        return Submitted(r.signal_id, r.inflight_key, "store failed")
    except Exception as exc:  # a bug: the engine must answer with an outcome, not raise
        return Submitted(r.signal_id, r.inflight_key, "raised", error=_describe(exc))
    kind = "duplicate" if outcome.duplicate else "outcome"
    return Submitted(r.signal_id, r.inflight_key, kind, outcome)


async def _recover(
    scenario: Scenario, store: ScenarioStore, papers: Papers, db: ScenarioDb, log: CallLog
) -> tuple[int, int]:
    """Fresh engines run ``recover()`` until nothing is in flight: first against the scenario's
    recovery exchanges (the first engine may die too), then against calm ones."""
    calm = {name: calm_facade(paper) for name, paper in papers.items()}
    venue = papers if scenario.recovery == "same" else calm
    rounds = crashes = 0
    while await store.unfinished_trade_ids() and rounds < FLAKY_ROUNDS + CALM_ROUNDS:
        rounds += 1
        if rounds > FLAKY_ROUNDS:
            venue = calm
        switch = CrashSwitch(scenario.recovery_crash if rounds == 1 else None)
        engine = _engine(scenario, store, venue, db, log, switch, f"recover{rounds}")
        try:
            await engine.recover()
        except SimulatedCrash:
            pass
        except Exception as exc:  # a bug: recover() must finish what it can, not raise
            log.violations.append(f"recover() raised {_describe(exc)}")
        await _bury(engine)
        crashes += switch.dead
    return rounds, crashes


def _engine(
    scenario: Scenario,
    store: ScenarioStore | FaultyStore,
    papers: Papers,
    db: ScenarioDb,
    log: CallLog,
    switch: CrashSwitch,
    phase: str,
    leases: LeaseWatch | None = None,
) -> ExecutionEngine:
    """An engine on ``papers``, every venue's calls recorded and under the one crash switch
    (one process dies, whichever venue it was calling); ``leases``: each send checked against
    them."""
    exchanges = {
        name: CrashingExchange(RecordingExchange(paper, log, db, phase, name, leases), switch)
        for name, paper in papers.items()
    }
    store_ = CrashingStore(store, switch)
    if None in exchanges:
        return ExecutionEngine(exchanges[None], store=store_, config=scenario.config)
    named = {str(name): exchange for name, exchange in exchanges.items()}
    return ExecutionEngine(named, store=store_, config=scenario.config)


async def _bury(engine: ExecutionEngine) -> None:
    """Close the engine, then wait until every task it left behind has ended.

    A dead engine's close stands in for the process being gone: its trades' leases are let go
    (in production ``recover()`` sees the dead pid; in-process the pid lives on). Tasks still
    queued inside ``recover()`` end at their first exchange call or write: the switch is off.
    """
    await engine.close()
    current = asyncio.current_task()
    others = {t for t in asyncio.all_tasks() if t is not current}
    if others:
        await asyncio.wait(others)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _failed(scenario: Scenario, why: str) -> ScenarioResult:
    return ScenarioResult(
        seed=scenario.seed,
        signals=len(scenario.signals),
        trades=0,
        orders=0,
        exchange_calls=0,
        faults=0,
        partial_fills=0,
        crashes=0,
        recover_rounds=0,
        duplicates=0,
        final_states={},
        violations=(why,),
        fingerprint="",
        virtual_seconds=0.0,
        wall_seconds=0.0,
    )
