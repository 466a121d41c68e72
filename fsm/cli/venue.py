"""Which exchange the CLI trades on: the built-in paper exchange or a ccxt exchange.

Credentials come only from PAIREXEC_API_KEY / PAIREXEC_API_SECRET; they are handed to ccxt and
nowhere else (never printed, logged or stored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ccxt

from pairexec.fsm.cli.errors import CliError
from pairexec.fsm.settings import PAPER, SettingsError, open_paper, paper_state_path

__all__ = ["PAPER", "open_exchange", "paper_state_path"]


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
        path = Path(paper_state) if paper_state is not None else paper_state_path(db_url)
        try:
            return open_paper(
                path,
                db_url,
                chaos=";".join(chaos) if chaos else None,
                seed=seed,
                key="--paper-state",
            )
        except SettingsError as exc:
            raise CliError(str(exc)) from None
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
