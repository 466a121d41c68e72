"""Domain records built with the fewest words a test needs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone

from pairexec.fsm.model import OrderFacts, TradeRecord
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState

_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def trade(
    state: TradeState,
    orders: Iterable[OrderFacts] = (),
    *,
    pair_x: str = "BTC/USDT",
    side_x: str = "buy",
    amount_x: float = 1.0,
    pair_y: str = "ETH/USDT",
    side_y: str = "sell",
    hedge_ratio: float = 1.0,
) -> TradeRecord:
    """A stored trade in ``state`` with ``orders``, as ``decide`` reads it."""
    request = PairTradeRequest(pair_x, side_x, amount_x, pair_y, side_y, hedge_ratio)
    return TradeRecord("t", request, state, "", _EPOCH, _EPOCH, tuple(orders))
