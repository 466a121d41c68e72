"""Markets for real ccxt classes whose HTTP layer is canned: set, not loaded from a venue."""

from __future__ import annotations

from typing import Any


def set_btc_usdt_spot(exchange: Any, market_id: str, limits: dict[str, Any]) -> None:
    """Give ``exchange`` (a ccxt instance) one market, BTC/USDT spot, under the venue's own
    ``market_id`` ("BTCUSDT", "BTC_USDT"...), as ``load_markets`` would have."""
    exchange.set_markets(
        [
            exchange.safe_market_structure(
                {
                    "id": market_id,
                    "symbol": "BTC/USDT",
                    "base": "BTC",
                    "quote": "USDT",
                    "baseId": "BTC",
                    "quoteId": "USDT",
                    "type": "spot",
                    "spot": True,
                    "active": True,
                    "precision": {"amount": 0.0001, "price": 0.01},
                    "limits": limits,
                    "info": {},
                }
            )
        ]
    )
