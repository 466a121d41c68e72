"""``pairexec``: run pair trades, recover after a restart, inspect the trade database.

Exit codes: 0 success; 1 the trade did not execute (ABORTED, FAILED, duplicate); 2 bad input or
an unusable database/exchange (one line on stderr, nothing sent); 3 a trade needs attention
(PARKED for a human, or left unresolved: run ``pairexec recover``).

This module only parses and checks the command line, with light imports: a bad one is
refused in a fraction of a second, before the engine, the store and ccxt are loaded (by the
command's own module in ``pairexec.fsm.cli.commands``, imported only once the line is usable).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pairexec import __version__
from pairexec.fsm.cli import logs, options
from pairexec.fsm.cli.errors import EXIT_ATTENTION, EXIT_BAD_INPUT, CliError
from pairexec.fsm.cli.options import CliParser
from pairexec.fsm.states import TradeState

COMMANDS = tuple(options.APPLIES)
"""Each has its module in ``pairexec.fsm.cli.commands``, of the same name."""
SENDS_ORDERS = ("trade", "close", "recover", "worker")

MAX_RUNS = 1_000_000
"""simulate's: about eight hours on two cores; the seeds are listed up front, so 10**12 would
not even start (it would exhaust memory first)."""
MAX_JOBS = 1024
MAX_DEPTH = 12
"""prove's: the states grow about 3x per call; 12 is hours and gigabytes, not more."""
MAX_RESTARTS = 3
"""prove's cap on a path's drive ends: ``market_once`` is explored in full at 4 (none past
it), so 3 already covers all but a few dozen of its states; market legs and the ladder are
millions of states at 0."""
JSON_HELP = "print one JSON document on stdout instead (its keys: docs/cli.md, JSON output)"
WIDE_HELP = "every column in full, however wide (default: fit the terminal, 80 columns piped)"


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="pairexec",
        description="Crash-safe execution of two-leg (pair) trades. The options below are "
        "accepted before or after the command (pairexec --db X status = pairexec status --db X).",
        epilog="exit codes: 0 ok, 1 trade not executed, 2 bad input, 3 needs attention",
    )
    parser.add_argument("--version", action="version", version=f"pairexec {__version__}")
    options.add_before(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trade = commands.add_parser("trade", help="execute one pair trade")
    trade.add_argument("pair_x", help="leg A symbol, e.g. BTC/USDT")
    trade.add_argument("side_x", help="buy or sell")
    trade.add_argument("amount_x", type=options.number, help="leg A amount")
    trade.add_argument("pair_y", help="leg B symbol, e.g. ETH/USDT")
    trade.add_argument("side_y", help="buy or sell")
    trade.add_argument(
        "--hedge-ratio",
        type=options.number,
        default=1.0,
        help="leg B amount = ratio x leg A filled (default 1.0)",
    )
    trade.add_argument("--signal-id", help="idempotency key: one trade per signal id, ever")
    trade.add_argument(
        "--limit",
        dest="price_x",
        type=options.number,
        metavar="PRICE",
        help="leg A as a limit IOC at PRICE: a buy pays at most it, a sell gets at least it",
    )
    trade.add_argument(
        "--max-slippage-bps",
        type=options.number,
        metavar="BPS",
        help="every leg without a --limit as a limit IOC BPS basis points from the venue's "
        "best price (the config file's widening and cap kept)",
    )
    trade.add_argument("--json", action="store_true", help=JSON_HELP)
    options.add_after(trade, options.APPLIES["trade"])

    close = commands.add_parser(
        "close", help="close a DONE trade: its exit reverses what its legs hold"
    )
    close.add_argument("trade_id", help="trade id or its unique beginning")
    close.add_argument("--json", action="store_true", help=JSON_HELP)
    options.add_after(close, options.APPLIES["close"])

    recover = commands.add_parser("recover", help="resume every in-flight trade")
    recover.add_argument("--json", action="store_true", help=JSON_HELP)
    options.add_after(recover, options.APPLIES["recover"])

    worker = commands.add_parser(
        "worker", help="keep taking over and finishing in-flight trades until stopped"
    )
    worker.add_argument(
        "--poll",
        type=options.seconds,
        default=1.0,
        help="seconds between looks for trades to take over (default 1)",
    )
    worker.add_argument(
        "--metrics-port",
        type=options.between(0, 65535),
        metavar="PORT",
        help="serve Prometheus metrics at http://ADDR:PORT/metrics (needs pairexec[metrics])",
    )
    worker.add_argument(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="the address --metrics-port listens on (default 127.0.0.1)",
    )
    options.add_after(worker, options.APPLIES["worker"])

    status = commands.add_parser("status", help="list trades")
    status.add_argument("--state", type=_state, help="only trades in this state")
    status.add_argument("--limit", type=options.count, default=50, help="newest N (default 50)")
    status.add_argument("--json", action="store_true", help=JSON_HELP)
    status.add_argument("--wide", action="store_true", help=WIDE_HELP)
    status.add_argument(
        "--watch", action="store_true", help="redraw the table until Ctrl-C (exit 0)"
    )
    status.add_argument(
        "--interval",
        type=options.seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between redraws of --watch (default 2)",
    )
    options.add_after(status, options.APPLIES["status"])

    show = commands.add_parser("show", help="a trade's events and orders")
    show.add_argument("trade_id", help="trade id or its unique beginning")
    show.add_argument("--json", action="store_true", help=JSON_HELP)
    show.add_argument("--wide", action="store_true", help=WIDE_HELP)
    options.add_after(show, options.APPLIES["show"])

    resolve = commands.add_parser(
        "resolve", help="mark a PARKED trade settled by hand (frees its pair)"
    )
    resolve.add_argument("trade_id", help="trade id or its unique beginning")
    resolve.add_argument("--note", required=True, help="what was done about its legs")
    options.add_after(resolve, options.APPLIES["resolve"])

    db = commands.add_parser("db", help="database schema (alembic migrations)")
    options.add_after(db, options.APPLIES["db"])  # pairexec db --db X upgrade, too
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for action, text in (
        ("upgrade", "migrate to the newest schema"),
        ("current", "show the schema revision"),
    ):
        options.add_after(db_commands.add_parser(action, help=text), options.APPLIES["db"])

    demo = commands.add_parser(
        "demo", help="run the chaos scenarios on the paper exchange and print the results"
    )
    demo.add_argument("--workdir", help="keep the demo's databases here (default: temporary)")
    options.add_after(demo, options.APPLIES["demo"])

    # --seed and -v have no default here: they may also come before the command name, and
    # options.resolve merges the two and fills in the defaults (seed 0, not verbose).
    simulate = commands.add_parser(
        "simulate",
        help="run seeded chaos scenarios with engine crashes and check the invariants",
        description="``pairexec simulate``: many seeded chaos scenarios, engine crashes and "
        "recoveries, checked.",
    )
    simulate.add_argument(
        "--runs",
        type=options.between(1, MAX_RUNS),
        default=200,
        help=f"scenarios (default 200, at most {MAX_RUNS:,})",
    )
    simulate.add_argument(
        "--seed",
        type=int,
        default=argparse.SUPPRESS,
        help="seed of the first scenario (default 0)",
    )
    simulate.add_argument(
        "--jobs",
        type=options.between(0, MAX_JOBS),
        default=0,
        help="worker processes (default 0: one per CPU core)",
    )
    simulate.add_argument(
        "--postgres",
        metavar="URL",
        help="run each scenario on this PostgreSQL server instead of in-memory SQLite (its "
        "role must be allowed to create databases: each process makes and drops its own)",
    )
    simulate.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the full trace of failing seeds",
    )
    options.add_after(simulate, ("log_format",))  # -v and --seed are its own, above

    prove = commands.add_parser(
        "prove",
        help="explore every path of a trade (each venue answer, each crash) and check it",
    )
    prove.add_argument(
        "--depth",
        type=options.between(1, MAX_DEPTH),
        default=None,
        help=f"exchange calls a trade may make (default 6, no limit with --restarts; at most "
        f"{MAX_DEPTH}; each more is about 3x the time)",
    )
    prove.add_argument(
        "--restarts",
        type=options.between(0, MAX_RESTARTS),
        default=None,
        metavar="K",
        help=f"drive ends (crashes, stops for recover) a path may have, at most {MAX_RESTARTS}: "
        "the bound is then proven for a trade's first K+1 drives (default: no cap)",
    )
    prove.add_argument(
        "--policy",
        choices=("market", "limit_ladder", "market_once", "all"),
        default="all",
        help="the legs' order policies explored (default all)",
    )
    options.add_after(prove, options.APPLIES["prove"])
    return parser


def _state(text: str) -> TradeState:
    try:
        return TradeState(text.upper())
    except ValueError:
        names = ", ".join(s.value for s in TradeState)
        raise argparse.ArgumentTypeError(f"unknown state {text!r} (one of {names})") from None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except CliError as exc:
        _error(exc)
        return EXIT_BAD_INPUT
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        handlers=[logs.handler(args.log_format)],
    )
    # asyncio, the engine, the store, ccxt: only for a usable command line.
    import asyncio

    from pairexec.fsm.cli import context

    run: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = importlib.import_module(
        f"pairexec.fsm.cli.commands.{args.command}"
    ).run
    if options.APPLIES[args.command] is options.TRADING:  # it trades: the engine, ccxt now
        importlib.import_module("pairexec.fsm.engine")
        importlib.import_module("pairexec.fsm.cli.venue")
    # Everything imported so far (ccxt alone is ~190k objects) lives as long as the process:
    # exempt it from the cyclic GC, whose full passes over it cost ~70 ms each, mid-trade.
    gc.freeze()
    try:
        return asyncio.run(run(args))
    except context.interrupted() as exc:
        _error(exc)
        return EXIT_ATTENTION
    except context.refusals() as exc:
        _error(exc)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "pairexec: interrupted; in-flight trades resume with 'pairexec recover'",
            file=sys.stderr,
        )
        return 130
    except Exception:
        if args.command not in SENDS_ORDERS:
            raise
        # Python's own exit status for a crash is 1, which here means "the trade did not
        # execute": a supervisor would believe nothing was sent while leg A may be filled.
        traceback.print_exc()
        print(
            "pairexec: internal error (a bug, please report it): orders may have been sent; "
            "run 'pairexec recover'",
            file=sys.stderr,
        )
        return EXIT_ATTENTION


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, checked: CliError for anything that is not usable as given."""
    argv = list(argv)
    options.check_utf8(argv)
    return options.resolve(build_parser().parse_args(argv))


def _error(exc: Exception) -> None:
    """One line: a driver's message may go on with the SQL and a link to its docs. Printed
    as is (no rich console): it often quotes the user's text."""
    lines = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    print(f"pairexec: error: {lines[0]}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
