"""Price-protected legs, the pure part: the band arithmetic and what ``decide`` makes of a policy.

What is checked here is decided without I/O: the limit a band gives per side and on the price
grid, the ladder of a leg's orders, what the cap turns a remainder into, and that no sequence
of partial fills makes leg B larger than the hedge (``tests/engine/test_price_protection.py``
takes the same rules through the engine and the paper exchange).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.decide import Move, Quote, Submit, decide
from pairexec.fsm.markets import MarketRules
from pairexec.fsm.model import OrderFacts, OrderStatus, TradeRecord, filled
from pairexec.fsm.pricing import OrderPolicy, limit_price, slippage_bps, within_band
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState, Trigger

IOC = OrderPolicy("limit_ioc", max_slippage_bps=20, widen_bps=30, cap_bps=60)
NOW = datetime(2026, 12, 3, tzinfo=timezone.utc)
REQUEST = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell", hedge_ratio=20.0)


# --- the band ------------------------------------------------------------------------------


def test_a_buy_limit_is_above_the_ask_and_a_sell_limit_below_the_bid() -> None:
    assert limit_price("buy", 100.0, 50, None) == pytest.approx(100.5)
    assert limit_price("sell", 100.0, 50, None) == pytest.approx(99.5)
    assert limit_price("buy", 3000.0, 0, 0.01) == 3000.0  # no band: at the best price itself


def test_rounding_to_the_tick_never_leaves_the_band() -> None:
    # 100 x 1.0013 = 100.13: a buy rounds down to 100.1, a sell's 99.87 up to 99.9
    assert limit_price("buy", 100.0, 13, 0.1) == pytest.approx(100.1)
    assert limit_price("sell", 100.0, 13, 0.1) == pytest.approx(99.9)
    rng = random.Random(7)
    for _ in range(2_000):
        tick = rng.choice((1e-8, 0.0001, 0.01, 0.5, 1.0, 5.0))
        reference = round(rng.uniform(0.001, 90_000) / tick) * tick or tick
        band = rng.uniform(0, 500)
        for side in ("buy", "sell"):
            limit = limit_price(side, reference, band, tick)
            bound = reference * (1 + band / 10_000 if side == "buy" else 1 - band / 10_000)
            if side == "buy":
                assert bound - tick * (1 + 1e-9) <= limit <= bound * (1 + 1e-12)
            else:
                assert bound * (1 - 1e-12) <= limit <= bound + tick * (1 + 1e-9)
            assert Decimal(repr(limit)) % Decimal(repr(tick)) == 0  # on the grid


def test_slippage_is_signed_by_side_and_the_band_check_follows_it() -> None:
    assert slippage_bps("buy", 100.0, 100.3) == pytest.approx(30)
    assert slippage_bps("sell", 100.0, 100.3) == pytest.approx(-30)  # sold above the bid
    assert within_band("buy", 100.5, 100.5) and not within_band("buy", 100.5, 100.51)
    assert within_band("sell", 99.5, 99.5) and not within_band("sell", 99.5, 99.49)


def test_the_ladder_widens_each_order_up_to_the_cap() -> None:
    assert [IOC.band_bps(n) for n in (1, 2, 3, 4)] == [20, 50, 60, 60]
    assert OrderPolicy("limit_ioc", 10, widen_bps=5).band_bps(3) == 20  # no cap


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"kind": "limit"}, "kind must be"),
        ({"after_cap": "retry"}, "after_cap must be"),
        ({"max_slippage_bps": -1}, "max_slippage_bps must be between"),
        ({"widen_bps": float("nan")}, "widen_bps must be between"),
        ({"max_slippage_bps": 6_000}, "max_slippage_bps must be between"),
        ({"max_slippage_bps": 50, "cap_bps": 40}, "cap_bps must be at least"),
        ({"max_slippage_bps": "50"}, "max_slippage_bps must be a number"),
    ],
)
def test_a_policy_refuses_what_it_cannot_mean(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        OrderPolicy(**kwargs)  # type: ignore[arg-type]


# --- decide with a policy -------------------------------------------------------------------


def trade(
    state: TradeState, *orders: OrderFacts, request: PairTradeRequest = REQUEST
) -> TradeRecord:
    return TradeRecord("t1", request, state, "", NOW, NOW, tuple(orders))


def order(leg: Leg, attempt: int, amount: float, filled_: float, **more: object) -> OrderFacts:
    side = "buy" if leg is Leg.A else "sell"
    symbol = "BTC/USDT" if leg is not Leg.B else "ETH/USDT"
    facts = OrderFacts(
        leg,
        attempt,
        client_order_id("t1", leg, attempt),
        symbol,
        side,
        amount,
        OrderStatus.CANCELED if filled_ < amount else OrderStatus.CLOSED,
        filled_,
        1,
        average=3000.0 if leg is not Leg.B else 150.0,
    )
    return replace(facts, **more)  # type: ignore[arg-type]


def test_a_limit_leg_a_asks_for_a_quote_then_is_priced_from_it() -> None:
    config = EngineConfig(leg_a=IOC)
    pending = trade(TradeState.PENDING)

    ask = decide(pending, config)
    assert ask == Quote("BTC/USDT", None, "buy")

    assert isinstance(ask, Quote)
    submit = decide(pending, config, quotes={ask.key: 3000.0})
    assert isinstance(submit, Submit) and submit.leg is Leg.A
    assert (submit.reference_price, submit.limit_price) == (3000.0, pytest.approx(3006.0))


def test_a_leg_a_without_a_quote_sends_nothing_and_fails() -> None:
    move = decide(
        trade(TradeState.PENDING), EngineConfig(leg_a=IOC), quotes={("BTC/USDT", "buy"): None}
    )
    assert isinstance(move, Move) and move.trigger is Trigger.NEVER_SENT
    assert "nothing sent" in move.cause


def test_the_requests_own_limit_needs_no_quote_whatever_the_policy() -> None:
    request = replace(REQUEST, price_x=2990.0)
    submit = decide(trade(TradeState.PENDING, request=request), EngineConfig())
    assert isinstance(submit, Submit)
    assert (submit.limit_price, submit.reference_price) == (2990.0, None)


def test_leg_b_is_priced_on_its_own_venue_and_side() -> None:
    request = replace(REQUEST, venue_x="spot", venue_y="perp")
    filled_a = trade(
        TradeState.LEG_A_FILLED, order(Leg.A, 1, 1.0, 1.0, venue="spot"), request=request
    )
    assert decide(filled_a, EngineConfig(leg_b=IOC)) == Quote("ETH/USDT", "perp", "sell")


def test_each_remainder_of_leg_b_is_priced_a_rung_wider() -> None:
    config = EngineConfig(leg_b=IOC, leg_attempts=3)
    a = order(Leg.A, 1, 1.0, 1.0)
    first = order(Leg.B, 1, 20.0, 8.0, limit_price=149.7, reference_price=150.0)
    record = trade(TradeState.LEG_B_SENT, a, first)
    quotes = {("ETH/USDT@", "sell"): 0.0}  # not this market's key: still to be asked for
    assert decide(record, config, quotes=quotes) == Quote("ETH/USDT", None, "sell")

    rest = decide(record, config, quotes={("ETH/USDT", "sell"): 149.0})

    assert isinstance(rest, Submit) and (rest.leg, rest.attempt, rest.amount) == (Leg.B, 2, 12.0)
    assert rest.limit_price == pytest.approx(149.0 * (1 - 50 / 10_000))  # 20 + 30 bps
    assert rest.reference_price == 149.0


@pytest.mark.parametrize(
    ("after_cap", "expected"),
    [("market", "market leg B"), ("park", "PARK"), ("unwind", "unwind")],
)
def test_the_cap_reached_leaves_the_remainder_to_the_policy(after_cap: str, expected: str) -> None:
    config = EngineConfig(leg_b=replace(IOC, after_cap=after_cap), leg_attempts=2)
    a = order(Leg.A, 1, 1.0, 1.0)
    b1 = order(Leg.B, 1, 20.0, 8.0, limit_price=149.7)
    b2 = order(Leg.B, 2, 12.0, 2.0, limit_price=149.2)
    record = trade(TradeState.LEG_B_SENT, a, b1, b2)

    action = decide(record, config, quotes={("BTC/USDT", "sell"): 2999.0})

    if expected == "market leg B":
        assert isinstance(action, Submit) and (action.leg, action.attempt) == (Leg.B, 3)
        assert action.amount == 10.0 and action.limit_price is None  # at market, once
        after = trade(TradeState.LEG_B_SENT, a, b1, b2, order(Leg.B, 3, 10.0, 4.0))
        unwind = decide(after, config, quotes={("BTC/USDT", "sell"): 2999.0})
        assert isinstance(unwind, Submit) and unwind.leg is Leg.UNWIND  # no second market order
    elif expected == "PARK":
        assert isinstance(action, Move) and action.trigger is Trigger.PARK
        assert "cap" in action.cause and "unhedged 0.5" in action.cause
    else:
        assert isinstance(action, Submit) and action.leg is Leg.UNWIND
        assert action.amount == pytest.approx(0.5) and action.limit_price is None  # unwind: market


def test_a_hedge_without_a_quote_parks_and_says_what_is_open() -> None:
    record = trade(TradeState.LEG_A_FILLED, order(Leg.A, 1, 1.0, 1.0))
    move = decide(record, EngineConfig(leg_b=IOC), quotes={("ETH/USDT", "sell"): None})
    assert isinstance(move, Move) and move.trigger is Trigger.PARK
    assert "no bid on ETH/USDT" in move.cause and "unhedged 1" in move.cause


def test_random_partial_fills_never_over_hedge() -> None:
    """Leg A and every limit order of leg B fill a random part (an IOC in a thin book): the
    leg B total never exceeds the ratio times leg A's fill, however the ladder goes."""
    rng = random.Random(15)
    rules = {"ETH/USDT": MarketRules(amount_step=0.001), "BTC/USDT": MarketRules(0.0001)}
    for _ in range(300):
        config = EngineConfig(
            leg_b=replace(IOC, after_cap=rng.choice(("market", "park", "unwind"))),
            leg_attempts=rng.randint(1, 4),
            abort_fill_ratio=0.1,
            full_fill_ratio=0.9,
        )
        a = order(Leg.A, 1, 1.0, round(rng.uniform(0.1, 1.0), 4))
        orders: list[OrderFacts] = [a]
        record = trade(TradeState.LEG_A_FILLED if a.filled >= 0.9 else TradeState.LEG_A_PARTIAL, a)
        for _ in range(10):
            action = decide(record, config, markets=rules, quotes={("ETH/USDT", "sell"): 150.0})
            if not isinstance(action, Submit) or action.leg is not Leg.B:
                break
            got = round(action.amount * rng.choice((0.0, rng.random(), 1.0)), 3)
            orders.append(order(Leg.B, action.attempt, action.amount, got))
            record = trade(TradeState.LEG_B_SENT, *orders)
            assert filled(orders, Leg.B) <= 20.0 * a.filled + 1e-9


def test_an_order_worth_the_minimum_only_at_market_is_not_sent_at_its_limit() -> None:
    """A venue values a limit order at its limit: a hedge sell of 0.034 ETH at 150 is worth
    5.1, at its limit 100 bps lower 5.049, above a minimum of 5; 0.0335 is not (4.97)."""
    rules = {"ETH/USDT": MarketRules(amount_step=0.0001, min_cost=5.0)}
    config = EngineConfig(leg_b=OrderPolicy("limit_ioc", 100), hedge_tolerance=1e-9)
    quotes = {("ETH/USDT", "sell"): 150.0, ("BTC/USDT", "sell"): 3000.0}
    for hedge, sent in ((0.034, True), (0.0335, False)):
        request = replace(REQUEST, hedge_ratio=hedge)
        record = trade(TradeState.LEG_A_FILLED, order(Leg.A, 1, 1.0, 1.0), request=request)
        action = decide(record, config, markets=rules, quotes=quotes)
        assert isinstance(action, Submit)
        assert action.leg is (Leg.B if sent else Leg.UNWIND), action
        if not sent:
            assert "minimum order value 5" in action.cause
