"""How the CLI shows trades: rich tables on a terminal, plain text when piped.

Every string here may hold user text (symbols, signal ids, reasons quoting them), so none is
rich markup: the consoles print with markup off, and styles come as ``Text`` objects."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import EventRecord, TradeRecord
from pairexec.fsm.states import TradeState

console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
"""Markup and emoji codes off: most of what is printed is user text (symbols, signal ids,
reasons quoting them), and ``[/x]`` in it would crash the print, ``[red]`` restyle it and
``:smile:`` rewrite it. Styles are given as ``rich.text.Text`` instead."""
errors = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)

STATE_STYLE = {
    TradeState.DONE: "green",
    TradeState.ABORTED: "yellow",
    TradeState.FAILED: "red",
    TradeState.PARKED: "bold red",
}


def state_text(state: TradeState) -> Text:
    return Text(state.value, style=STATE_STYLE.get(state, "cyan"))


def pair_text(trade: TradeRecord) -> str:
    r = trade.request
    return f"{r.side_x} {r.amount_x:g} {r.pair_x} / {r.side_y} {r.pair_y} x{r.hedge_ratio:g}"


def path_text(events: Sequence[EventRecord]) -> str:
    path: list[str] = []
    for event in events:
        if not path or path[-1] != event.to_state.value:
            path.append(event.to_state.value)
    return " → ".join(path)


def trades_table(trades: Sequence[TradeRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "trade",
        "created (UTC)",
        "pair trade",
        "state",
        "leg A filled",
        "leg B filled",
        "unwound",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for t in trades:
        table.add_row(
            t.id[:12],
            t.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            pair_text(t),
            state_text(t.state),
            f"{t.filled(Leg.A):g}",
            f"{t.filled(Leg.B):g}",
            f"{t.filled(Leg.UNWIND):g}",
            t.reason,
        )
    return table


def show_trade(console: Console, trade: TradeRecord, events: Sequence[EventRecord]) -> None:
    r = trade.request
    console.print(Text.assemble((f"trade {trade.id}", "bold"), "  ", state_text(trade.state)))
    console.print(f"  {pair_text(trade)}" + (f"  signal {r.signal_id}" if r.signal_id else ""))
    if trade.reason:
        console.print(f"  reason: {trade.reason}")
    timeline = Table(title="events", title_justify="left")
    for column in ("time (UTC)", "from", "to", "cause", "client order id"):
        timeline.add_column(column, overflow="fold")
    for e in events:
        timeline.add_row(
            e.at.strftime("%H:%M:%S.%f")[:-3],
            e.from_state.value if e.from_state else "",
            e.to_state.value,
            e.cause,
            e.client_order_id or "",
        )
    console.print(timeline)
    orders = Table(title="orders", title_justify="left")
    for column in (
        "leg",
        "try",
        "client order id",
        "exchange id",
        "side",
        "amount",
        "symbol",
        "status",
        "filled",
        "sends",
    ):
        orders.add_column(column, overflow="fold")
    for o in trade.orders:
        orders.add_row(
            o.leg.value,
            str(o.attempt),
            o.client_order_id,
            o.exchange_order_id or "",
            o.side,
            f"{o.amount:g}",
            o.symbol,
            o.status.value,
            f"{o.filled:g}",
            str(o.sends),
        )
    console.print(orders)
