"""Scenarios spread over processes: the engine's work is CPU-bound Python, one core each.

Workers are spawned (not forked), so no lock or thread of the parent leaks into them, and each
builds its own databases. One pool serves many batches (the CI test's chunks), so the
start-up cost of the workers (importing SQLAlchemy, ccxt...) is paid once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from types import TracebackType

from pairexec.fsm.sim.runner import ScenarioResult, run_seed


def default_jobs() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def quiet_engine_logs() -> None:
    """Chaos makes the engine log expected warnings by the thousand; keep errors only."""
    logging.getLogger("pairexec").setLevel(logging.ERROR)


class SimulationPool:
    """``with SimulationPool(jobs) as pool: for result in pool.run(seeds): ...``

    ``jobs`` <= 1 runs the scenarios in this process (so a test's monkeypatch applies);
    ``postgres``, a PostgreSQL URL, runs them on that server (each process on a database of
    its own).
    """

    def __init__(self, jobs: int, postgres: str | None = None) -> None:
        self.jobs = max(1, jobs)
        self._executor: ProcessPoolExecutor | None = None
        self._run_seed = partial(run_seed, postgres=postgres)

    def __enter__(self) -> SimulationPool:
        if self.jobs > 1:
            self._executor = ProcessPoolExecutor(
                self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=quiet_engine_logs,
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)
            self._executor = None

    def run(self, seeds: Sequence[int]) -> Iterator[ScenarioResult]:
        """Each seed's result, in the order they complete."""
        if self._executor is None:
            for seed in seeds:
                yield self._run_seed(seed)
            return
        for future in as_completed([self._executor.submit(self._run_seed, s) for s in seeds]):
            yield future.result()


def run_seeds(
    seeds: Sequence[int], jobs: int = 1, postgres: str | None = None
) -> Iterator[ScenarioResult]:
    """One batch on a pool of its own."""
    with SimulationPool(jobs if len(seeds) > 1 else 1, postgres) as pool:
        yield from pool.run(seeds)
