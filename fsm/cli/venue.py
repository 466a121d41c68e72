"""Which exchange the CLI trades on: the built-in paper exchange or a ccxt exchange.

Credentials come only from PAIREXEC_API_KEY / PAIREXEC_API_SECRET; they are handed to ccxt and
nowhere else (never printed, logged or stored).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import ccxt
from sqlalchemy.engine import make_url

from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.settings import PAPER, paper_state_path
from pairexec.persistence.urls import is_memory_sqlite, is_sqlite

__all__ = ["PAPER", "open_exchange", "paper_state_path"]


def _same_file(path: Path, db_url: str) -> bool:
    """Whether ``path`` is the SQLite trades database: the paper exchange would refuse it,
    but only after switching its journal mode, and a store sharing it would see the paper
    exchange's tables as its own."""
    if not is_sqlite(db_url) or is_memory_sqlite(db_url):
        return False
    db = Path(str(make_url(db_url).database))
    if path.exists() and db.exists():
        return os.path.samefile(path, db)
    return path.resolve() == db.resolve()


def open_exchange(
    name: str,
    *,
    db_url: str,
    paper_state: str | None = None,
    chaos: list[str] | None = None,
    seed: int = 0,
    sandbox: bool = False,
) -> Any:
    if name == PAPER:
        from pairexec.fsm.paper import ChaosConfig, PaperExchange

        try:
            config = ChaosConfig.parse(";".join(chaos), seed=seed) if chaos else None
        except ValueError as exc:
            raise CliError(f"bad --chaos: {exc}") from exc
        path = Path(paper_state) if paper_state is not None else paper_state_path(db_url)
        if not path.parent.exists():
            raise CliError(f"paper exchange state directory {path.parent} does not exist")
        if _same_file(path, db_url):
            raise CliError(
                f"--paper-state {path} is the trades database itself: the paper exchange "
                "needs a file of its own (default: beside the database, x.paper.db)"
            )
        try:
            return PaperExchange(path, chaos=config, seed=seed)
        except (sqlite3.Error, ValueError) as exc:  # not SQLite, or another program's SQLite
            raise CliError(f"paper exchange state {path} is unusable: {exc}") from None
    if chaos:
        raise CliError("--chaos applies only to the paper exchange")
    if name not in ccxt.exchanges:
        raise CliError(f"unknown exchange {name!r}: use 'paper' or a ccxt exchange id (binance...)")
    import ccxt.async_support as ccxt_async

    key = os.environ.get("PAIREXEC_API_KEY")
    secret = os.environ.get("PAIREXEC_API_SECRET")
    exchange = getattr(ccxt_async, name)({"apiKey": key, "secret": secret, "enableRateLimit": True})
    if sandbox:
        exchange.set_sandbox_mode(True)
    return exchange
