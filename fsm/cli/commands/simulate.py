"""``pairexec simulate``: many seeded chaos scenarios, engine crashes and recoveries, checked.

Each scenario (``fsm/sim``) trades a few random pair signals on an in-memory paper exchange
with seeded faults, kills the engine at a seeded exchange call or store write, recovers with
fresh engines, and compares the trade database with the exchange. Scenario ``i`` of a run uses
seed ``--seed + i``; any failing seed replays exactly with ``--seed S --runs 1 -v`` (and the
same ``--postgres``). The trade database is in-memory SQLite, or with ``--postgres URL`` a
database of each process's own on that server.

The simulator ships in the package (``pairexec.fsm.sim``), so this works from any install.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pairexec.fsm.cli import render
from pairexec.fsm.cli.errors import CliError
from pairexec.persistence.urls import redacted

if TYPE_CHECKING:
    from pairexec.fsm.sim.report import Summary

EXIT_OK, EXIT_VIOLATIONS = 0, 1
TRACED_FAILURES = 3
"""With -v, how many failing seeds get their full trace printed."""


async def run(args: argparse.Namespace) -> int:
    """Scenarios run their own deterministic event loops: off this one, in a thread."""
    return await asyncio.to_thread(
        _simulate, args.seed, args.runs, args.jobs, args.verbose, args.postgres
    )


def _server(url: str) -> str:
    """``url`` if it names a PostgreSQL server this process can make its database on; else
    one line and exit 2, before any scenario runs."""
    from pairexec.fsm.sim.fast_store import pg_database

    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        backend = ""
    if backend != "postgresql":
        raise CliError(
            f"--postgres takes a PostgreSQL URL (postgresql://user@host/db), not {url!r}"
        )
    if importlib.util.find_spec("asyncpg") is None:
        raise CliError("--postgres needs the PostgreSQL driver: pip install 'pairexec[postgres]'")
    try:
        pg_database(url)
    except Exception as exc:  # whatever the driver raises: one line, the server named
        raise CliError(
            f"--postgres {redacted(url)}: cannot create a database there "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return url


def _simulate(first: int, runs: int, jobs: int, verbose: bool, postgres: str | None) -> int:
    from pairexec.fsm.sim.parallel import default_jobs, run_seeds
    from pairexec.fsm.sim.report import Summary

    if postgres is not None:
        postgres = _server(postgres)
    logging.getLogger("pairexec").setLevel(logging.ERROR)  # expected warnings, by the thousand
    seeds = list(range(first, first + runs))
    summary = Summary()
    started = time.perf_counter()
    with render.simulate_progress(runs) as scenario_done:
        for result in run_seeds(seeds, jobs or default_jobs(), postgres):
            summary.add(result)
            scenario_done(len(summary.failing))
    database = f"PostgreSQL, {redacted(postgres)}" if postgres else "in-memory SQLite"
    render.simulation(summary, time.perf_counter() - started, jobs or default_jobs(), database)
    if verbose:
        _print_traces(summary, seeds, postgres)
    render.verdict(summary)
    return EXIT_VIOLATIONS if summary.failing else EXIT_OK


def _print_traces(summary: Summary, seeds: list[int], postgres: str | None) -> None:
    from pairexec.fsm.sim.runner import run_seed

    traced = sorted(r.seed for r in summary.failing)[:TRACED_FAILURES]
    if len(seeds) == 1 and not traced:
        traced = seeds  # one scenario asked for by name: show it even when it passes
    for seed in traced:
        render.trace(seed, run_seed(seed, trace=True, postgres=postgres).trace)
