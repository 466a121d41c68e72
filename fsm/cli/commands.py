"""What each ``pairexec`` command does, once its command line has been checked.

Kept apart from ``pairexec.fsm.cli.main`` because it needs the engine, the store and ccxt
(seconds of imports): a mistyped command line is refused before any of that is loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from pairexec.fsm.cli import render
from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.cli.simulate import cmd_simulate
from pairexec.fsm.cli.venue import open_exchange
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.engine import EngineError, ExecutionEngine
from pairexec.fsm.machine import is_terminal
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.request import InvalidRequest, PairTradeRequest, TradeOutcome
from pairexec.fsm.states import TradeState
from pairexec.migrations import known_revision
from pairexec.persistence import StoreError, TradeStore, head_revision, schema_revision
from pairexec.persistence.urls import is_memory_sqlite, is_sqlite, redacted

EXIT_OK, EXIT_NOT_EXECUTED, EXIT_BAD_INPUT, EXIT_ATTENTION = 0, 1, 2, 3

REFUSALS = (CliError, InvalidRequest, StoreError, EngineError)
"""What a command raises when the input or the environment is unusable: exit 2, one line."""

console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
"""Markup and emoji codes off: most of what is printed is user text (symbols, signal ids,
reasons quoting them), and ``[/x]`` in it would crash the print, ``[red]`` restyle it and
``:smile:`` rewrite it. Styles are given as ``rich.text.Text`` instead."""
errors = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


@asynccontextmanager
async def _engine(args: argparse.Namespace, exchange: Any) -> Any:
    config = EngineConfig(lease_seconds=args.lease_seconds)
    engine = ExecutionEngine(exchange, store=_store(args.db), config=config)
    try:
        await engine.start()
        yield engine
    finally:
        await engine.close()
        close = getattr(exchange, "close", None)
        if close is not None:
            await close()


def _store(url: str) -> TradeStore:
    if is_memory_sqlite(url):
        raise CliError("an in-memory database would forget every trade: give --db a file URL")
    return TradeStore(url)


def _exchange(args: argparse.Namespace) -> Any:
    return open_exchange(
        args.exchange,
        db_url=args.db,
        paper_state=args.paper_state,
        chaos=args.chaos,
        seed=args.seed,
        sandbox=args.sandbox,
    )


async def cmd_trade(args: argparse.Namespace) -> int:
    request = PairTradeRequest(
        pair_x=args.pair_x,
        side_x=args.side_x,
        amount_x=args.amount_x,
        pair_y=args.pair_y,
        side_y=args.side_y,
        hedge_ratio=args.hedge_ratio,
        signal_id=args.signal_id,
    )
    request.validated()  # fail on malformed input before touching the database or exchange
    async with _engine(args, _exchange(args)) as engine:
        outcome = await engine.execute_pair_trade(request)
        events = await engine.store.events(outcome.trade_id) if outcome.trade_id else []
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
    if outcome.state is TradeState.PARKED or not is_terminal(outcome.state):
        return EXIT_ATTENTION
    return EXIT_NOT_EXECUTED


RECOVER_ROWS = 50
"""Up to this many recovered trades get a row each; beyond, a summary by state (and a row for
each trade that needs attention): a table of thousands of rows helps nobody."""


async def cmd_recover(args: argparse.Namespace) -> int:
    exchange = CallRecorder(_exchange(args))
    async with _engine(args, exchange) as engine:
        before = await engine.store.load_many(await engine.store.unfinished_trade_ids())
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
        after = await engine.store.load_many([o.trade_id for o in outcomes])
    rows = [
        _recovered_row(before.get(o.trade_id), after[o.trade_id], o, exchange) for o in outcomes
    ]
    attention = [r for r in rows if r.needs_attention]
    if len(rows) <= RECOVER_ROWS:
        console.print(_recovered_table("recover", rows))
    else:
        console.print(_recover_summary(rows))
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


_APPEARED = "(new)"
"""The state before of a trade that became in flight while recover ran (claimed from a process
that died meanwhile)."""


@dataclass(frozen=True)
class _Recovered:
    trade_id: str
    before: str
    """The state it was in when recover started, or ``_APPEARED``."""
    after: TradeState
    lookups: int
    sends: int
    cancels: int
    reason: str

    @property
    def needs_attention(self) -> bool:
        return self.after is TradeState.PARKED or not is_terminal(self.after)


def _recovered_row(
    before: TradeRecord | None, after: TradeRecord, outcome: TradeOutcome, exchange: CallRecorder
) -> _Recovered:
    cids = {o.client_order_id for o in after.orders}
    return _Recovered(
        after.id,
        before.state.value if before is not None else _APPEARED,
        after.state,
        exchange.count("fetch_order", cids),
        exchange.count("create_order", cids),
        exchange.count("cancel_order", cids),
        outcome.reason,
    )


def _recovered_table(title: str, rows: Sequence[_Recovered]) -> Table:
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


def _recover_summary(rows: Sequence[_Recovered]) -> Table:
    groups: dict[tuple[str, TradeState], list[_Recovered]] = {}
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


async def cmd_worker(args: argparse.Namespace) -> int:
    """Take over trades whose owner died or whose lease expired, until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _engine(args, _exchange(args)) as engine:
        console.print(f"worker {engine.owner}: watching {redacted(args.db)} (Ctrl-C to stop)")
        while not stop.is_set():
            for outcome in await engine.recover():
                console.print(
                    Text.assemble(
                        f"trade {outcome.trade_id[:12]}: ",
                        render.state_text(outcome.state),
                        f" — {outcome.reason}" if outcome.reason else "",
                    )
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.poll)
        console.print(f"worker {engine.owner}: stopping; unfinished trades are released")
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    async with _opened(args.db) as store:
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


async def cmd_show(args: argparse.Namespace) -> int:
    if not args.trade_id.strip():
        raise CliError("give a trade id (or its beginning): an empty one matches every trade")
    async with _opened(args.db) as store:
        ids = await store.trade_ids_starting_with(args.trade_id)
        if not ids:
            raise CliError(f"no trade with id {args.trade_id!r}")
        if len(ids) > 1:
            raise CliError(f"{args.trade_id!r} is ambiguous: {', '.join(ids)}…")
        trade = await store.load(ids[0])
        events = await store.events(trade.id)
    render.show_trade(console, trade, events)
    return EXIT_OK


async def cmd_db(args: argparse.Namespace) -> int:
    if args.db_command == "current":
        _require_existing(args.db)
    # Read before anything may write: a database from a newer pairexec is left untouched.
    current = await schema_revision(args.db) if _may_exist(args.db) else None
    if current is not None and not known_revision(current):
        raise CliError(
            f"{redacted(args.db)} was written by a newer pairexec (revision {current}; this "
            f"one knows up to {head_revision()}): upgrade pairexec"
        )
    if args.db_command == "upgrade":
        async with _opened(args.db, must_exist=False):
            pass
        console.print(f"{redacted(args.db)}: schema at {head_revision()} (newest)")
        return EXIT_OK
    head = head_revision()
    note = "newest" if current == head else f"newest is {head}: run 'pairexec db upgrade'"
    console.print(f"{redacted(args.db)}: schema at {current or 'nothing (empty)'} ({note})")
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    from pairexec.fsm.cli.demo import run_demo

    return await run_demo(console, Path(args.workdir) if args.workdir else None)


@asynccontextmanager
async def _opened(url: str, must_exist: bool = True) -> Any:
    if must_exist:
        _require_existing(url)
    store = _store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _may_exist(url: str) -> bool:
    """False for a SQLite file that is not there yet (reading it would create it)."""
    if is_sqlite(url) and not is_memory_sqlite(url):
        from sqlalchemy.engine import make_url

        return Path(str(make_url(url).database)).exists()
    return True


def _require_existing(url: str) -> None:
    """Reading commands must not create an empty database at a mistyped path."""
    if is_sqlite(url) and not is_memory_sqlite(url):
        from sqlalchemy.engine import make_url

        path = Path(str(make_url(url).database))
        if not path.exists():
            raise CliError(f"no database at {path} (give --db, or run a trade first)")


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "trade": cmd_trade,
    "recover": cmd_recover,
    "worker": cmd_worker,
    "status": cmd_status,
    "show": cmd_show,
    "db": cmd_db,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
}
