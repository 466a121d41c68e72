"""``pairexec recover``: resume every in-flight trade, and report what each one took."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_OK
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.cli.render import console, errors
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.request import TradeOutcome
from pairexec.fsm.states import TradeState

RECOVER_ROWS = 50
"""Up to this many recovered trades get a row each; beyond, a summary by state (and a row for
each trade that needs attention): a table of thousands of rows helps nobody."""


async def run(args: argparse.Namespace) -> int:
    exchange = CallRecorder(context.exchange(args))
    async with context.engine(args, exchange) as (engine, store):
        before = await store.load_many(await store.unfinished_trade_ids())
        if not before:
            console.print("nothing to recover: no trade is in flight")
            return EXIT_OK
        console.print(f"recovering {len(before)} in-flight trade(s)…")
        with Progress(
            TextColumn("[bold]recovering"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=errors,  # stdout keeps only the result; shown on a terminal only
            transient=True,
        ) as bar:
            task = bar.add_task("trades", total=len(before))
            outcomes = await engine.recover(
                lambda finished, claimed: bar.update(task, completed=finished, total=claimed)
            )
        after = await store.load_many([o.trade_id for o in outcomes])
    rows = [recovered_row(before.get(o.trade_id), after[o.trade_id], o, exchange) for o in outcomes]
    attention = [r for r in rows if r.needs_attention]
    if len(rows) <= RECOVER_ROWS:
        console.print(_recovered_table("recover", rows))
    else:
        console.print(recover_summary(rows))
        if attention:
            console.print(_recovered_table("trades that need attention", attention))
        console.print("per trade: pairexec status, pairexec show TRADE_ID")
    left = len(before.keys() - {o.trade_id for o in outcomes})
    if left:
        console.print(f"{left} in-flight trade(s) left to the live process(es) that hold them")
    if attention:
        errors.print(f"{len(attention)} trade(s) need attention (PARKED or unresolved)")
        return EXIT_ATTENTION
    return EXIT_OK


APPEARED = "(new)"
"""The state before of a trade that became in flight while recover ran (claimed from a process
that died meanwhile)."""


@dataclass(frozen=True)
class Recovered:
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


def _recovered_table(title: str, rows: Sequence[Recovered]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("trade", "before", "after", "lookups", "sends", "cancels", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.trade_id[:12],
            r.before,
            render.state_text(r.after),
            str(r.lookups),
            str(r.sends),
            str(r.cancels),
            r.reason,
        )
    return table


def recover_summary(rows: Sequence[Recovered]) -> Table:
    groups: dict[tuple[str, TradeState], list[Recovered]] = {}
    for r in rows:
        groups.setdefault((r.before, r.after), []).append(r)
    table = Table(title=f"recover: {len(rows)} trades", title_justify="left")
    for column in ("before", "after", "trades", "lookups", "sends", "cancels"):
        table.add_column(column, justify="left" if column in ("before", "after") else "right")
    order = {state.value: i for i, state in enumerate(TradeState)}  # the FSM's own order
    for (was, now), group in sorted(
        groups.items(), key=lambda g: (order.get(g[0][0], len(order)), order[g[0][1].value])
    ):
        table.add_row(
            was,
            render.state_text(now),
            str(len(group)),
            str(sum(r.lookups for r in group)),
            str(sum(r.sends for r in group)),
            str(sum(r.cancels for r in group)),
        )
    return table
