"""``pairexec show``: one trade's events and orders, found by its id or the id's beginning."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK


async def run(args: argparse.Namespace) -> int:
    async with context.opened(args.db) as store:
        trade = await store.load(await context.trade_id(store, args.trade_id))
        events = await store.events(trade.id)
    if args.json:
        render.print_json(render.show_json(trade, events))
    else:
        render.show_trade(trade, events, wide=args.wide)
    return EXIT_OK
