"""``pairexec worker``: keep taking over trades whose owner died or whose lease expired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK, CliError
from pairexec.fsm.metrics import MetricsUnavailable
from pairexec.fsm.states import TERMINAL_STATES, TradeState


async def run(args: argparse.Namespace) -> int:
    """Until SIGTERM/SIGINT: a supervisor stops it like any service."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with context.engine(args, context.exchange(args)) as (engine, store):
        server = None
        if args.metrics_port is not None:
            try:
                server = engine.metrics.serve(args.metrics_port, args.metrics_addr)
            except MetricsUnavailable as exc:
                raise CliError(str(exc)) from None
            except OSError as exc:
                raise CliError(
                    f"--metrics-port {args.metrics_port}: cannot listen on "
                    f"{args.metrics_addr}: {exc.strerror or exc}"
                ) from None
        try:
            render.worker_watching(engine.owner, args.db)
            while not stop.is_set():
                for outcome in await engine.recover():
                    render.worker_finished(outcome)
                counts = await store.count_by_state()  # the gauges: what the database holds
                engine.metrics.parked = counts.get(TradeState.PARKED, 0)
                engine.metrics.unresolved = sum(
                    n for s, n in counts.items() if s not in TERMINAL_STATES
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.poll)
            render.worker_stopping(engine.owner)
        finally:
            if server is not None:
                server.shutdown()
    return EXIT_OK
