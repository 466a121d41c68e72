"""``pairexec simulate``: many seeded chaos scenarios, engine crashes and recoveries, checked.

Each scenario (``tests/sim``) trades a few random pair signals on an in-memory paper exchange
with seeded faults, kills the engine at a seeded exchange call or store write, recovers with
fresh engines, and compares the trade database with the exchange. Scenario ``i`` of a run uses
seed ``--seed + i``; any failing seed replays exactly with ``--seed S --runs 1 -v``.

The simulator lives beside the tests (it reuses their invariant checks), so this command needs
the source checkout the package is installed from (``pip install -e .``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.cli.options import CliParser

if TYPE_CHECKING:
    from tests.sim.report import Summary

EXIT_OK, EXIT_VIOLATIONS = 0, 1
TRACED_FAILURES = 3
"""With -v, how many failing seeds get their full trace printed."""

MAX_RUNS = 1_000_000
"""About eight hours on two cores; the seeds are listed up front, so 10**12 would not even
start (it would exhaust memory first)."""
MAX_JOBS = 1024

console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
"""Markup off: failure lines quote values from the scenarios verbatim."""


def add_parser(commands: argparse._SubParsersAction[CliParser]) -> None:
    """The ``simulate`` subcommand (wired into ``pairexec.fsm.cli.main``). ``--seed`` and ``-v``
    have no default here: they may also come before the command name, and
    ``pairexec.fsm.cli.options`` merges the two and fills in the defaults (seed 0, not verbose)."""
    sim = commands.add_parser(
        "simulate",
        help="run seeded chaos scenarios with engine crashes and check the invariants",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sim.add_argument(
        "--runs",
        type=_bounded(1, MAX_RUNS),
        default=200,
        help=f"scenarios (default 200, at most {MAX_RUNS:,})",
    )
    sim.add_argument(
        "--seed",
        type=int,
        default=argparse.SUPPRESS,
        help="seed of the first scenario (default 0)",
    )
    sim.add_argument(
        "--jobs",
        type=_bounded(0, MAX_JOBS),
        default=0,
        help="worker processes (default 0: one per CPU core)",
    )
    sim.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the full trace of failing seeds",
    )


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}, not {text}")
        return value

    return whole


async def cmd_simulate(args: argparse.Namespace) -> int:
    """Scenarios run their own deterministic event loops: off this one, in a thread."""
    _find_simulator()
    return await asyncio.to_thread(_simulate, args.seed, args.runs, args.jobs, args.verbose)


def _find_simulator() -> None:
    """Put the source checkout on ``sys.path`` (it holds ``tests/sim``), or say why not."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests" / "sim" / "runner.py").is_file():
        raise CliError(
            f"pairexec simulate needs the source checkout (tests/sim not found under {root}); "
            "install pairexec with 'pip install -e .' from a clone"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def _simulate(first: int, runs: int, jobs: int, verbose: bool) -> int:
    from tests.sim.parallel import default_jobs, run_seeds
    from tests.sim.report import Summary

    logging.getLogger("pairexec").setLevel(logging.ERROR)  # expected warnings, by the thousand
    seeds = list(range(first, first + runs))
    summary = Summary()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failing]} failing"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("scenarios", total=runs, failing=0)
        for result in run_seeds(seeds, jobs or default_jobs()):
            summary.add(result)
            progress.update(task, advance=1, failing=len(summary.failing))
    console.print(_table(summary, time.perf_counter() - started, jobs or default_jobs()))
    if verbose:
        _print_traces(summary, seeds)
    if summary.failing:
        console.print(Text(f"{len(summary.failing)} failing seed(s):", style="red"))
        for line in summary.failure_lines():
            console.print(line)
        return EXIT_VIOLATIONS
    console.print(Text("no invariant violated", style="green"))
    return EXIT_OK


def _table(summary: Summary, wall: float, jobs: int) -> Table:
    table = Table(title="simulation", title_justify="left")
    table.add_column("what")
    table.add_column("count", overflow="fold")
    for what, count in summary.rows():
        table.add_row(what, count)
    table.add_row("wall time", f"{wall:.1f} s on {jobs} process(es)")
    return table


def _print_traces(summary: Summary, seeds: list[int]) -> None:
    from tests.sim.runner import run_seed

    traced = sorted(r.seed for r in summary.failing)[:TRACED_FAILURES]
    if len(seeds) == 1 and not traced:
        traced = seeds  # one scenario asked for by name: show it even when it passes
    for seed in traced:
        console.rule(f"seed {seed}")
        for line in run_seed(seed, trace=True).trace:
            console.print(line)
