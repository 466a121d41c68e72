"""The deterministic chaos simulation in CI, and proof that its checks catch a broken engine.

``PAIREXEC_SIM_RUNS`` (default 6000) scenarios from seed ``PAIREXEC_SIM_SEED`` (default 0) run
in chunks on one worker per core, and ``PAIREXEC_SIM_PG_RUNS`` (default 300) of the seeds that
follow run on the PostgreSQL server of the tests (``PAIREXEC_TEST_PG``); a chunk fails with each
failing seed and the command that replays it. Set PAIREXEC_SIM_SEED to explore other seeds
(e.g. nightly); a failing seed reproduces anywhere: ``pairexec simulate --seed S --runs 1 -v``
(with ``--postgres URL`` if it ran there).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import ccxt
import pytest

import pairexec.fsm.decide
import pairexec.fsm.pricing
import pairexec.fsm.venues.gateway
from pairexec import EngineConfig, ExecutionEngine, PairTradeRequest
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderFacts, OrderStatus, filled
from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange
from pairexec.fsm.sim.checks import Submitted, check_scenario
from pairexec.fsm.sim.fast_store import Snapshot, scenario_database
from pairexec.fsm.sim.parallel import SimulationPool, default_jobs, quiet_engine_logs
from pairexec.fsm.sim.report import Summary, known_bug, repro_command
from pairexec.fsm.sim.runner import run_scenario, run_seed
from pairexec.fsm.sim.runtime import Hang, run_deterministic
from pairexec.fsm.sim.scenario import STORE_FAULT_KINDS, Scenario, Signal, generate
from pairexec.fsm.venues.errors import ErrorMeaning, classify
from pairexec.fsm.venues.reports import ExchangeReport
from pairexec.persistence import TradeStore
from pairexec.persistence.urls import redacted
from tests.conftest import PG_ADMIN
from tests.support.paths import ROOT

RUNS = int(os.environ.get("PAIREXEC_SIM_RUNS", "6000"))
FIRST = int(os.environ.get("PAIREXEC_SIM_SEED", "0"))
CHUNK = 250
CHUNKS = [range(s, min(s + CHUNK, FIRST + RUNS)) for s in range(FIRST, FIRST + RUNS, CHUNK)]
PG_RUNS = 0 if PG_ADMIN == "off" else int(os.environ.get("PAIREXEC_SIM_PG_RUNS", "300"))
PG_CHUNK = 150
"""Two chunks by default, so both of CI's workers take one (each ~100 ms a scenario)."""
PG_FIRST = FIRST + RUNS
PG_CHUNKS = [
    range(s, min(s + PG_CHUNK, PG_FIRST + PG_RUNS))
    for s in range(PG_FIRST, PG_FIRST + PG_RUNS, PG_CHUNK)
]


@contextmanager
def _pool(postgres: str | None) -> Iterator[SimulationPool]:
    """A pool of one process per core; in this process under pytest-xdist, whose workers
    already fill the cores (a pool each ran twice as many processes as cores, for about 1.8x
    the CPU time, measured). The engine's expected chaos warnings are muted meanwhile, as the
    pool's processes mute them."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        with SimulationPool(default_jobs(), postgres) as shared:
            yield shared
        return
    engine_logs = logging.getLogger("pairexec")
    level = engine_logs.level
    gc.freeze()  # pytest's own objects: no cyclic GC pass need walk them between scenarios
    with SimulationPool(1, postgres) as in_process:
        quiet_engine_logs()
        try:
            yield in_process
        finally:
            engine_logs.setLevel(level)


@pytest.fixture(scope="module")
def pool() -> Iterator[SimulationPool]:
    with _pool(None) as shared:
        yield shared


@pytest.fixture(scope="module")
def pg_pool() -> Iterator[SimulationPool]:
    with _pool(PG_ADMIN) as shared:
        yield shared


def _all_keep_every_invariant(seeds: range, pool: SimulationPool) -> Summary:
    summary = Summary()
    for result in pool.run(list(seeds)):
        summary.add(result)
    known = {r.seed: bug for r in summary.failing if (bug := known_bug(r)) is not None}
    for r in summary.failing:  # reported (pytest -ra lists them), not failed: see KNOWN_BUGS
        if r.seed in known:
            warnings.warn(
                f"seed {r.seed}: known engine bug {known[r.seed].name}: "
                f"{repro_command(r.seed, r.postgres)}",
                stacklevel=1,
            )
    unexplained = Summary(failing=[r for r in summary.failing if r.seed not in known])
    assert not unexplained.failing, "\n".join(unexplained.failure_lines())
    assert summary.trades > 0 and summary.crashes > 0 and summary.faults > 0
    return summary


@pytest.mark.parametrize("seeds", CHUNKS, ids=lambda r: f"seeds-{r.start}-{r.stop - 1}")
def test_scenarios_keep_every_invariant(seeds: range, pool: SimulationPool) -> None:
    _all_keep_every_invariant(seeds, pool)


@pytest.mark.parametrize("seeds", PG_CHUNKS, ids=lambda r: f"seeds-{r.start}-{r.stop - 1}")
def test_scenarios_on_postgresql_keep_every_invariant(
    seeds: range, pg_pool: SimulationPool
) -> None:
    """On a real server: its transactions, its errors, its lost commit replies (the share of
    scenarios with a database fault strikes here too)."""
    summary = _all_keep_every_invariant(seeds, pg_pool)
    assert summary.store_faults > 0


@pytest.mark.skipif(PG_ADMIN == "off", reason="PAIREXEC_TEST_PG=off")
def test_a_postgresql_run_is_one_per_seed_and_its_repro_names_the_server() -> None:
    """Server calls go one at a time in the virtual clock's order, so a failing seed on
    PostgreSQL replays as it ran (the command printed for it says on which server)."""
    seeds = [s for s in range(PG_FIRST, PG_FIRST + 40) if generate(s).store_fault][:3]
    first = [run_seed(s, postgres=PG_ADMIN) for s in seeds]
    again = [run_seed(s, postgres=PG_ADMIN) for s in seeds]
    assert [r.fingerprint for r in first] == [r.fingerprint for r in again]
    assert all(r.ok and r.postgres == PG_ADMIN for r in first), [r.violations for r in first]
    assert all(r.store_faults for r in first)
    assert repro_command(7, PG_ADMIN).endswith(f"-v --postgres {redacted(PG_ADMIN)}")


def test_unwind_when_the_hedge_of_a_partial_fill_is_below_the_minimum() -> None:
    """The first bug the simulation found (fixed in 7e58677), in its smallest scenario: leg A
    fills 60%, the hedge of that (0.00006 ETH) is below ETH's minimum (0.0001), so leg A must
    be unwound from LEG_A_PARTIAL; the engine used to raise IllegalTransition, leg A naked."""
    scenario = Scenario(
        seed=0,
        markets={s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT")},
        signals=(Signal(PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 0.5), 0),),
        chaos="BTC/USDT@buy:fill=0.6",
        recovery="calm",
        crash=None,
        recovery_crash=None,
    )
    result = run_scenario(scenario)
    assert result.ok, result.violations
    assert result.final_states == {"ABORTED": 1}


def test_same_seed_same_run() -> None:
    """Seed -> calls, order, virtual timing, outcome: identical, so CI failures replay."""
    firsts = [run_seed(seed) for seed in range(12)]
    assert any(r.crashes for r in firsts) and any(r.faults for r in firsts)  # not trivial
    assert any(r.trades > 1 for r in firsts)
    for first in firsts:
        second = run_seed(first.seed)
        assert (second.fingerprint, second.final_states, second.virtual_seconds) == (
            first.fingerprint,
            first.final_states,
            first.virtual_seconds,
        )


def test_same_seed_same_run_in_another_process() -> None:
    """What CI prints must replay on a laptop: another interpreter, another hash seed."""
    seeds = [3, 8, 11]
    code = (
        "from pairexec.fsm.sim.runner import run_seed\n"
        f"print(' '.join(run_seed(s).fingerprint for s in {seeds}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert other.stdout.split() == [run_seed(s).fingerprint for s in seeds]


def hedge_of_the_requested_amount(trade: Any, _orders: Any, _basis: str = "net") -> float:
    """A classic bug, to plant: leg B sized on leg A's requested amount, not its fill."""
    return float(trade.hedge_ratio * trade.amount_x)


def test_failure_report_names_the_seed_and_the_repro_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A classic bug: hedging the *requested* leg A amount instead of its fill. The simulation
    must catch it and say how to replay the failing seed."""
    monkeypatch.setattr(pairexec.fsm.decide, "hedge_target", hedge_of_the_requested_amount)
    summary = _until_first_failure()
    report = "\n".join(summary.failure_lines())
    seed = summary.failing[0].seed
    assert f"seed {seed}" in report and repro_command(seed) in report
    assert "over-hedged" in report


def test_hedging_the_gross_fill_after_a_fee_in_the_coin_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The simulation draws taker fees (and the hedge basis): with leg B sized on leg A's
    gross fill where its net is the basis, the checker sees the over-hedge."""
    monkeypatch.setattr(
        pairexec.fsm.decide,
        "hedge_target",
        lambda trade, orders, basis="net": trade.hedge_ratio * filled(orders, Leg.A),
    )
    summary = _until_first_failure()
    assert "over-hedged" in "\n".join(summary.failure_lines())
    failing = generate(summary.failing[0].seed)
    assert failing.taker_fee > 0 and failing.config.hedge_basis == "net"


def test_fees_and_both_hedge_bases_are_drawn() -> None:
    drawn = [generate(seed) for seed in range(200)]
    assert {s.taker_fee for s in drawn} >= {0.0, 0.0004, 0.001, 0.002}
    assert {s.config.hedge_basis for s in drawn} == {"net", "filled"}


def test_spot_perp_basis_trades_are_drawn_both_ways() -> None:
    basis = [
        sig.request
        for seed in range(300)
        for sig in generate(seed).signals
        if ":" in sig.request.pair_x + sig.request.pair_y
    ]
    assert 30 <= len(basis) <= 90  # PERP_SHARE of 300 scenarios, one basis trade each
    assert any(":" in r.pair_y for r in basis) and any(":" in r.pair_x for r in basis)
    assert all(
        r.hedge_ratio == 1.0 and r.pair_x.split(":")[0] == r.pair_y.split(":")[0] for r in basis
    )


def test_cross_venue_scenarios_are_drawn_with_independent_faults() -> None:
    drawn = [generate(seed) for seed in range(300)]
    across = [s for s in drawn if s.venues]
    assert 45 <= len(across) <= 105  # CROSS_VENUE_SHARE of 300
    assert all([v.name for v in s.venues] == ["a", "b"] for s in across)
    assert all(s.venues[0].chaos == s.chaos for s in across)  # venue a: the seed's own draw
    assert sum(s.venues[0].chaos != s.venues[1].chaos for s in across) > len(across) / 2
    assert all(s.venues[0].seed != s.venues[1].seed for s in across)
    legs = [(sig.request.venue_x, sig.request.venue_y) for s in across for sig in s.signals]
    assert {("a", "b"), ("b", "a"), ("a", "a"), ("b", "b")} <= set(legs)
    arbitrage = [
        sig.request for s in across for sig in s.signals if sig.request.pair_x == sig.request.pair_y
    ]
    assert arbitrage and all(r.venue_x != r.venue_y for r in arbitrage)
    for s in across:
        for sig in s.signals:
            if sig.copy_of is not None:  # a copy goes where its original went
                original = s.signals[sig.copy_of].request
                assert (sig.request.venue_x, sig.request.venue_y) == (
                    original.venue_x,
                    original.venue_y,
                )
    assert not any(sig.request.venue_x for s in drawn if not s.venues for sig in s.signals)


def test_priced_legs_on_books_with_depth_are_drawn() -> None:
    drawn = [generate(seed) for seed in range(300)]
    legs = [(s.config.leg_a, s.config.leg_b, s.config.unwind) for s in drawn]
    priced = [
        s for s, policies in zip(drawn, legs, strict=True) if any(p.limited for p in policies)
    ]
    booked = [s for s in drawn if "spread_bps" in s.chaos or "thin_book" in s.chaos]
    assert 50 <= len(booked) <= 120  # PRICED_SHARE of 300: a book, and policies drawn
    assert set(map(id, priced)) <= set(map(id, booked)) and len(priced) > 0.9 * len(booked)
    policies = [s.config.leg_b for s in priced if s.config.leg_b.limited]
    assert {p.after_cap for p in policies} == {"unwind", "market", "park"}
    assert len({p.max_slippage_bps for p in policies}) > 2 and any(p.widen_bps for p in policies)
    assert any("thin_book" in s.chaos for s in booked)
    assert any("price_jump" in s.chaos for s in booked)


def test_a_limit_beyond_its_rung_of_the_ladder_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit priced from twice the band: every fill may be within that limit, yet the
    limit itself is outside what the policy allows, and the checker says so."""
    real = pairexec.fsm.pricing.limit_price
    monkeypatch.setattr(
        pairexec.fsm.decide,
        "limit_price",
        lambda side, reference, band, tick: real(side, reference, 2 * band + 1, tick),
    )
    violations = _until_first_failure().failing[0].violations
    assert any("its rung allows" in v for v in violations), violations


def _two_venue_engine(monkeypatch: pytest.MonkeyPatch, rewire: Callable[[Any, Any], None]) -> None:
    """Every engine of two venues built with ``rewire(gateway_a, gateway_b)`` applied."""
    real_init = ExecutionEngine.__init__

    def init(self: ExecutionEngine, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        if set(self.gateways) == {"a", "b"}:
            rewire(self.gateways["a"], self.gateways["b"])

    monkeypatch.setattr(ExecutionEngine, "__init__", init)


def test_orders_sent_to_the_other_venue_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each order must be on its own venue's book: an engine that sends (and looks up, and
    cancels) every order on the other venue is consistent with itself, and still caught."""

    def swap(a: Any, b: Any) -> None:
        for name in ("create", "fetch", "cancel"):
            there_a, there_b = getattr(b, name), getattr(a, name)
            setattr(a, name, there_a)
            setattr(b, name, there_b)

    _two_venue_engine(monkeypatch, swap)
    violations = _until_first_failure().failing[0].violations
    assert any(" is on " in v or "unknown to the DB" in v for v in violations), violations


def test_a_lookup_on_the_other_venue_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """An order of unknown outcome looked up on the other venue is not found there, so it is
    taken for absent and resent on its own venue, where it was: a blind resend."""

    def cross_lookups(a: Any, b: Any) -> None:
        a.fetch, b.fetch = b.fetch, a.fetch

    _two_venue_engine(monkeypatch, cross_lookups)
    violations = _until_first_failure().failing[0].violations
    assert any("blind resend" in v or "exists on the exchange" in v for v in violations), violations


def test_a_blind_resend_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another classic: a lookup that times out taken for "absent", so the order is resent
    although it may exist (the exchange refuses the reused client id: still a violation)."""
    from pairexec.fsm.venues.gateway import CallResult, ExchangeGateway, Failed

    real_fetch = ExchangeGateway.fetch

    async def fetch(self: ExchangeGateway, order: OrderFacts) -> CallResult:
        result = await real_fetch(self, order)
        if isinstance(result, Failed) and result.meaning is ErrorMeaning.UNKNOWN:
            return Failed(ErrorMeaning.NOT_FOUND, result.error)
        return result

    monkeypatch.setattr(ExchangeGateway, "fetch", fetch)
    violations = _until_first_failure().failing[0].violations
    assert any("blind resend" in v or "exists on the exchange" in v for v in violations)


def _btc_eth_scenario(chaos: str, config: EngineConfig | None = None) -> Scenario:
    """One BTC/ETH trade (leg A buy 0.01 BTC, hedge 20 ETH per BTC) under ``chaos``."""
    return Scenario(
        seed=0,
        markets={s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT")},
        signals=(Signal(PairTradeRequest("BTC/USDT", "buy", 0.01, "ETH/USDT", "sell", 20.0), 0),),
        chaos=chaos,
        recovery="calm",
        crash=None,
        recovery_crash=None,
        config=config or EngineConfig(call_timeout=2.0),
    )


def _bare_exchange_error_taken_for_a_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    """``classify`` as it was before 77512ac: a bare ccxt.ExchangeError was a refusal."""

    def old_classify(error: BaseException) -> ErrorMeaning:
        return ErrorMeaning.REJECTED if type(error) is ccxt.ExchangeError else classify(error)

    monkeypatch.setattr(pairexec.fsm.venues.gateway, "classify", old_classify)


def test_an_unrecognised_error_after_accept_taken_for_a_reject_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leg B is placed and the venue answers "System error" (Bybit 10016). Taken for a
    refusal, leg A is unwound while leg B stands on the exchange: the checks must say so."""
    _bare_exchange_error_taken_for_a_reject(monkeypatch)
    result = run_scenario(_btc_eth_scenario("ETH/USDT:error_after_accept=1"))
    placed = "is REJECTED but exists on the exchange (leg B rejected"
    assert any(placed in v for v in result.violations), result.violations
    assert any("over-unwound on the exchange" in v for v in result.violations)


def test_an_unrecognised_error_after_accept_is_looked_up() -> None:
    result = run_scenario(_btc_eth_scenario("ETH/USDT:error_after_accept=1"))
    assert result.ok, result.violations
    assert result.final_states == {"DONE": 1}


def _believe_every_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway as it was before replies were checked: any order dict is the order."""

    def believe(order: Any, facts: OrderFacts, *, new_send: bool = False) -> ExchangeReport:
        status = {"open": OrderStatus.OPEN, "canceled": OrderStatus.CANCELED}.get(
            order.get("status"), OrderStatus.CLOSED
        )
        filled = order.get("filled")
        return ExchangeReport(
            str(order["id"]), status, facts.amount if filled is None else filled, None
        )

    monkeypatch.setattr(pairexec.fsm.venues.gateway, "parse_order", believe)


def test_a_hedge_sized_from_an_insane_report_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leg A's create reply says 1.5 x its amount filled: believed, leg B hedges a fill that
    the exchange does not have, and the DB agrees with itself."""
    _believe_every_reply(monkeypatch)
    result = run_scenario(_btc_eth_scenario("BTC/USDT:insane_reports=1"))
    assert any("over-hedged on the exchange" in v for v in result.violations), result.violations


@pytest.mark.parametrize(
    ("chaos", "state"),
    [
        ("BTC/USDT:insane_reports=1", "DONE"),  # the create's lie: looked up, then hedged
        ("ETH/USDT:timeout_after_accept=1,insane_reports=2", "DONE"),  # two lies, third true
        ("ETH/USDT:timeout_after_accept=1,insane_reports=3", "PARKED"),  # every lookup lies
        ("BTC/USDT:insane_reports=4", "PARKED"),  # the create's answer, then every lookup
    ],
)
def test_insane_reports_are_not_believed(chaos: str, state: str) -> None:
    config = EngineConfig(call_timeout=2.0, lookup_attempts=3, settle_timeout=0.05)
    result = run_scenario(_btc_eth_scenario(chaos, config))
    assert result.ok, result.violations
    assert result.final_states == {state: 1}


def test_the_draws_include_unrecognised_errors_and_insane_reports() -> None:
    """At a modest rate: each in about one scenario of thirteen."""
    chaos = [generate(seed).chaos for seed in range(1000)]
    for key in ("error_after_accept", "insane_reports"):
        assert 40 <= sum(key in c for c in chaos) <= 120, key


def _until_first_failure(limit: int = 300) -> Summary:
    """Seeds 0, 1, ... in this process (where the monkeypatch lives) until one fails."""
    summary = Summary()
    with SimulationPool(1) as in_process:
        for seed in range(limit):
            summary.add(next(in_process.run([seed])))
            if summary.failing:
                return summary
    raise AssertionError(f"a broken engine went unnoticed for {limit} scenarios")


# --- pairexec simulate --------------------------------------------------------------------


def test_cli_exits_0_and_prints_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    from pairexec.fsm.cli.main import main

    assert main(["simulate", "--runs", "3", "--seed", "5", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "scenarios" in out and "final states" in out and "no invariant violated" in out


@pytest.mark.skipif(PG_ADMIN == "off", reason="PAIREXEC_TEST_PG=off")
def test_cli_runs_on_postgresql_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from pairexec.fsm.cli.main import main

    assert (
        main(["simulate", "--runs", "3", "--seed", "5", "--jobs", "1", "--postgres", PG_ADMIN]) == 0
    )
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if "trade database" in line]
    assert "PostgreSQL," in row and "in-memory SQLite" not in out  # the URL may wrap
    assert "no invariant violated" in out


def test_simulate_runs_without_the_optional_postgresql_driver() -> None:
    """asyncpg is an extra ('.[postgres]'): without it the SQLite simulation runs, and
    --postgres says what to install, in one line, before any scenario."""
    blocked = "import sys; sys.modules['asyncpg'] = None; from pairexec.fsm.cli.main import main; "

    def simulate(*extra: str) -> subprocess.CompletedProcess[str]:
        args = ["simulate", "--runs", "1", "--jobs", "1", *extra]
        return subprocess.run(
            [sys.executable, "-c", blocked + f"sys.exit(main({args!r}))"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )

    plain = simulate()
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "no invariant violated" in plain.stdout
    on_server = simulate("--postgres", "postgresql://u@127.0.0.1/x")
    assert on_server.returncode == 2
    [line] = on_server.stderr.strip().splitlines()
    assert "pip install 'pairexec[postgres]'" in line and "scenarios" not in on_server.stdout


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sqlite:///trades.db", "takes a PostgreSQL URL"),
        ("not a url", "takes a PostgreSQL URL"),
        ("postgresql://nobody@127.0.0.1:1/test", "cannot create a database there"),
    ],
)
def test_cli_refuses_a_postgres_it_cannot_use_before_any_scenario(
    url: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pairexec.fsm.cli.main import main

    assert main(["simulate", "--runs", "3", "--postgres", url]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert says in line and "scenarios" not in captured.out


def test_cli_exits_1_with_the_failing_seeds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pairexec.fsm.cli.main import main

    monkeypatch.setattr(pairexec.fsm.decide, "hedge_target", hedge_of_the_requested_amount)
    seed = _until_first_failure().failing[0].seed
    capsys.readouterr()
    assert main(["simulate", "--runs", "1", "--seed", str(seed), "--jobs", "1", "-v"]) == 1
    out = capsys.readouterr().out
    assert f"seed {seed}" in out and repro_command(seed) in out
    assert "exchange calls (virtual time" in out  # -v: the failing seed's full trace


# --- the checks themselves, on deliberately corrupted states --------------------------------

Corrupt = Callable[[sqlite3.Connection, PaperExchange], object]

CORRUPTIONS: dict[str, tuple[Corrupt, str]] = {
    "leg B fill lost in the DB": (
        lambda db, paper: db.execute("UPDATE orders SET filled = filled / 2 WHERE leg = 'B'"),
        "on the exchange",
    ),
    "trade left in flight": (
        lambda db, paper: db.execute("UPDATE trades SET state = 'LEG_B_SENT'"),
        "not terminal",
    ),
    "journal entry missing": (
        lambda db, paper: db.execute("DELETE FROM trade_events WHERE to_state = 'LEG_A_FILLED'"),
        "journal gap",
    ),
    "illegal transition journaled": (
        lambda db, paper: db.execute(
            "UPDATE trade_events SET from_state = 'PENDING' WHERE to_state = 'DONE'"
        ),
        "illegal move PENDING -> DONE",
    ),
    "order sent but never journaled": (
        lambda db, paper: db.execute("DELETE FROM orders WHERE leg = 'B'"),
        "unknown to the DB",
    ),
    "second order on the exchange": (
        lambda db, paper: paper.book.place("ETH/USDT", "market", "sell", 1.0, None, "ghost"),
        "unknown to the DB",
    ),
    "client id not the deterministic one": (
        lambda db, paper: db.execute("UPDATE orders SET attempt = 2 WHERE leg = 'A'"),
        "not the deterministic id",
    ),
    "placed order recorded as rejected": (
        lambda db, paper: db.execute("UPDATE orders SET status = 'REJECTED' WHERE leg = 'B'"),
        "is REJECTED but exists on the exchange (leg B ",  # with the journal's cause
    ),
    "order stored for another venue than its leg's": (
        lambda db, paper: db.execute("UPDATE orders SET venue = 'b' WHERE leg = 'B'"),
        "is stored for venue b, its leg's is None",
    ),
    "another order's report recorded": (
        lambda db, paper: db.execute(
            "UPDATE orders SET exchange_order_id = (SELECT exchange_order_id FROM orders"
            " WHERE leg = 'A') WHERE leg = 'B'"
        ),
        "another order's report believed",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_checks_reject_a_corrupted_state(name: str) -> None:
    corrupt, expected = CORRUPTIONS[name]
    problems = _check_after(corrupt)
    assert any(expected in p for p in problems), problems


def test_checks_accept_the_uncorrupted_state() -> None:
    assert _check_after(lambda db, paper: None) == []


def test_checks_catch_a_stored_duplicate() -> None:
    """Two requests, one refused as a duplicate, yet two trades stored."""
    refused = Submitted("sig", "k", "duplicate")
    problems = _check_after(lambda db, paper: None, extra_trade=True, also=[refused])
    assert any("a duplicate or rejected request was stored" in p for p in problems), problems


def test_a_hung_run_is_reported_not_waited_for() -> None:
    async def waits_forever() -> None:
        await asyncio.get_running_loop().create_future()

    async def polls_forever() -> None:
        while True:
            await asyncio.sleep(1)

    with pytest.raises(Hang, match="deadlock"):
        run_deterministic(waits_forever)
    with pytest.raises(Hang, match="virtual seconds"):
        run_deterministic(polls_forever, time_limit=60)


def _check_after(
    corrupt: Corrupt, extra_trade: bool = False, also: list[Submitted] | None = None
) -> list[str]:
    """Run one clean BTC/ETH trade (two with ``extra_trade``), corrupt, and check."""
    uri = "file:test-sim-checks?mode=memory&cache=shared"
    markets = {s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT")}
    config = EngineConfig(lookup_backoff=0, settle_timeout=0)

    async def scenario() -> list[str]:
        store = TradeStore(f"sqlite+aiosqlite:///{uri}&uri=true")
        paper = PaperExchange(None, markets=markets)
        async with store, ExecutionEngine(paper, store=store, config=config) as engine:
            request = PairTradeRequest("BTC/USDT", "buy", 0.01, "ETH/USDT", "sell", 20.0, "sig")
            outcome = await engine.execute_pair_trade(request)
            submitted = [Submitted("sig", request.inflight_key, "outcome", outcome)]
            if extra_trade:
                other = PairTradeRequest("SOL/USDT", "buy", 1.0, "ETH/USDT", "sell", 0.05)
                await engine.execute_pair_trade(other)
            corrupt(anchor, paper)
            anchor.commit()
            snapshot = await Snapshot.load(store)
            journal = anchor.execute("SELECT id, trade_id, to_state FROM trade_events ORDER BY id")
            return await check_scenario(
                snapshot, journal.fetchall(), paper, markets, config, submitted + (also or [])
            )

    with scenario_database(uri) as anchor:
        return run_deterministic(scenario)


def test_database_faults_are_drawn_and_strike_without_a_violation() -> None:
    drawn = [generate(seed) for seed in range(400)]
    faulted = [s for s in drawn if s.store_fault is not None]
    assert 30 <= len(faulted) <= 90  # STORE_FAULT_SHARE of 400
    assert {s.store_fault.how for s in faulted if s.store_fault} == set(STORE_FAULT_KINDS)
    results = [run_scenario(s) for s in faulted[:12]]
    assert all(r.ok for r in results), [r.violations for r in results if not r.ok]
    assert sum(r.store_faults for r in results) >= 6


def test_an_engine_that_carries_on_after_a_failed_write_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bug the database faults exist to find: a write that failed (or whose reply was
    lost) taken as committed, and the next order sent on it."""
    from pairexec.fsm.engine import ExecutionEngine
    from pairexec.fsm.model import after
    from pairexec.fsm.ports import StoreError

    original = ExecutionEngine._apply

    async def careless(self: ExecutionEngine, record: Any, fact: Any) -> Any:
        try:
            return await original(self, record, fact)
        except StoreError:
            return after(record, fact.change(record.state))  # "it probably went through"

    monkeypatch.setattr(ExecutionEngine, "_apply", careless)
    # about one in forty: the failed write must be an intent's, with a send to follow it
    failed = [
        s for s in map(generate, range(1200)) if s.store_fault and s.store_fault.how != "slow"
    ]
    failing = [r for r in map(run_scenario, failed) if not r.ok]
    assert failing, "no scenario caught an engine that ignores a failed write"
    assert any("persist-before-send broken" in v for r in failing for v in r.violations)


def test_a_send_after_a_slow_commit_past_the_lease_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit answered after the lease ran out: another process may have taken the trade,
    so nothing may be sent for it until the lease is written again (a renewal the database
    confirms). The engine's check is by the loop's clock, which the virtual clock moves; an
    engine without it sends on the lapsed lease."""
    from pairexec.fsm.engine import ExecutionEngine

    slow = [s for s in map(generate, range(400)) if s.store_fault and s.store_fault.how == "slow"]
    assert len(slow) >= 10
    results = [run_scenario(s) for s in slow]
    assert all(r.ok for r in results), [r.violations for r in results if not r.ok]
    assert sum(r.store_faults for r in results) >= len(slow) // 2

    monkeypatch.setattr(ExecutionEngine, "_lease_lapsing", lambda self, trade_id: False)
    failing = [r for r in map(run_scenario, slow) if not r.ok]
    assert failing, "no scenario caught a send on a lapsed lease"
    assert all("a lapsed lease" in r.violations[0] for r in failing), failing[0].violations
