"""``pairexec trade``: one pair trade, and its outcome as the exit code."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_NOT_EXECUTED, EXIT_OK
from pairexec.fsm.request import PairTradeRequest, split_market


async def run(args: argparse.Namespace) -> int:
    # The command's arguments are named after the request's fields; a leg's market may name
    # its venue (BTC/USDT@binance).
    given: dict[str, Any] = {f.name: getattr(args, f.name, None) for f in fields(PairTradeRequest)}
    given["pair_x"], given["venue_x"] = split_market(args.pair_x)
    given["pair_y"], given["venue_y"] = split_market(args.pair_y)
    request = PairTradeRequest(**given)
    request.validated()  # fail on malformed input before touching the database or exchange
    async with context.engine(args, context.exchange(args)) as (engine, store):
        outcome = await engine.execute_pair_trade(request)
        events = await store.events(outcome.trade_id) if outcome.trade_id else []
    render.trade_outcome(request, outcome, events)
    if outcome.ok:
        return EXIT_OK
    if not outcome.duplicate and context.needs_attention(outcome.state):
        return EXIT_ATTENTION
    return EXIT_NOT_EXECUTED
