"""``pairexec show``: one trade's events and orders, found by its id or the id's beginning."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK, CliError


async def run(args: argparse.Namespace) -> int:
    if not args.trade_id.strip():
        raise CliError("give a trade id (or its beginning): an empty one matches every trade")
    async with context.opened(args.db) as store:
        ids = await store.trade_ids_starting_with(args.trade_id)
        if not ids:
            raise CliError(f"no trade with id {args.trade_id!r}")
        if len(ids) > 1:
            raise CliError(f"{args.trade_id!r} is ambiguous: {', '.join(ids)}…")
        trade = await store.load(ids[0])
        events = await store.events(trade.id)
    render.show_trade(trade, events)
    return EXIT_OK
