"""Bad requests: a clear InvalidRequest naming the field, no trade stored, nothing sent."""

from __future__ import annotations

import dataclasses
import math

import pytest

from pairexec import EngineConfig, InvalidRequest, PairTradeRequest
from pairexec.fsm.request import MAX_AMOUNT
from tests.support.fake_exchange import FakeExchange

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
    pytest.param("amount_x", 10**400, "amount_x", id="amount_x-10**400"),  # OverflowError
    ("amount_x", MAX_AMOUNT * 10, "amount_x"),
    ("hedge_ratio", 1e308, "hedge_ratio x amount_x"),  # leg B = 1e308 x fill: inf
    ("hedge_ratio", math.inf, "hedge_ratio"),
    ("signal_id", "a\udcffb", "signal_id is not valid UTF-8"),  # undecodable argv byte
    ("signal_id", "\ud800", "signal_id is not valid UTF-8"),  # a lone surrogate
    ("signal_id", "s1\nfake line", "signal_id contains a control character"),
    ("pair_x", "BTC\udcff/USDT", "pair_x is not valid UTF-8"),
    ("pair_y", "ETH/USDT\x1b[31m", "pair_y contains a control character"),
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


def test_the_largest_sane_amounts_are_accepted():
    request = PairTradeRequest("BTC/USDT", "buy", MAX_AMOUNT, "ETH/USDT", "sell", 1.0)
    assert request.validated().amount_x == MAX_AMOUNT
    assert PairTradeRequest("A/B", "buy", 10**6, "C/D", "sell", 1e9).validated().hedge_ratio == 1e9


def test_a_leg_b_that_underflows_to_zero_is_refused():
    with pytest.raises(InvalidRequest, match="hedge_ratio x amount_x"):
        PairTradeRequest("BTC/USDT", "buy", 1e-200, "ETH/USDT", "sell", 1e-200).validated()


def test_unicode_text_that_is_valid_is_kept():
    request = PairTradeRequest("BTC/USDT", "buy", 1, "ETH/USDT", "sell", signal_id="策略-7 [/x]")
    assert request.validated().signal_id == "策略-7 [/x]"


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


FLOAT_FIELDS = [f.name for f in dataclasses.fields(EngineConfig) if f.type in ("float", float)]


def test_engine_config_has_float_fields_to_check():
    assert {"lease_seconds", "call_timeout", "full_fill_ratio"} <= set(FLOAT_FIELDS)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, pytest.param(10**400, id="10**400")]
)
def test_engine_config_refuses_non_finite_floats_naming_the_field(name: str, value: object):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number"):
        EngineConfig(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"lease_seconds": 1e300}, "lease_seconds must be at most"),  # timedelta overflows
        ({"call_timeout": 86_401}, "call_timeout must be at most"),
        ({"lookup_attempts": 2.5}, "lookup_attempts must be an integer"),
        ({"unwind_on_abort": "no"}, "unwind_on_abort must be True or False"),
        ({"leg_b": "limit_ioc"}, "leg_b must be an OrderPolicy"),
        ({"settle_timeout": "2"}, "settle_timeout must be a number"),
        ({"hedge_tolerance": -1e-9}, "hedge_tolerance"),
    ],
)
def test_engine_config_refuses_wrong_types_and_absurd_durations(kwargs: dict, named: str):
    with pytest.raises(ValueError, match=named):
        EngineConfig(**kwargs)


def test_backoff_of_many_attempts_stays_at_the_cap():
    assert EngineConfig(lookup_attempts=5000).backoff(5000) == EngineConfig().max_backoff
