"""What the commands open from their checked arguments: the store, the engine, the exchange.

Imported once the command line is usable, and before ``pairexec.fsm.cli.main`` freezes the
garbage collector: it loads the store, which then lives as long as the process.
The engine and ccxt (1 s of imports) are loaded by ``main`` for the commands that open an
exchange only: ``status`` or ``show`` never wait for them.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.machine import is_terminal
from pairexec.fsm.request import InvalidRequest
from pairexec.fsm.settings import SettingsError
from pairexec.fsm.states import TradeState
from pairexec.persistence import StoreError, TradeStore
from pairexec.persistence.urls import is_memory_sqlite, is_sqlite

if TYPE_CHECKING:
    from pairexec.fsm.engine import ExecutionEngine


def interrupted() -> type[StoreError]:
    """The database failed under a trade already stored: orders may be out, exit 3 ("run
    recover"). Caught before ``refusals()``, of which it would otherwise be one (a
    StoreError). A function, called as an exception is caught: the engine's module (and ccxt
    with it) is not loaded for a command that opens no exchange."""
    from pairexec.fsm.engine import TradeInterrupted

    return TradeInterrupted


def refusals() -> tuple[type[Exception], ...]:
    """What a command raises when the input or the environment is unusable: exit 2, one line
    (a function for the reason ``interrupted`` is)."""
    from pairexec.fsm.engine import EngineError

    return (CliError, InvalidRequest, StoreError, EngineError)


def needs_attention(state: TradeState) -> bool:
    """PARKED waits for a human, and a trade left in flight for ``pairexec recover``: exit 3."""
    return state is TradeState.PARKED or not is_terminal(state)


@asynccontextmanager
async def engine(
    args: argparse.Namespace, exchange: Any, config: EngineConfig | None = None
) -> AsyncIterator[tuple[ExecutionEngine, TradeStore]]:
    """The engine on ``--db``, started, and its store (for the reads the engine does not
    offer); the exchange is closed with them. ``config``: the engine settings of the command
    (default: the config file's)."""
    from pairexec.fsm.alerts import command_alert
    from pairexec.fsm.engine import ExecutionEngine  # loaded by main before it freezes the GC

    trades = store(args.db)
    config = replace(config or args.settings.engine, lease_seconds=args.lease_seconds)
    alert = command_alert(args.on_parked) if args.on_parked else None
    started = ExecutionEngine(exchange, store=trades, config=config, on_attention=alert)
    try:
        await started.start()
        yield started, trades
    finally:
        await started.close()
        for venue in exchange.values() if isinstance(exchange, Mapping) else [exchange]:
            close = getattr(venue, "close", None)
            if close is not None:
                await close()


def exchange(args: argparse.Namespace) -> Any:
    """The exchange of --exchange, or the config file's venues (name -> exchange)."""
    if args.venues:
        chaos = ";".join(args.chaos) if args.chaos else None
        try:
            return args.settings.open_exchanges(args.db, chaos=chaos, seed=args.seed)
        except SettingsError as exc:
            raise CliError(str(exc)) from None
    from pairexec.fsm.cli.venue import open_exchange  # ccxt: see the module's docstring

    return open_exchange(
        args.exchange,
        db_url=args.db,
        paper_state=args.paper_state,
        chaos=args.chaos,
        seed=args.seed,
        sandbox=args.sandbox,
    )


def store(url: str) -> TradeStore:
    if is_memory_sqlite(url):
        raise CliError("an in-memory database would forget every trade: give --db a file URL")
    return TradeStore(url)


@asynccontextmanager
async def opened(url: str, must_exist: bool = True) -> AsyncIterator[TradeStore]:
    """The store on ``url``, open (and migrated) for the length of the block."""
    if must_exist:
        require_existing(url)
    trades = store(url)
    await trades.open()
    try:
        yield trades
    finally:
        await trades.close()


async def trade_id(store: TradeStore, given: str) -> str:
    """The one trade whose id is ``given`` or starts with it; CliError if none or several."""
    if not given.strip():
        raise CliError("give a trade id (or its beginning): an empty one matches every trade")
    ids = await store.trade_ids_starting_with(given)
    if not ids:
        raise CliError(f"no trade with id {given!r}")
    if len(ids) > 1:
        raise CliError(f"{given!r} is ambiguous: {', '.join(ids)}…")
    return ids[0]


def may_exist(url: str) -> bool:
    """False for a SQLite file that is not there yet (reading it would create it)."""
    path = _sqlite_file(url)
    return path is None or path.exists()


def require_existing(url: str) -> None:
    """Reading commands must not create an empty database at a mistyped path."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        raise CliError(f"no database at {path} (give --db, or run a trade first)")


def _sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for a server database or an in-memory one."""
    if is_sqlite(url) and not is_memory_sqlite(url):
        return Path(str(make_url(url).database))
    return None
