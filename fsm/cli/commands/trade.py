"""``pairexec trade``: one pair trade, and its outcome as the exit code."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from typing import Any

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_NOT_EXECUTED, EXIT_OK, CliError
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.request import InvalidRequest, PairTradeRequest, TradeOutcome, split_market


async def run(args: argparse.Namespace) -> int:
    # The command's arguments are named after the request's fields; a leg's market may name
    # its venue (BTC/USDT@binance).
    given: dict[str, Any] = {f.name: getattr(args, f.name, None) for f in fields(PairTradeRequest)}
    given["pair_x"], given["venue_x"] = split_market(args.pair_x)
    given["pair_y"], given["venue_y"] = split_market(args.pair_y)
    request = PairTradeRequest(**given)
    try:  # fail on malformed input before touching the database or exchange
        request.validated()
    except InvalidRequest as exc:
        if str(exc).startswith("price_x"):  # the option's name, not only the field's
            raise CliError(f"--limit: {exc}") from None
        raise
    config = banded(args.settings.engine, args.max_slippage_bps, own_limit=request.price_x)
    async with context.engine(args, context.exchange(args), config) as (engine, store):
        outcome = await engine.execute_pair_trade(request)
        # A duplicate's id is the trade that refused it: its journal is not this request's.
        events = await store.events(outcome.trade_id) if not outcome.duplicate else []
    if args.json:
        render.print_json(render.trade_json(outcome, events))
    else:
        render.trade_outcome(request, outcome, events)
    return exit_code(outcome)


def exit_code(outcome: TradeOutcome) -> int:
    """0 DONE; 3 PARKED or left in flight (a human, or ``recover``); 1 not executed."""
    if outcome.ok:
        return EXIT_OK
    if not outcome.duplicate and context.needs_attention(outcome.state):
        return EXIT_ATTENTION
    return EXIT_NOT_EXECUTED


def banded(config: EngineConfig, bps: float | None, *, own_limit: float | None) -> EngineConfig:
    """``config`` with ``--max-slippage-bps``: every leg a limit IOC that band from the best
    price, but leg A when it has a limit of its own (``--limit``); the rest of each policy
    (widening, cap, what a remainder becomes) as the config file gives it."""
    if bps is None:
        return config
    legs = ("leg_b", "unwind") if own_limit is not None else ("leg_a", "leg_b", "unwind")
    try:
        policies = {
            leg: replace(getattr(config, leg), kind="limit_ioc", max_slippage_bps=bps)
            for leg in legs
        }
    except ValueError as exc:
        raise CliError(f"--max-slippage-bps {bps:g}: {exc}") from None
    return replace(config, **policies)
