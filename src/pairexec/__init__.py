"""pairexec: crash-safe execution of two-leg (pair) trades on crypto exchanges.

This is the one public import for bots::

    from pairexec import ExecutionEngine, EngineConfig, PairTradeRequest, TradeStore

Only the names in ``__all__`` are promised; the modules under ``pairexec.fsm``,
``pairexec.persistence`` and ``pairexec.migrations`` are the implementation.

The names are loaded on first use, not here: every ``pairexec`` command imports this package
first, and the engine pulls in ccxt and alembic (seconds), which ``pairexec --help`` or a
refused command line must not wait for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
"""The one place the version is written: pyproject.toml and ``pairexec --version`` read it."""

if TYPE_CHECKING:
    from pairexec.fsm.config import EngineConfig
    from pairexec.fsm.engine import ExecutionEngine
    from pairexec.fsm.events import EventsLost
    from pairexec.fsm.model import TradeEvent
    from pairexec.fsm.ports import StoreError
    from pairexec.fsm.pricing import OrderPolicy
    from pairexec.fsm.request import InvalidRequest, PairTradeRequest, TradeOutcome
    from pairexec.fsm.settings import Settings, SettingsError, load_config
    from pairexec.fsm.states import TradeState
    from pairexec.persistence.store import TradeStore

_WHERE = {
    "EngineConfig": "pairexec.fsm.config",
    "EventsLost": "pairexec.fsm.events",
    "ExecutionEngine": "pairexec.fsm.engine",
    "InvalidRequest": "pairexec.fsm.request",
    "OrderPolicy": "pairexec.fsm.pricing",
    "PairTradeRequest": "pairexec.fsm.request",
    "TradeEvent": "pairexec.fsm.model",
    "TradeOutcome": "pairexec.fsm.request",
    "Settings": "pairexec.fsm.settings",
    "SettingsError": "pairexec.fsm.settings",
    "load_config": "pairexec.fsm.settings",
    "TradeState": "pairexec.fsm.states",
    "StoreError": "pairexec.fsm.ports",
    "TradeStore": "pairexec.persistence.store",
}

__all__ = [
    "EngineConfig",
    "EventsLost",
    "ExecutionEngine",
    "InvalidRequest",
    "OrderPolicy",
    "PairTradeRequest",
    "Settings",
    "SettingsError",
    "StoreError",
    "TradeEvent",
    "TradeOutcome",
    "TradeState",
    "TradeStore",
    "__version__",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pairexec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
