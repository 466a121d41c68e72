"""Everything the CLI prints: rich tables on a terminal, plain text when piped; progress and
spinners go to a terminal only.

Every string here may hold user text (symbols, signal ids, reasons quoting them), so none is
rich markup: the consoles print with markup off, and styles come as ``Text`` objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
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
        "leg A avg",
        "leg B avg",
        "fees",
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
            price_text(average_price(t.orders, Leg.A)),
            price_text(average_price(t.orders, Leg.B)),
            fees_text(fee_totals(t.orders)),
            t.reason,
        )
    return table


def show_trade(trade: TradeRecord, events: Sequence[EventRecord]) -> None:
    r = trade.request
    console.print(Text.assemble((f"trade {trade.id}", "bold"), "  ", state_text(trade.state)))
    console.print(f"  {pair_text(trade)}" + (f"  signal {r.signal_id}" if r.signal_id else ""))
    if trade.reason:
        console.print(f"  reason: {trade.reason}")
    for leg, symbol in ((Leg.A, r.market_x), (Leg.B, r.market_y)):
        console.print(f"  {leg_text(trade.orders, leg, symbol)}")
    console.print(f"  fees: {fees_text(fee_totals(trade.orders)) or 'none reported'}")
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
        "reference",
        "limit",
        "average",
        "fees",
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
            o.market,  # symbol@venue: where it was sent, looked up and cancelled
            o.status.value,
            f"{o.filled:g}",
            str(o.sends),
            price_text(o.reference_price),  # the best price a limit was priced from
            price_text(o.limit_price) or "market",
            price_text(o.average),
            fees_text(fee_totals([o])),
        )
    console.print(orders)


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


# --- trade -----------------------------------------------------------------------------------


def trade_outcome(
    request: PairTradeRequest, outcome: TradeOutcome, events: Sequence[EventRecord]
) -> None:
    if outcome.duplicate:
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
        console.print(f"  {outcome.reason}")


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
    if attention:
        errors.print(f"{len(attention)} trade(s) need attention (PARKED or unresolved)")


def _recovered_table(title: str, rows: Sequence[Recovered]) -> Table:
    table = Table(title=title, title_justify="left")
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
    table = Table(title=f"recover: {len(rows)} trades", title_justify="left")
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


def status(
    db_url: str,
    state: TradeState | None,
    trades: Sequence[TradeRecord],
    counts: Mapping[TradeState, int],
) -> None:
    """``trades``: the newest in ``state`` (any if None); ``counts``: all trades, by state."""
    if not trades:
        console.print("no trades" + (f" in state {state.value}" if state else ""))
        return
    title = f"trades in {redacted(db_url)}" + (f" ({state.value})" if state else "")
    console.print(trades_table(trades, title))
    matching = counts.get(state, 0) if state else sum(counts.values())
    if matching > len(trades):
        console.print(f"the newest {len(trades)} of {matching} (--limit N for more)")
    by_state = ", ".join(f"{s.value} {counts[s]}" for s in TradeState if s in counts)
    console.print(f"all {sum(counts.values())} trades: {by_state}")


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


def simulation(summary: Summary, wall: float, jobs: int) -> None:
    table = Table(title="simulation", title_justify="left")
    table.add_column("what")
    table.add_column("count", overflow="fold")
    for what, count in summary.rows():
        table.add_row(what, count)
    table.add_row("wall time", f"{wall:.1f} s on {jobs} process(es)")
    console.print(table)


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
