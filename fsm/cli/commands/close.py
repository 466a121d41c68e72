"""``pairexec close``: close a DONE trade with its exit, and the exit's outcome as the exit code."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.commands.trade import exit_code


async def run(args: argparse.Namespace) -> int:
    context.require_existing(args.db)  # a mistyped path must not become an empty database
    async with context.engine(args, context.exchange(args)) as (engine, store):
        entry = await context.trade_id(store, args.trade_id)
        outcome = await engine.close_pair_trade(entry)  # InvalidRequest: not closable, exit 2
        shown = await store.load(outcome.trade_id or entry)  # a duplicate: the existing exit
        # A duplicate's id is the exit that refused it: its journal is not this close's.
        events = await store.events(shown.id) if not outcome.duplicate else []
    if args.json:
        render.print_json(render.trade_json(outcome, events))
    else:
        render.trade_outcome(shown.request, outcome, events)
    return exit_code(outcome)
