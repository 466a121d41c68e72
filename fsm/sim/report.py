"""Totals over many scenarios, and how to reproduce a failing one.

Shared by ``tests/sim/test_simulation.py`` and ``pairexec simulate`` so CI and a developer read
the same numbers and the same repro line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pairexec.fsm.sim.runner import ScenarioResult
from pairexec.persistence.urls import redacted


@dataclass(frozen=True)
class KnownBug:
    """An engine bug the simulation found, reported, and not yet fixed (not ours to fix)."""

    name: str
    signature: re.Pattern[str]
    """Matches one of the violations the bug causes."""
    summary: str


KNOWN_BUGS: tuple[KnownBug, ...] = ()
"""Bugs the simulation found that are reported but not fixed yet. CI lists their seeds as
warnings instead of failing, so one open bug does not hide every other finding. Add an entry
only together with a test that replays its smallest scenario, and remove it with the fix.

(The first bug found, an unwind refused from LEG_A_PARTIAL when the hedge of a partial fill
is below leg B's minimum, was fixed in 7e58677; ``test_simulation`` keeps its scenario.)"""


def known_bug(result: ScenarioResult) -> KnownBug | None:
    """The known bug behind a failing scenario, if one of its violations is that bug's."""
    for bug in KNOWN_BUGS:
        if any(bug.signature.search(v) for v in result.violations):
            return bug
    return None


def repro_command(seed: int, postgres: str | None = None) -> str:
    on = f" --postgres {redacted(postgres)}" if postgres else ""
    return f"pairexec simulate --seed {seed} --runs 1 -v{on}"


@dataclass
class Summary:
    scenarios: int = 0
    signals: int = 0
    trades: int = 0
    orders: int = 0
    exchange_calls: int = 0
    faults: int = 0
    partial_fills: int = 0
    crashes: int = 0
    store_faults: int = 0
    recover_rounds: int = 0
    duplicates: int = 0
    wall_seconds: float = 0.0
    virtual_seconds: float = 0.0
    final_states: Counter[str] = field(default_factory=Counter)
    failing: list[ScenarioResult] = field(default_factory=list)

    def add(self, r: ScenarioResult) -> None:
        self.scenarios += 1
        self.signals += r.signals
        self.trades += r.trades
        self.orders += r.orders
        self.exchange_calls += r.exchange_calls
        self.faults += r.faults
        self.partial_fills += r.partial_fills
        self.crashes += r.crashes
        self.store_faults += r.store_faults
        self.recover_rounds += r.recover_rounds
        self.duplicates += r.duplicates
        self.wall_seconds += r.wall_seconds
        self.virtual_seconds += r.virtual_seconds
        self.final_states.update(r.final_states)
        if not r.ok:
            self.failing.append(r)

    @property
    def violations(self) -> int:
        return sum(len(r.violations) for r in self.failing)

    def rows(self) -> list[tuple[str, str]]:
        """(what, how many) for a two-column table."""
        states = ", ".join(f"{s} {n}" for s, n in sorted(self.final_states.items())) or "-"
        mean = self.wall_seconds / self.scenarios * 1000 if self.scenarios else 0.0
        return [
            ("scenarios", str(self.scenarios)),
            ("signals", str(self.signals)),
            ("trades stored", str(self.trades)),
            ("orders", str(self.orders)),
            ("exchange calls", str(self.exchange_calls)),
            ("faults injected", f"{self.faults} (+ {self.partial_fills} partial fills)"),
            ("engine crashes", str(self.crashes)),
            ("database writes failed", str(self.store_faults)),
            ("recover() rounds", str(self.recover_rounds)),
            ("duplicates refused", str(self.duplicates)),
            ("final states", states),
            ("virtual time simulated", f"{self.virtual_seconds:.0f} s"),
            ("time per scenario, per process", f"{mean:.0f} ms"),
            ("failing scenarios", str(len(self.failing))),
            ("violations", str(self.violations)),
        ]

    def failure_lines(self, limit: int = 20) -> list[str]:
        """Each failing seed with its first violations and the command that replays it."""
        lines = []
        for r in sorted(self.failing, key=lambda r: r.seed)[:limit]:
            bug = known_bug(r)
            note = f" [known bug: {bug.name}]" if bug else ""
            lines.append(f"seed {r.seed}{note}: {r.violations[0]}")
            lines += [f"    {v}" for v in r.violations[1:4]]
            lines.append(f"    repro: {repro_command(r.seed, r.postgres)}")
        if len(self.failing) > limit:
            lines.append(f"... and {len(self.failing) - limit} more failing seeds")
        return lines
