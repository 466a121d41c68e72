"""Durable storage of pair trades: the SQL store that implements ``pairexec.fsm.ports.Store``.

The records it stores and returns are the domain's (``pairexec.fsm.model``); this package adds
only how they sit in SQLite or PostgreSQL.
"""

from pairexec.fsm.ports import StaleTrade, StoreError
from pairexec.persistence.schema import head_revision, schema_revision
from pairexec.persistence.store import TradeStore

__all__ = [
    "StaleTrade",
    "StoreError",
    "TradeStore",
    "head_revision",
    "schema_revision",
]
