"""What the command line accepts, checked before anything is opened or sent.

Users type the shared options (``--db``, ``-v``, ``--exchange`` ...) before the command name
or after it, so both places accept them. The copies before the command store into their own
``before_*`` names and every copy defaults to ``argparse.SUPPRESS``: argparse copies whatever
a subcommand's parser produced over the main parser's values, so a default there would
silently undo ``pairexec --db X status``. ``resolve`` then merges the two (after the command
wins, ``--chaos`` accumulates), refuses an option the command has no use for, and fills in
the defaults, reading the environment (``PAIREXEC_DB``, ``PAIREXEC_EXCHANGE``) at that point.

Every refusal is a ``CliError``: one line on stderr and exit 2, never a traceback. The
imports are light on purpose (SQLAlchemy only for a URL, no persistence, no ccxt): a mistyped
command line is refused in a fraction of a second.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from pairexec.fsm import settings
from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.config import MAX_SECONDS, EngineConfig
from pairexec.fsm.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    DEFAULT_DB,
    PAPER,
    Settings,
    SettingsError,
    check_text,
)

DB_ENV, EXCHANGE_ENV = "PAIREXEC_DB", "PAIREXEC_EXCHANGE"
MAX_LIMIT = 2**63 - 1
"""The largest LIMIT SQLite and PostgreSQL take (a signed 64-bit integer); more overflows."""

BEFORE = "before_"
"""Prefix of the names the copies before the command store into (see the module doc)."""

DB_HELP = (
    "trades database: a URL (sqlite:///path/trades.db, postgresql://user@host/db) or a "
    "file path, taken as SQLite if it ends in .db, .sqlite or .sqlite3 or contains a '/' "
    f"(trades.db, data/trades, /var/lib/pairexec/trades.db); env {DB_ENV}; "
    f"default {DEFAULT_DB}"
)


class CliParser(argparse.ArgumentParser):
    """argparse's usage errors print the usage and then the error: two lines and more. Here
    they are one line like every other error, with where to look for the usage."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')")


# --- values ----------------------------------------------------------------------------------


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def seconds(text: str) -> float:
    """A duration: NaN would never compare, inf never end, and beyond a day the lease's
    wall-clock arithmetic overflows mid-trade (see ``pairexec.fsm.config.MAX_SECONDS``)."""
    value = number(text)
    if not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds > 0 and at most {MAX_SECONDS:g} (a day), not {text!r}"
        )
    return value


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def count(text: str) -> int:
    value = whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    if value > MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_LIMIT} (2**63 - 1), not {text}")
    return value


def between(low: int, high: int) -> Callable[[str], int]:
    """A whole number from ``low`` to ``high``, both included."""

    def bounded(text: str) -> int:
        value = whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}, not {text}")
        return value

    return bounded


def check_utf8(argv: Sequence[str]) -> None:
    """Python hands non-UTF-8 argv bytes over as lone surrogates; such text can be neither
    stored (SQLite raises mid-write, PostgreSQL refuses it) nor printed, so it is refused
    before it can reach either."""
    for arg in argv:
        _utf8(arg, "a command-line argument")


def _utf8(value: str, what: str) -> None:
    try:
        check_text(value, what)
    except SettingsError as exc:
        raise CliError(str(exc)) from None


# --- the database --------------------------------------------------------------------------


def database_url(value: str, source: str) -> str:
    """The database URL that ``value`` (from ``source``: the option or the variable) means:
    the config file's reading of it (``settings.database_url``), refused as a command line's
    error."""
    try:
        return settings.database_url(value, source)
    except SettingsError as exc:
        raise CliError(str(exc)) from None


# --- options shared by the commands --------------------------------------------------------


@dataclass(frozen=True)
class Common:
    """One shared option: its flags, argparse keywords, and its default (computed when the
    command line is resolved, so the environment is read then)."""

    flags: tuple[str, ...]
    dest: str
    default: Callable[[], Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def accumulates(self) -> bool:
        return self.kwargs.get("action") == "append"


COMMON = (
    Common(
        ("--config",),
        "config",
        lambda: None,
        {
            "metavar": "FILE",
            "help": f"config file (database, [engine], [venues.NAME]); env {CONFIG_ENV}; "
            f"default ./{DEFAULT_CONFIG} if it exists. Options given here override it",
        },
    ),
    Common(
        ("--db",),
        "db",
        lambda: os.environ.get(DB_ENV, DEFAULT_DB),
        {"metavar": "DB", "help": DB_HELP},
    ),
    Common(
        ("-v", "--verbose"),
        "verbose",
        lambda: False,
        {"action": "store_true", "help": "log every transition to stderr"},
    ),
    Common(
        ("--log-format",),
        "log_format",
        lambda: "text",
        {
            "choices": ("text", "json"),
            "help": "log lines on stderr as text (default) or as one JSON object each",
        },
    ),
    Common(
        ("--exchange",),
        "exchange",
        lambda: os.environ.get(EXCHANGE_ENV, PAPER),
        {
            "metavar": "NAME",
            "help": f"'{PAPER}' (built-in simulator) or a ccxt exchange id; env {EXCHANGE_ENV} "
            f"(default {PAPER}). Keys: env PAIREXEC_API_KEY / PAIREXEC_API_SECRET",
        },
    ),
    Common(
        ("--sandbox",),
        "sandbox",
        lambda: False,
        {"action": "store_true", "help": "use the exchange's testnet"},
    ),
    Common(
        ("--paper-state",),
        "paper_state",
        lambda: None,
        {
            "metavar": "FILE",
            "help": "paper exchange state file (default: beside the DB, x.paper.db)",
        },
    ),
    Common(
        ("--chaos",),
        "chaos",
        list,
        {
            "action": "append",
            "metavar": "SPEC",
            "help": "paper faults, e.g. 'ETH/USDT:timeout_after_accept=1;BTC/USDT:fill=0.6'",
        },
    ),
    Common(
        ("--seed",),
        "seed",
        lambda: 0,
        {
            "type": int,
            "metavar": "N",
            "help": "seed for probabilistic chaos (simulate: of the first scenario)",
        },
    ),
    Common(
        ("--on-parked",),
        "on_parked",
        lambda: None,
        {
            "metavar": "CMD",
            "help": "shell command run for each trade that ends PARKED or unresolved, with "
            "PAIREXEC_TRADE_ID, PAIREXEC_STATE, PAIREXEC_REASON set (config: [alerts] on_parked)",
        },
    ),
    Common(
        ("--lease-seconds",),
        "lease_seconds",
        lambda: EngineConfig.lease_seconds,
        {
            "type": seconds,
            "metavar": "SECONDS",
            "help": "how long a trade stays reserved to this process without renewal "
            f"(default {EngineConfig.lease_seconds:g}); another process may take it over after",
        },
    ),
)
BY_DEST = {option.dest: option for option in COMMON}

LOGGING = ("verbose", "log_format")
DATABASE = ("config", "db", *LOGGING)
TRADING = (
    *DATABASE,
    *("exchange", "sandbox", "paper_state", "chaos", "seed", "lease_seconds", "on_parked"),
)
APPLIES: dict[str, tuple[str, ...]] = {
    "trade": TRADING,
    "close": TRADING,
    "recover": TRADING,
    "worker": TRADING,
    "status": DATABASE,
    "show": DATABASE,
    "resolve": DATABASE,
    "db": DATABASE,
    "demo": LOGGING,
    "simulate": (*LOGGING, "seed"),
    "prove": LOGGING,
}
"""Which shared options each command takes. simulate's ``--seed`` and ``-v`` are its own (in
``pairexec.fsm.cli.main``) but share the names, so ``pairexec -v simulate`` works too. Every
command logs, so every command takes ``-v`` and ``--log-format``."""


def add_before(parser: argparse.ArgumentParser) -> None:
    """The shared options on the main parser, before the command name."""
    everywhere = parser.add_argument_group("options of every command (before or after it)")
    trading = parser.add_argument_group(
        "options of trade, close, recover and worker (before or after)"
    )
    for option in COMMON:
        group = everywhere if option.dest in DATABASE else trading
        group.add_argument(
            *option.flags, dest=BEFORE + option.dest, default=argparse.SUPPRESS, **option.kwargs
        )


def add_after(parser: argparse.ArgumentParser, dests: Sequence[str]) -> None:
    """The shared options ``dests`` on a command's parser, after its name."""
    for dest in dests:
        option = BY_DEST[dest]
        parser.add_argument(
            *option.flags, dest=option.dest, default=argparse.SUPPRESS, **option.kwargs
        )


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Merge the options given before and after the command, refuse the ones the command
    does not take, fill in the defaults, and turn ``--db`` into a database URL."""
    applies = APPLIES[args.command]
    given = vars(args)
    db_source = "--db"
    explicit: set[str] = set()
    """The options given on the command line (or, for --db and --exchange, by variable): the
    config file's values apply to the others."""
    for option in COMMON:
        before = given.pop(BEFORE + option.dest, argparse.SUPPRESS)
        after = given.get(option.dest, argparse.SUPPRESS)
        if option.dest not in applies:
            if before is not argparse.SUPPRESS:
                raise CliError(f"{option.flags[-1]} does not apply to 'pairexec {args.command}'")
            continue
        if option.accumulates:
            value: Any = [*_listed(before), *_listed(after)]
        elif after is not argparse.SUPPRESS:
            value = after
        elif before is not argparse.SUPPRESS:
            value = before
        else:
            value = option.default()
            if option.dest == "db" and DB_ENV in os.environ:
                db_source = DB_ENV
            variable = {"db": DB_ENV, "exchange": EXCHANGE_ENV}.get(option.dest)
            if variable is None or variable not in os.environ:  # a default: the file's first
                given[option.dest] = value
                continue
        explicit.add(option.dest)
        given[option.dest] = value
    if "config" in applies:
        args.settings = _settings(args.config)
        if "db" not in explicit and args.settings.database_url is not None:
            args.db, db_source = args.settings.database_url, f"{args.settings.source}: database"
        if "lease_seconds" in applies and "lease_seconds" not in explicit:
            args.lease_seconds = args.settings.engine.lease_seconds
        if "on_parked" in applies and "on_parked" not in explicit:
            args.on_parked = args.settings.on_parked
        # The file's venues unless an exchange is named here: --exchange is one exchange.
        args.venues = "exchange" in applies and "exchange" not in explicit
        args.venues = args.venues and bool(args.settings.venues)
    if "db" in applies:
        args.db = database_url(args.db, db_source)
    return args


def _settings(given: str | None) -> Settings:
    """The config file's settings (--config, PAIREXEC_CONFIG, ./pairexec.toml), or none."""
    from pairexec.fsm.settings import find_config, read

    try:
        path = find_config(given)
        return read(path) if path is not None else Settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _listed(value: Any) -> list[str]:
    return [] if value is argparse.SUPPRESS else list(value)
