"""``pairexec simulate``: many seeded chaos scenarios, engine crashes and recoveries, checked.

Each scenario (``fsm/sim``) trades a few random pair signals on an in-memory paper exchange
with seeded faults, kills the engine at a seeded exchange call or store write, recovers with
fresh engines, and compares the trade database with the exchange. Scenario ``i`` of a run uses
seed ``--seed + i``; any failing seed replays exactly with ``--seed S --runs 1 -v``.

The simulator ships in the package (``pairexec.fsm.sim``), so this works from any install.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pairexec.fsm.cli.render import console

if TYPE_CHECKING:
    from pairexec.fsm.sim.report import Summary

EXIT_OK, EXIT_VIOLATIONS = 0, 1
TRACED_FAILURES = 3
"""With -v, how many failing seeds get their full trace printed."""


async def run(args: argparse.Namespace) -> int:
    """Scenarios run their own deterministic event loops: off this one, in a thread."""
    return await asyncio.to_thread(_simulate, args.seed, args.runs, args.jobs, args.verbose)


def _simulate(first: int, runs: int, jobs: int, verbose: bool) -> int:
    from pairexec.fsm.sim.parallel import default_jobs, run_seeds
    from pairexec.fsm.sim.report import Summary

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
    from pairexec.fsm.sim.runner import run_seed

    traced = sorted(r.seed for r in summary.failing)[:TRACED_FAILURES]
    if len(seeds) == 1 and not traced:
        traced = seeds  # one scenario asked for by name: show it even when it passes
    for seed in traced:
        console.rule(f"seed {seed}")
        for line in run_seed(seed, trace=True).trace:
            console.print(line)
