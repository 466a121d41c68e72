"""``pairexec recover``: resume every in-flight trade, and count the exchange calls each took."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_OK
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.request import TradeOutcome
from pairexec.fsm.states import TradeState


async def run(args: argparse.Namespace) -> int:
    opened = context.exchange(args)
    calls: Counter[tuple[str, str]] = Counter()  # one count over every venue
    if isinstance(opened, Mapping):  # the config file's venues
        venues: Any = {name: CallRecorder(venue, calls) for name, venue in opened.items()}
        exchange = next(iter(venues.values()))
    else:
        exchange = venues = CallRecorder(opened, calls)
    async with context.engine(args, venues) as (engine, store):
        before = await store.load_many(await store.unfinished_trade_ids())
        if not args.json:
            render.recovering(len(before))
        if not before:
            if args.json:
                render.print_json(render.recover_json(0, [], left=0))
            return EXIT_OK
        with render.recover_progress(len(before)) as finished:
            outcomes = await engine.recover(finished)
        after = await store.load_many([o.trade_id for o in outcomes])
    rows = [recovered_row(before.get(o.trade_id), after[o.trade_id], o, exchange) for o in outcomes]
    attention = [r for r in rows if r.needs_attention]
    left = len(before.keys() - {o.trade_id for o in outcomes})
    if args.json:
        render.print_json(render.recover_json(len(before), rows, left=left))
        render.needs_attention(attention)
    else:
        render.recovered(rows, attention, left=left)
    return EXIT_ATTENTION if attention else EXIT_OK


APPEARED = "(new)"
"""The state before of a trade that became in flight while recover ran (claimed from a process
that died meanwhile)."""


@dataclass(frozen=True)
class Recovered:
    """One recovered trade, as the report shows it."""

    trade_id: str
    before: str
    """The state it was in when recover started, or ``APPEARED``."""
    after: TradeState
    lookups: int
    sends: int
    cancels: int
    reason: str

    @property
    def needs_attention(self) -> bool:
        return context.needs_attention(self.after)


def recovered_row(
    before: TradeRecord | None, after: TradeRecord, outcome: TradeOutcome, exchange: CallRecorder
) -> Recovered:
    cids = {o.client_order_id for o in after.orders}
    return Recovered(
        after.id,
        before.state.value if before is not None else APPEARED,
        after.state,
        exchange.count("fetch_order", cids),
        exchange.count("create_order", cids),
        exchange.count("cancel_order", cids),
        outcome.reason,
    )
