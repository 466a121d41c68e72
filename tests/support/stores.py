"""An engine's store as the SQL ``TradeStore`` (the engine itself knows only the port)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pairexec.persistence import TradeStore


def sql_store(engine: Any) -> TradeStore:
    """``engine.store``, which these tests built as a ``TradeStore`` and read beyond the port
    (events, counts, the runner)."""
    store = engine.store
    assert isinstance(store, TradeStore), f"not a SQL store: {store!r}"
    return store


async def insert_trades(
    store: TradeStore,
    n: int,
    state: str,
    now: datetime,
    *,
    owner: str | None = None,
    lease_expires_at: datetime | None = None,
) -> None:
    """``n`` trades ``t1``..``tn`` in ``state``, written by one SQL statement (tens of
    thousands in a second, where ``create_trade`` would take minutes)."""
    count = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})"
    await store._run(
        lambda db: db.execute(
            "INSERT INTO trades (id, pair_x, side_x, amount_x, pair_y, side_y, hedge_ratio,"
            " state, reason, version, owner, lease_expires_at, created_at, updated_at) "
            f"{count} SELECT 't' || i, 'X/USDT', 'buy', 1, 'Y/USDT', 'sell', 1, :state, '',"
            " 0, :owner, :expires, :now, :now FROM n",
            {"state": state, "owner": owner, "expires": lease_expires_at, "now": now},
        )
    )
