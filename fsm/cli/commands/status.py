"""``pairexec status``: the newest trades, and how many are in each state."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK


async def run(args: argparse.Namespace) -> int:
    async with context.opened(args.db) as store:
        trades = await store.list_trades(args.state, limit=args.limit)
        counts = await store.count_by_state()
    render.status(args.db, args.state, trades, counts)
    return EXIT_OK
