"""Everything the CLI prints: rich tables on a terminal; piped (stdout not a terminal), the
operator's tables (``trade``, ``status``, ``show``, ``recover``) are plain text rows, no
box-drawing and no ANSI codes, for ``grep`` and ``awk``; progress and spinners go to a
terminal only. ``--json`` prints one JSON document instead (``*_json`` below; their keys are
documented in docs/cli.md, and tests/system/test_cli_json.py holds the two to each other).
The demo's and the simulation's reports keep their boxes piped: they are read, not parsed.

Every string here may hold user text (symbols, signal ids, reasons quoting them), so none is
rich markup: the consoles print with markup off, and styles come as ``Text`` objects."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.status import Status
from rich.table import Table
from rich.text import Text

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    EventRecord,
    OrderFacts,
    TradeRecord,
    average_price,
    fee_totals,
    filled,
    net,
)
from pairexec.fsm.request import PairTradeRequest, TradeOutcome
from pairexec.fsm.states import TradeState
from pairexec.persistence.urls import redacted

if TYPE_CHECKING:
    from pairexec.fsm.cli.commands.recover import Recovered
    from pairexec.fsm.sim.report import Summary

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
    # A market names its venue (BTC/USDT@binance) when the trade has venues.
    return f"{r.side_x} {r.amount_x:g} {r.market_x} / {r.side_y} {r.market_y} x{r.hedge_ratio:g}"


def path_states(events: Sequence[EventRecord]) -> list[str]:
    path: list[str] = []
    for event in events:
        if not path or path[-1] != event.to_state.value:
            path.append(event.to_state.value)
    return path


def path_text(events: Sequence[EventRecord]) -> str:
    return " → ".join(path_states(events))


REJECTED = re.compile(r"(leg [AB]|unwind) rejected: (.+)", re.S)
"""The journal's cause of an order the venue rejected (``ExecutionEngine`` writes it with the
venue's error); the trade's reason only says *that* it was rejected."""


def rejection(events: Sequence[EventRecord]) -> tuple[str, str] | None:
    """``("leg A", "InsufficientFunds: ...")``: the last order the venue rejected, and why."""
    for event in reversed(events):
        found = REJECTED.fullmatch(event.cause)
        if found:
            return found[1], found[2]
    return None


def rejection_of(state: TradeState, events: Sequence[EventRecord]) -> tuple[str, str] | None:
    """The rejection a trade that did not end DONE owes its end to, if any: the reason of a
    FAILED leg A says "rejected", that of an ABORTED trade only what was unwound."""
    return None if state is TradeState.DONE else rejection(events)


def reason_text(reason: str, state: TradeState, events: Sequence[EventRecord]) -> str:
    """The reason, with the venue's own words when a rejection led to it: "leg A rejected"
    alone does not tell an operator to top up the account or fix the symbol."""
    found = rejection_of(state, events)
    return f"{reason} ({found[0]}: {found[1]})" if found else reason


def plain() -> bool:
    """Piped: rows a script can split, with neither box-drawing characters nor ANSI codes
    (rich already leaves out the codes when stdout is not a terminal)."""
    return not console.is_terminal


def new_table(title: str | None, *, compact: bool) -> Table:
    """A table in the form of the moment: plain rows when piped; on a terminal the full
    boxes for ``--wide``, and only a rule under the header for the 80-column layout (each
    vertical bar costs a column)."""
    if plain():
        look: box.Box | None = None
    else:
        look = box.SIMPLE_HEAD if compact else box.HEAVY_HEAD
    edges = not (compact or plain())
    return Table(title=title, title_justify="left", box=look, show_edge=edges, pad_edge=edges)


def print_table(table: RenderableType, *, wide: bool) -> None:
    """Piped, a wide table is printed at its full width, one line per row, however wide:
    folding it at 80 columns would split each row over lines a script cannot join."""
    if not (wide and plain()):
        console.print(table)
        return
    unbounded = console.options.update_width(UNBOUNDED)
    needed = Measurement.get(console, unbounded, table).maximum
    Console(
        width=max(console.width, needed),
        highlight=False,
        soft_wrap=True,
        markup=False,
        emoji=False,
        color_system=None,
    ).print(table)


UNBOUNDED = 1_000_000
"""A width no table reaches: to measure one at its natural width."""
GAP = {True: 2, False: 3}
"""What separates two columns, plain (two spaces) or on a terminal (space, rule, space)."""
NARROWEST = 6
"""A shortened column keeps at least this many characters (five and the ellipsis)."""


def fit(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    flexible: Mapping[int, float],
    width: int,
) -> list[int]:
    """Column widths within ``width``: every column at its content's, but the ``flexible``
    ones (free text, index: share), which take what is left in turn, each up to its share of
    it or more if those after it need less."""
    natural = [max([cell_len(h), *(cell_len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    room = width - GAP[plain()] * (len(headers) - 1)
    room -= sum(w for i, w in enumerate(natural) if i not in flexible)
    widths, left, order = list(natural), room, list(flexible)
    for k, i in enumerate(order):
        rest = sum(natural[j] for j in order[k + 1 :])
        share = int(room * flexible[i])
        widths[i] = max(NARROWEST, min(natural[i], max(min(share, left), left - rest)))
        left -= widths[i]
    return widths


def utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc) if at.tzinfo else at.replace(tzinfo=timezone.utc)


def when(at: datetime, *, precise: bool) -> str:
    """A time of today (UTC) as the time alone, another day's with its date."""
    at = utc(at)
    text = at.strftime("%H:%M:%S.%f")[:-3] if precise else at.strftime("%H:%M:%S")
    if at.date() == datetime.now(timezone.utc).date():
        return text
    return f"{at:%Y-%m-%d} {text}" if precise else f"{at:%Y-%m-%d %H:%M}"


def trades_table(
    trades: Sequence[TradeRecord], title: str, reasons: Mapping[str, str] | None = None
) -> Table:
    """The full table (``status --wide``): every column, nothing shortened."""
    reasons = reasons or {}
    table = new_table(title, compact=False)
    for column in (
        "trade",
        "created (UTC)",
        "pair trade",
        "state",
        "leg A filled",
        "leg B filled",
        "unwound",
        "leg A avg",
        "leg B avg",
        "fees",
        "reason",
    ):
        table.add_column(column, overflow="fold", no_wrap=plain())
    for t in trades:
        table.add_row(
            t.id,
            utc(t.created_at).strftime("%Y-%m-%d %H:%M:%S"),
            pair_text(t),
            state_text(t.state),
            f"{t.filled(Leg.A):g}",
            f"{t.filled(Leg.B):g}",
            f"{t.filled(Leg.UNWIND):g}",
            price_text(average_price(t.orders, Leg.A)),
            price_text(average_price(t.orders, Leg.B)),
            fees_text(fee_totals(t.orders)),
            reasons.get(t.id, t.reason),
        )
    return table


PAIR_SHARE = 0.6
"""Of the room the fixed columns leave, what the pair takes at most when the reason needs the
rest: the pair says which trade it is, the reason is in full in ``show``."""


def compact_trades_table(
    trades: Sequence[TradeRecord], title: str, reasons: Mapping[str, str], ids: Mapping[str, str]
) -> Table:
    """One line per trade within the console's width (80 columns in a default terminal, or
    piped): ids as their shortest unique beginning (``show`` takes it), the pair and the
    reason shortened with an ellipsis; ``filled`` is leg A's / leg B's; the rest is in
    ``--wide`` and ``show``."""
    headers = ("trade", "created", "pair trade", "state", "filled", "reason")
    rows = [
        (
            ids.get(t.id, t.id),
            when(t.created_at, precise=False),
            pair_text(t),
            t.state.value,
            f"{t.filled(Leg.A):g} / {t.filled(Leg.B):g}",
            reasons.get(t.id, t.reason),
        )
        for t in trades
    ]
    widths = fit(headers, rows, {2: PAIR_SHARE, 5: 1.0}, console.width)
    table = new_table(title, compact=True)
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, width=width, no_wrap=True, overflow="ellipsis")
    for t, row in zip(trades, rows, strict=True):
        table.add_row(*row[:3], state_text(t.state), *row[4:])
    return table


def order_label(order: OrderFacts) -> str:
    """``A1``, ``B2``, ``U1``: an order's leg and try, short enough for an event's row."""
    return f"{order.leg.value[0]}{order.attempt}"


def show_trade(trade: TradeRecord, events: Sequence[EventRecord], *, wide: bool = False) -> None:
    r = trade.request
    console.print(Text.assemble((f"trade {trade.id}", "bold"), "  ", state_text(trade.state)))
    console.print(f"  {pair_text(trade)}" + (f"  signal {r.signal_id}" if r.signal_id else ""))
    if trade.reason:
        console.print(f"  reason: {reason_text(trade.reason, trade.state, events)}")
    for leg, symbol in ((Leg.A, r.market_x), (Leg.B, r.market_y)):
        console.print(f"  {leg_text(trade.orders, leg, symbol)}")
    console.print(f"  fees: {fees_text(fee_totals(trade.orders)) or 'none reported'}")
    labels = {o.client_order_id: order_label(o) for o in trade.orders}
    timeline = new_table("events", compact=not wide)
    timeline.add_column("time (UTC)", no_wrap=True)  # a date and a time: never two lines
    for column in ("from", "to", "cause"):
        timeline.add_column(column, overflow="fold", no_wrap=wide and plain())
    timeline.add_column("client order id" if wide else "order", no_wrap=wide and plain())
    for e in events:
        cid = e.client_order_id or ""
        timeline.add_row(
            when(e.at, precise=True),
            e.from_state.value if e.from_state else "",
            e.to_state.value,
            e.cause,
            cid if wide else labels.get(cid, cid),
        )
    print_table(timeline, wide=wide)
    if wide:
        print_table(_orders_table(trade.orders), wide=True)
        return
    orders = new_table("orders", compact=True)
    for column in ("order", "side", "amount", "market", "status", "filled", "limit", "average"):
        orders.add_column(column, overflow="fold")
    ids = new_table("order ids (--wide: every column)", compact=True)
    for column in ("order", "client order id", "exchange id"):
        ids.add_column(column, overflow="fold")
    for o in trade.orders:
        orders.add_row(
            order_label(o),
            o.side,
            f"{o.amount:g}",
            o.market,
            o.status.value,
            f"{o.filled:g}",
            price_text(o.limit_price) or "market",
            price_text(o.average),
        )
        ids.add_row(order_label(o), o.client_order_id, o.exchange_order_id or "")
    console.print(orders)
    console.print(ids)


def _orders_table(orders: Sequence[OrderFacts]) -> Table:
    table = new_table("orders", compact=False)
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
        "reference",
        "limit",
        "average",
        "fees",
    ):
        table.add_column(column, overflow="fold", no_wrap=plain())
    for o in orders:
        table.add_row(
            o.leg.value,
            str(o.attempt),
            o.client_order_id,
            o.exchange_order_id or "",
            o.side,
            f"{o.amount:g}",
            o.market,  # symbol@venue: where it was sent, looked up and cancelled
            o.status.value,
            f"{o.filled:g}",
            str(o.sends),
            price_text(o.reference_price),  # the best price a limit was priced from
            price_text(o.limit_price) or "market",
            price_text(o.average),
            fees_text(fee_totals([o])),
        )
    return table


def price_text(price: float | None) -> str:
    return "" if price is None else f"{price:g}"


def fees_text(fees: Mapping[str, float]) -> str:
    """``BTC 0.0001, USDT 5.99``: fees per currency (a negative one is a rebate)."""
    return ", ".join(f"{currency} {cost:g}" for currency, cost in sorted(fees.items()))


def leg_text(orders: Sequence[OrderFacts], leg: Leg, symbol: str) -> str:
    """``leg A BTC/USDT: filled 0.1, net 0.0999, average 60000``."""
    average = average_price(orders, leg)
    text = f"leg {leg.value} {symbol}: filled {filled(orders, leg):g}, net {net(orders, leg):g}"
    return text + (f", average {average:g}" if average is not None else "")


def progress(label: str, *columns: ProgressColumn, on: Console, transient: bool) -> Progress:
    """A bar with the count done and the time taken (``columns`` go before the time)."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        console=on,
        transient=transient,
    )


# --- JSON (--json) ---------------------------------------------------------------------------
# The keys are a promise to scripts: each document's are listed in docs/cli.md ("JSON
# output"), and tests/system/test_cli_json.py fails when the two differ.


def print_json(document: Mapping[str, Any]) -> None:
    """The one thing ``--json`` puts on stdout (ASCII, so no terminal encoding can break it;
    NaN is not JSON, so none is let through: ``number`` makes it null)."""
    sys.stdout.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def iso(at: datetime) -> str:
    """``2026-11-25T10:00:00.123456Z``: ISO 8601, in UTC."""
    return utc(at).isoformat().replace("+00:00", "Z")


def number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def fees_json(fees: Mapping[str, float]) -> dict[str, float | None]:
    return {currency: number(cost) for currency, cost in sorted(fees.items())}


def _rejection_json(state: TradeState, events: Sequence[EventRecord]) -> dict[str, str | None]:
    found = rejection_of(state, events)
    leg = None if found is None else found[0].removeprefix("leg ").upper()
    return {"rejected_leg": leg, "rejection": None if found is None else found[1]}


def trade_record_json(trade: TradeRecord, events: Sequence[EventRecord]) -> dict[str, Any]:
    """A stored trade (``status --json``'s rows, ``show --json``): ``events`` are its journal
    (or nothing for a DONE trade: no rejection is read from it)."""
    r, orders = trade.request, trade.orders
    return {
        "trade_id": trade.id,
        "state": trade.state.value,
        "created_at": iso(trade.created_at),
        "updated_at": iso(trade.updated_at),
        "signal_id": r.signal_id,
        "closes": r.closes,
        "market_x": r.market_x,
        "side_x": r.side_x,
        "amount_x": number(r.amount_x),
        "price_x": number(r.price_x),
        "market_y": r.market_y,
        "side_y": r.side_y,
        "hedge_ratio": number(r.hedge_ratio),
        "filled_x": number(filled(orders, Leg.A)),
        "filled_y": number(filled(orders, Leg.B)),
        "unwound_x": number(filled(orders, Leg.UNWIND)),
        "net_x": number(net(orders, Leg.A)),
        "net_y": number(net(orders, Leg.B)),
        "average_x": number(average_price(orders, Leg.A)),
        "average_y": number(average_price(orders, Leg.B)),
        "fees": fees_json(fee_totals(orders)),
        "reason": trade.reason,
        **_rejection_json(trade.state, events),
    }


def trade_json(outcome: TradeOutcome, events: Sequence[EventRecord]) -> dict[str, Any]:
    """``trade --json``: the outcome, named as ``TradeOutcome`` names it."""
    return {
        "trade_id": outcome.trade_id or None,
        "state": outcome.state.value,
        "ok": outcome.ok,
        "duplicate": outcome.duplicate,
        "duplicate_reason": outcome.duplicate_reason.value if outcome.duplicate_reason else None,
        "closes": outcome.closes,
        "path": [] if outcome.duplicate else path_states(events),
        "filled_x": number(outcome.filled_x),
        "filled_y": number(outcome.filled_y),
        "unwound_x": number(outcome.unwound_x),
        "net_x": number(outcome.net_x),
        "net_y": number(outcome.net_y),
        "average_x": number(outcome.average_x),
        "average_y": number(outcome.average_y),
        "fees": fees_json(outcome.fees),
        "reason": outcome.reason,
        **_rejection_json(outcome.state, events),
    }


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "from_state": event.from_state.value if event.from_state else None,
        "to_state": event.to_state.value,
        "cause": event.cause,
        "client_order_id": event.client_order_id,
    }


def order_json(order: OrderFacts) -> dict[str, Any]:
    return {
        "leg": order.leg.value,
        "attempt": order.attempt,
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "market": order.market,
        "side": order.side,
        "amount": number(order.amount),
        "status": order.status.value,
        "filled": number(order.filled),
        "net": number(order.net),
        "average": number(order.average),
        "sends": order.sends,
        "reference_price": number(order.reference_price),
        "limit_price": number(order.limit_price),
        "fees": fees_json(fee_totals([order])),
    }


def show_json(trade: TradeRecord, events: Sequence[EventRecord]) -> dict[str, Any]:
    """``show --json``: the trade as ``status --json`` lists it, its journal and its orders."""
    return {
        **trade_record_json(trade, events),
        "events": [event_json(e) for e in events],
        "orders": [order_json(o) for o in trade.orders],
    }


def status_json(
    db_url: str,
    state: TradeState | None,
    trades: Sequence[TradeRecord],
    counts: Mapping[TradeState, int],
    events: Mapping[str, Sequence[EventRecord]],
) -> dict[str, Any]:
    return {
        "database": redacted(db_url),
        "state": state.value if state else None,
        "trades": [trade_record_json(t, events.get(t.id, ())) for t in trades],
        "matching": counts.get(state, 0) if state else sum(counts.values()),
        "total": sum(counts.values()),
        "counts": {s.value: counts[s] for s in TradeState if s in counts},
    }


def recover_json(in_flight: int, rows: Sequence[Recovered], left: int) -> dict[str, Any]:
    return {
        "in_flight": in_flight,
        "recovered": len(rows),
        "needs_attention": sum(r.needs_attention for r in rows),
        "left": left,
        "trades": [
            {
                "trade_id": r.trade_id,
                "before": r.before,
                "after": r.after.value,
                "lookups": r.lookups,
                "sends": r.sends,
                "cancels": r.cancels,
                "needs_attention": r.needs_attention,
                "reason": r.reason,
            }
            for r in rows
        ],
    }


# --- trade -----------------------------------------------------------------------------------


def trade_outcome(
    request: PairTradeRequest, outcome: TradeOutcome, events: Sequence[EventRecord]
) -> None:
    if outcome.duplicate:
        # The engine's reason says it is one ("duplicate: signal 's1' already made..."): a
        # prefix of our own would print "duplicate: duplicate:".
        reason = outcome.reason
        console.print(reason if reason.startswith("duplicate") else f"duplicate: {reason}")
        return
    console.print(Text.assemble(f"trade {outcome.trade_id}: ", state_text(outcome.state)))
    console.print(f"  path: {path_text(events)}")
    console.print(
        f"  leg A {request.pair_x} filled {outcome.filled_x:g}, "
        f"leg B {request.pair_y} filled {outcome.filled_y:g}"
        + (f", unwound {outcome.unwound_x:g}" if outcome.unwound_x else "")
    )
    prices = [
        f"leg {name} net {amount:g}" + (f" at {average:g}" if average is not None else "")
        for name, amount, average in (
            ("A", outcome.net_x, outcome.average_x),
            ("B", outcome.net_y, outcome.average_y),
        )
    ]
    fees = fees_text(outcome.fees)
    console.print(f"  {', '.join(prices)}; fees: {fees or 'none reported'}")
    if outcome.reason:
        console.print(f"  {reason_text(outcome.reason, outcome.state, events)}")


# --- recover and worker ----------------------------------------------------------------------

RECOVER_ROWS = 50
"""Up to this many recovered trades get a row each; beyond, a summary by state (and a row for
each trade that needs attention): a table of thousands of rows helps nobody."""


def recovering(in_flight: int) -> None:
    if not in_flight:
        console.print("nothing to recover: no trade is in flight")
    else:
        console.print(f"recovering {in_flight} in-flight trade(s)…")


@contextmanager
def recover_progress(in_flight: int) -> Iterator[Callable[[int, int], None]]:
    """Yields what ``ExecutionEngine.recover`` calls as trades finish. On stderr: stdout keeps
    only the result."""
    with progress("recovering", on=errors, transient=True) as bar:
        task = bar.add_task("trades", total=in_flight)
        yield lambda finished, claimed: bar.update(task, completed=finished, total=claimed)


def recovered(rows: Sequence[Recovered], attention: Sequence[Recovered], left: int) -> None:
    """``left``: trades in flight when recover started that live processes still hold."""
    if len(rows) <= RECOVER_ROWS:
        console.print(_recovered_table("recover", rows))
    else:
        console.print(recover_summary(rows))
        if attention:
            console.print(_recovered_table("trades that need attention", attention))
        console.print("per trade: pairexec status, pairexec show TRADE_ID")
    if left:
        console.print(f"{left} in-flight trade(s) left to the live process(es) that hold them")
    needs_attention(attention)


def needs_attention(attention: Sequence[Recovered]) -> None:
    """On stderr, so that it is seen with ``--json`` too."""
    if attention:
        errors.print(f"{len(attention)} trade(s) need attention (PARKED or unresolved)")


def _recovered_table(title: str, rows: Sequence[Recovered]) -> Table:
    table = new_table(title, compact=False)
    for column in ("trade", "before", "after", "lookups", "sends", "cancels", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.trade_id[:12],
            r.before,
            state_text(r.after),
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
    table = new_table(f"recover: {len(rows)} trades", compact=False)
    for column in ("before", "after", "trades", "lookups", "sends", "cancels"):
        table.add_column(column, justify="left" if column in ("before", "after") else "right")
    order = {state.value: i for i, state in enumerate(TradeState)}  # the FSM's own order
    for (was, now), group in sorted(
        groups.items(), key=lambda g: (order.get(g[0][0], len(order)), order[g[0][1].value])
    ):
        table.add_row(
            was,
            state_text(now),
            str(len(group)),
            str(sum(r.lookups for r in group)),
            str(sum(r.sends for r in group)),
            str(sum(r.cancels for r in group)),
        )
    return table


def worker_watching(owner: str, db_url: str) -> None:
    console.print(f"worker {owner}: watching {redacted(db_url)} (Ctrl-C to stop)")


def worker_finished(outcome: TradeOutcome) -> None:
    console.print(
        Text.assemble(
            f"trade {outcome.trade_id[:12]}: ",
            state_text(outcome.state),
            f" — {outcome.reason}" if outcome.reason else "",
        )
    )


def worker_stopping(owner: str) -> None:
    console.print(f"worker {owner}: stopping; unfinished trades are released")


# --- status and db ---------------------------------------------------------------------------


def status_view(
    db_url: str,
    state: TradeState | None,
    trades: Sequence[TradeRecord],
    counts: Mapping[TradeState, int],
    *,
    reasons: Mapping[str, str],
    ids: Mapping[str, str],
    wide: bool,
) -> RenderableType:
    """``trades``: the newest in ``state`` (any if None); ``counts``: all trades, by state;
    ``reasons``: the reason to show of a trade whose stored one does not say it all (the
    venue's rejection); ``ids``: each trade's shortest unique id."""
    if not trades:
        return Text("no trades" + (f" in state {state.value}" if state else ""))
    title = f"trades in {redacted(db_url)}" + (f" ({state.value})" if state else "")
    if wide:
        parts: list[RenderableType] = [trades_table(trades, title, reasons)]
    else:
        parts = [compact_trades_table(trades, f"{title}, times UTC", reasons, ids)]
    matching = counts.get(state, 0) if state else sum(counts.values())
    if matching > len(trades):
        parts.append(Text(f"the newest {len(trades)} of {matching} (--limit N for more)"))
    by_state = ", ".join(f"{s.value} {counts[s]}" for s in TradeState if s in counts)
    parts.append(Text(f"all {sum(counts.values())} trades: {by_state}"))
    return Group(*parts)


def status(view: RenderableType, *, wide: bool) -> None:
    print_table(view, wide=wide)


def watching(db_url: str, interval: float) -> None:
    """On stderr: a piped watch's stdout has its table only when it stops."""
    errors.print(f"watching {redacted(db_url)} every {interval:g} s (Ctrl-C to stop)")


@contextmanager
def live(view: RenderableType) -> Iterator[Callable[[RenderableType], None]]:
    """``status --watch``: yields what redraws the view in place (on a terminal; piped, rich
    prints the last view once, when it stops)."""
    with Live(view, console=console, auto_refresh=False) as shown:
        yield lambda new: shown.update(new, refresh=True)


def resolved(trade: TradeRecord) -> None:
    console.print(f"{trade.id}: {trade.state.value} ({trade.reason}); its pair is free again")


def schema(db_url: str, current: str | None, head: str) -> None:
    note = "newest" if current == head else f"newest is {head}: run 'pairexec db upgrade'"
    console.print(f"{redacted(db_url)}: schema at {current or 'nothing (empty)'} ({note})")


# --- demo ------------------------------------------------------------------------------------


def demo_starts(scenarios: int, workdir: Path) -> None:
    console.print(f"pairexec demo: {scenarios} chaos scenarios on the paper exchange ({workdir})")


def working(what: str) -> AbstractContextManager[Status]:
    """A spinner while ``what`` runs (on a terminal only; it leaves nothing behind)."""
    return console.status(what)


def demo_results(results: Sequence[tuple[str, str, str, bool]], kept_in: str | None) -> None:
    """``results``: (origin, title, observed, passed) in order; ``kept_in``: the database
    the trades stay in, if it outlives the demo."""
    table = Table(title="results", title_justify="left")
    for column in ("#", "from", "scenario", "observed", "result"):
        table.add_column(column, overflow="fold")
    for number, (origin, title, observed, ok) in enumerate(results, 1):
        table.add_row(
            str(number),
            origin,
            title,
            observed,
            Text("pass", style="green") if ok else Text("FAIL", style="red"),
        )
    console.print(table)
    seeds = [ok for origin, _, _, ok in results if origin.startswith("seed")]
    line = (
        f"{sum(ok for *_, ok in results)}/{len(results)} passed "
        f"(seed scenarios {sum(seeds)}/{len(seeds)})"
    )
    console.print(f"{line}; trades kept in {kept_in}" if kept_in else line)


# --- simulate --------------------------------------------------------------------------------


@contextmanager
def simulate_progress(runs: int) -> Iterator[Callable[[int], None]]:
    """Yields what to call after each scenario, with the number failing so far."""
    failing = TextColumn("{task.fields[failing]} failing")
    with progress("simulating", failing, on=console, transient=False) as bar:
        task = bar.add_task("scenarios", total=runs, failing=0)
        yield lambda now_failing: bar.update(task, advance=1, failing=now_failing)


def simulation(summary: Summary, wall: float, jobs: int, database: str) -> None:
    table = Table(title="simulation", title_justify="left")
    table.add_column("what")
    table.add_column("count", overflow="fold")
    for what, count in summary.rows():
        table.add_row(what, count)
    table.add_row("trade database", database)
    table.add_row("wall time", f"{wall:.1f} s on {jobs} process(es)")
    console.print(table)


def proving(line: str) -> None:
    """A long exploration's progress (stderr: stdout is the report)."""
    errors.print(f"exploring… {line}")


def proved(lines: Sequence[str], ok: bool) -> None:
    for line in lines:
        console.print(line)
    verdict_line = "no invariant violated" if ok else "invariants violated"
    console.print(Text(verdict_line, style="green" if ok else "red"))


def trace(seed: int, lines: Sequence[str]) -> None:
    console.rule(f"seed {seed}")
    for line in lines:
        console.print(line)


def verdict(summary: Summary) -> None:
    if summary.failing:
        console.print(Text(f"{len(summary.failing)} failing seed(s):", style="red"))
        for line in summary.failure_lines():
            console.print(line)
    else:
        console.print(Text("no invariant violated", style="green"))
