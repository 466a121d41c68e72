"""``pairexec worker``: keep taking over trades whose owner died or whose lease expired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK


async def run(args: argparse.Namespace) -> int:
    """Until SIGTERM/SIGINT: a supervisor stops it like any service."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with context.engine(args, context.exchange(args)) as (engine, _):
        render.worker_watching(engine.owner, args.db)
        while not stop.is_set():
            for outcome in await engine.recover():
                render.worker_finished(outcome)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.poll)
        render.worker_stopping(engine.owner)
    return EXIT_OK
