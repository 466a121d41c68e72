"""Durable storage of pair trades (SQLAlchemy models, the async trade store)."""

from pairexec.persistence.store import (
    Change,
    Duplicate,
    EventRecord,
    Lease,
    LeaseHolder,
    NewOrder,
    OrderUpdate,
    StaleTrade,
    StoreError,
    TradeRecord,
    TradeStore,
    Transition,
    after,
    head_revision,
    schema_revision,
)

__all__ = [
    "Change",
    "Duplicate",
    "EventRecord",
    "Lease",
    "LeaseHolder",
    "NewOrder",
    "OrderUpdate",
    "StaleTrade",
    "StoreError",
    "TradeRecord",
    "TradeStore",
    "Transition",
    "after",
    "head_revision",
    "schema_revision",
]
