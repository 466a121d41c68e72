"""``pairexec trade``: one pair trade, its path through the states, and its exit code."""

from __future__ import annotations

import argparse
from dataclasses import fields

from rich.text import Text

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_NOT_EXECUTED, EXIT_OK
from pairexec.fsm.cli.render import console
from pairexec.fsm.request import PairTradeRequest


async def run(args: argparse.Namespace) -> int:
    # The command's arguments are named after the request's fields.
    request = PairTradeRequest(**{f.name: getattr(args, f.name) for f in fields(PairTradeRequest)})
    request.validated()  # fail on malformed input before touching the database or exchange
    async with context.engine(args, context.exchange(args)) as (engine, store):
        outcome = await engine.execute_pair_trade(request)
        events = await store.events(outcome.trade_id) if outcome.trade_id else []
    if outcome.duplicate:
        reason = outcome.reason
        console.print(reason if reason.startswith("duplicate") else f"duplicate: {reason}")
        return EXIT_NOT_EXECUTED
    console.print(Text.assemble(f"trade {outcome.trade_id}: ", render.state_text(outcome.state)))
    console.print(f"  path: {render.path_text(events)}")
    console.print(
        f"  leg A {args.pair_x} filled {outcome.filled_x:g}, "
        f"leg B {args.pair_y} filled {outcome.filled_y:g}"
        + (f", unwound {outcome.unwound_x:g}" if outcome.unwound_x else "")
    )
    if outcome.reason:
        console.print(f"  {outcome.reason}")
    if outcome.ok:
        return EXIT_OK
    if context.needs_attention(outcome.state):
        return EXIT_ATTENTION
    return EXIT_NOT_EXECUTED
