"""Deterministic client order ids.

The id is a function of (trade, leg, attempt) only, so a process that restarts derives the same
id it persisted before sending, and a resend after a confirmed-absent lookup reuses it: the
exchange itself then refuses a second copy. 32 lowercase hex characters is accepted by Binance
(<= 36), OKX (<= 32 alphanumerics), Bybit (<= 36) and Kraken.
"""

from __future__ import annotations

import enum
import hashlib


class Leg(str, enum.Enum):
    A = "A"
    B = "B"
    UNWIND = "UNWIND"


def client_order_id(trade_id: str, leg: Leg, attempt: int) -> str:
    digest = hashlib.sha256(f"pairexec:{trade_id}:{leg.value}:{attempt}".encode()).hexdigest()
    return digest[:32]
