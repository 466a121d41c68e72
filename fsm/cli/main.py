"""``pairexec``: run pair trades, recover after a restart, inspect the trade database.

Exit codes: 0 success; 1 the trade did not execute (ABORTED, FAILED, duplicate); 2 bad input or
an unusable database/exchange (one line on stderr, nothing sent); 3 a trade needs attention
(PARKED for a human, or left unresolved: run ``pairexec recover``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fsm.cli import render
from fsm.cli.errors import CliError
from fsm.cli.recorder import CallRecorder
from fsm.cli.simulate import add_parser as add_simulate_parser
from fsm.cli.simulate import cmd_simulate
from fsm.cli.venue import PAPER, open_exchange
from fsm.config import EngineConfig
from fsm.engine import EngineError, ExecutionEngine
from fsm.machine import is_terminal
from fsm.request import InvalidRequest, PairTradeRequest, TradeOutcome
from fsm.states import TradeState
from persistence import StoreError, TradeRecord, TradeStore, head_revision, schema_revision
from persistence.urls import is_memory_sqlite, is_sqlite, redacted

EXIT_OK, EXIT_NOT_EXECUTED, EXIT_BAD_INPUT, EXIT_ATTENTION = 0, 1, 2, 3
DEFAULT_DB = "sqlite:///pairexec.db"

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _common(parser: argparse.ArgumentParser, exchange: bool = True) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("PAIREXEC_DB", DEFAULT_DB),
        help="trades database URL (env PAIREXEC_DB; default %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every transition")
    if not exchange:
        return
    parser.add_argument(
        "--exchange",
        default=os.environ.get("PAIREXEC_EXCHANGE", PAPER),
        help="'paper' (built-in simulator) or a ccxt exchange id; env PAIREXEC_EXCHANGE "
        "(default %(default)s). Keys: env PAIREXEC_API_KEY / PAIREXEC_API_SECRET",
    )
    parser.add_argument("--sandbox", action="store_true", help="use the exchange's testnet")
    parser.add_argument(
        "--paper-state", help="paper exchange state file (default: beside the DB, x.paper.db)"
    )
    parser.add_argument(
        "--chaos",
        action="append",
        default=[],
        metavar="SPEC",
        help="paper faults, e.g. 'ETH/USDT:timeout_after_accept=1;BTC/USDT:fill=0.6'",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic chaos")
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=EngineConfig.lease_seconds,
        help="how long a trade stays reserved to this process without renewal "
        "(default %(default)s); another process may take it over after",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pairexec",
        description="Crash-safe execution of two-leg (pair) trades.",
        epilog="exit codes: 0 ok, 1 trade not executed, 2 bad input, 3 needs attention",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trade = commands.add_parser("trade", help="execute one pair trade")
    trade.add_argument("pair_x", help="leg A symbol, e.g. BTC/USDT")
    trade.add_argument("side_x", help="buy or sell")
    trade.add_argument("amount_x", type=_number, help="leg A amount")
    trade.add_argument("pair_y", help="leg B symbol, e.g. ETH/USDT")
    trade.add_argument("side_y", help="buy or sell")
    trade.add_argument(
        "--hedge-ratio",
        type=_number,
        default=1.0,
        help="leg B amount = ratio x leg A filled (default 1.0)",
    )
    trade.add_argument("--signal-id", help="idempotency key: one trade per signal id, ever")
    _common(trade)

    recover = commands.add_parser("recover", help="resume every in-flight trade")
    _common(recover)

    worker = commands.add_parser(
        "worker", help="keep taking over and finishing in-flight trades until stopped"
    )
    worker.add_argument(
        "--poll",
        type=float,
        default=1.0,
        help="seconds between looks for trades to take over (default 1)",
    )
    _common(worker)

    status = commands.add_parser("status", help="list trades")
    status.add_argument("--state", type=_state, help="only trades in this state")
    status.add_argument("--limit", type=int, default=50, help="newest N (default 50)")
    _common(status, exchange=False)

    show = commands.add_parser("show", help="a trade's events and orders")
    show.add_argument("trade_id", help="trade id or its unique beginning")
    _common(show, exchange=False)

    db = commands.add_parser("db", help="database schema (alembic migrations)")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    _common(db_commands.add_parser("upgrade", help="migrate to the newest schema"), False)
    _common(db_commands.add_parser("current", help="show the schema revision"), False)

    demo = commands.add_parser(
        "demo", help="run the chaos scenarios on the paper exchange and print the results"
    )
    demo.add_argument("--workdir", help="keep the demo's databases here (default: temporary)")
    demo.add_argument("-v", "--verbose", action="store_true", help="log every transition")
    add_simulate_parser(commands)
    return parser


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _state(text: str) -> TradeState:
    try:
        return TradeState(text.upper())
    except ValueError:
        names = ", ".join(s.value for s in TradeState)
        raise argparse.ArgumentTypeError(f"unknown state {text!r} (one of {names})") from None


# --- commands --------------------------------------------------------------------------------


@asynccontextmanager
async def _engine(args: argparse.Namespace, exchange: Any) -> Any:
    if args.lease_seconds <= 0:
        raise CliError("--lease-seconds must be > 0")
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
        console.print(f"duplicate: {outcome.reason}")
        return EXIT_NOT_EXECUTED
    console.print(f"trade {outcome.trade_id}: {render.state_text(outcome.state)}")
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
    if args.poll <= 0:
        raise CliError("--poll must be > 0")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with _engine(args, _exchange(args)) as engine:
        console.print(f"worker {engine.owner}: watching {redacted(args.db)} (Ctrl-C to stop)")
        while not stop.is_set():
            for outcome in await engine.recover():
                console.print(
                    f"trade {outcome.trade_id[:12]}: {render.state_text(outcome.state)}"
                    + (f" — {outcome.reason}" if outcome.reason else "")
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), args.poll)
        console.print(f"worker {engine.owner}: stopping; unfinished trades are released")
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, not {args.limit}")
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
    if args.db_command == "upgrade":
        async with _opened(args.db, must_exist=False):
            pass
        console.print(f"{redacted(args.db)}: schema at {head_revision()} (newest)")
        return EXIT_OK
    _require_existing(args.db)
    current = await schema_revision(args.db)
    head = head_revision()
    note = "newest" if current == head else f"newest is {head}: run 'pairexec db upgrade'"
    console.print(f"{redacted(args.db)}: schema at {current or 'nothing (empty)'} ({note})")
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    from fsm.cli.demo import run_demo

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Everything imported so far (ccxt alone is ~190k objects) lives as long as the process:
    # exempt it from the cyclic GC, whose full passes over it cost ~70 ms each, mid-trade.
    gc.freeze()
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except (CliError, InvalidRequest, StoreError, EngineError) as exc:
        errors.print(f"pairexec: error: {exc}", markup=False)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        errors.print("pairexec: interrupted; in-flight trades resume with 'pairexec recover'")
        return 130


if __name__ == "__main__":
    sys.exit(main())
