"""An engine's store as the SQL ``TradeStore`` (the engine itself knows only the port)."""

from __future__ import annotations

from typing import Any

from pairexec.persistence import TradeStore


def sql_store(engine: Any) -> TradeStore:
    """``engine.store``, which these tests built as a ``TradeStore`` and read beyond the port
    (events, counts, the runner)."""
    store = engine.store
    assert isinstance(store, TradeStore), f"not a SQL store: {store!r}"
    return store
