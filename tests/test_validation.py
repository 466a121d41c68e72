"""Bad requests: a clear InvalidRequest naming the field, no trade stored, nothing sent."""

from __future__ import annotations

import math

import pytest

from fsm import EngineConfig, InvalidRequest, PairTradeRequest
from tests.fake_exchange import FakeExchange

GOOD = {
    "pair_x": "BTC/USDT",
    "side_x": "buy",
    "amount_x": 1.0,
    "pair_y": "ETH/USDT",
    "side_y": "sell",
    "hedge_ratio": 1.0,
}

BAD = [
    ("amount_x", 0, "amount_x"),
    ("amount_x", -1.0, "amount_x"),
    ("amount_x", math.nan, "amount_x"),
    ("amount_x", math.inf, "amount_x"),
    ("amount_x", "1.0", "amount_x"),
    ("amount_x", True, "amount_x"),
    ("hedge_ratio", 0.0, "hedge_ratio"),
    ("hedge_ratio", -2.0, "hedge_ratio"),
    ("hedge_ratio", math.nan, "hedge_ratio"),
    ("side_x", "long", "side_x"),
    ("side_y", "", "side_y"),
    ("side_y", None, "side_y"),
    ("pair_x", "", "pair_x"),
    ("pair_y", "   ", "pair_y"),
    ("pair_y", "BTC/USDT", "pair_x and pair_y"),
    ("signal_id", "", "signal_id"),
]


@pytest.mark.parametrize(("field", "value", "named"), BAD)
async def test_invalid_request_is_refused_before_anything_happens(
    engine, exchange: FakeExchange, field: str, value: object, named: str
):
    request = PairTradeRequest(**{**GOOD, field: value})  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest, match=named):
        await engine.execute_pair_trade(request)

    assert exchange.calls == []
    assert await engine.store.count_trades() == 0


def test_invalid_request_is_a_value_error():
    assert issubclass(InvalidRequest, ValueError)


def test_sides_and_symbols_are_normalised():
    request = PairTradeRequest(" BTC/USDT ", "BUY", 2, "ETH/USDT", "Sell", 3).validated()
    assert (request.pair_x, request.side_x, request.side_y) == ("BTC/USDT", "buy", "sell")
    assert isinstance(request.amount_x, float)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"abort_fill_ratio": 0.0},
        {"abort_fill_ratio": 0.9, "full_fill_ratio": 0.8},
        {"full_fill_ratio": 1.5},
        {"lookup_attempts": 0},
        {"call_timeout": 0},
        {"lookup_backoff": -1},
    ],
)
def test_bad_engine_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        EngineConfig(**kwargs)
