"""``pairexec resolve``: a human settled a PARKED trade by hand; say so, and free its pair."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK


async def run(args: argparse.Namespace) -> int:
    async with context.opened(args.db) as store:
        resolved = await store.resolve(await context.trade_id(store, args.trade_id), args.note)
    render.resolved(resolved)
    return EXIT_OK
