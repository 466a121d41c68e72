"""``pairexec worker``: keep taking over trades whose owner died or whose lease expired."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from rich.text import Text

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK
from pairexec.fsm.cli.render import console
from pairexec.persistence.urls import redacted


async def run(args: argparse.Namespace) -> int:
    """Until SIGTERM/SIGINT: a supervisor stops it like any service."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with context.engine(args, context.exchange(args)) as (engine, _):
        console.print(f"worker {engine.owner}: watching {redacted(args.db)} (Ctrl-C to stop)")
        while not stop.is_set():
            for outcome in await engine.recover():
                console.print(
                    Text.assemble(
                        f"trade {outcome.trade_id[:12]}: ",
                        render.state_text(outcome.state),
                        f" — {outcome.reason}" if outcome.reason else "",
                    )
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.poll)
        console.print(f"worker {engine.owner}: stopping; unfinished trades are released")
    return EXIT_OK
