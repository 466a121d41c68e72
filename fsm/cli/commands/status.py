"""``pairexec status``: the newest trades, and how many are in each state."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK
from pairexec.fsm.cli.render import console
from pairexec.fsm.states import TradeState
from pairexec.persistence.urls import redacted


async def run(args: argparse.Namespace) -> int:
    async with context.opened(args.db) as store:
        trades = await store.list_trades(args.state, limit=args.limit)
        counts = await store.count_by_state()
    title = f"trades in {redacted(args.db)}" + (f" ({args.state.value})" if args.state else "")
    if not trades:
        console.print("no trades" + (f" in state {args.state.value}" if args.state else ""))
        return EXIT_OK
    console.print(render.trades_table(trades, title))
    matching = counts.get(args.state, 0) if args.state else sum(counts.values())
    if matching > len(trades):
        console.print(f"the newest {len(trades)} of {matching} (--limit N for more)")
    by_state = ", ".join(
        f"{state.value} {counts[state]}" for state in TradeState if state in counts
    )
    console.print(f"all {sum(counts.values())} trades: {by_state}")
    return EXIT_OK
