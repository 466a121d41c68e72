"""Amount steps and minimums: nothing is ever sent that the exchange must reject."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from pairexec import EngineConfig, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import GiveUp, Move, Resend, Submit, decide
from pairexec.fsm.markets import DECIMAL_PLACES, TICK_SIZE, MarketRules, rules_from_ccxt
from pairexec.fsm.model import OrderFacts, OrderStatus, TradeRecord
from tests.support.records import trade
from tests.support.stores import sql_store

CFG = EngineConfig()
MARKETS = {
    "BTC/USDT": MarketRules(amount_step=0.001, min_amount=0.01),
    "ETH/USDT": MarketRules(amount_step=0.01, min_amount=0.1),
}


def at(
    state: TradeState, orders: Iterable[OrderFacts] = (), amount: float = 1.0, ratio: float = 1.0
) -> TradeRecord:
    """Buy ``amount`` BTC, hedge with ``ratio`` x its fill in ETH: the trade in ``state``."""
    return trade(state, orders, amount_x=amount, hedge_ratio=ratio)


def order(leg: Leg, filled: float, amount: float, status=OrderStatus.CLOSED, attempt=1):
    return OrderFacts(leg, attempt, f"{leg.value}{attempt}", "S", "buy", amount, status, filled, 1)


def test_floor_forgives_float_noise_and_respects_step():
    rules = MarketRules(amount_step=0.0001, min_amount=0.0001)
    assert rules.floor(0.6 * 1.5) == 0.9
    assert rules.floor(0.12345678) == 0.1234
    assert rules.sendable(0.00005) is None
    assert MarketRules().sendable(0.3) == 0.3


def test_rules_from_ccxt_markets_in_both_precision_modes():
    market = {"precision": {"amount": 0.001}, "limits": {"amount": {"min": 0.01}}}
    assert rules_from_ccxt(market, TICK_SIZE) == MarketRules(0.001, 0.01)
    assert rules_from_ccxt({"precision": {"amount": 3}}, DECIMAL_PLACES).amount_step == 0.001
    assert rules_from_ccxt({}, TICK_SIZE) == MarketRules()


def test_leg_b_is_rounded_down_to_the_step():
    action = decide(
        at(TradeState.LEG_A_PARTIAL, [order(Leg.A, 0.8, 1.0)], ratio=1.2345), CFG, markets=MARKETS
    )
    assert isinstance(action, Submit) and action.amount == 0.98  # 0.9876 floored to 0.01


def test_hedge_below_leg_b_minimum_unwinds_leg_a():
    action = decide(
        at(TradeState.LEG_A_FILLED, [order(Leg.A, 1.0, 1.0)], ratio=0.05), CFG, markets=MARKETS
    )  # hedge 0.05 ETH < 0.1 minimum
    assert isinstance(action, Submit) and action.leg is Leg.UNWIND and action.amount == 1.0
    assert "below the market minimum" in action.cause


def test_leg_b_remainder_below_minimum_is_done_with_a_note():
    orders = [order(Leg.A, 1.0, 1.0), order(Leg.B, 0.95, 1.0, OrderStatus.CANCELED)]
    action = decide(at(TradeState.LEG_B_SENT, orders), CFG, markets=MARKETS)
    assert isinstance(action, Move) and action.trigger == "leg_b_filled"
    assert "below market minimum" in action.cause


def test_unhedged_part_below_minimum_parks_instead_of_sending_a_doomed_order():
    orders = [order(Leg.A, 0.005, 1.0)]  # 0.5% filled, below BTC minimum 0.01
    action = decide(at(TradeState.LEG_A_SENT, orders), CFG, markets=MARKETS)
    assert isinstance(action, Move) and action.trigger == "leg_a_too_small"
    rejected_b = [order(Leg.A, 1.0, 1.0), order(Leg.B, 0.0, 1.0, OrderStatus.REJECTED)]
    tiny = {**MARKETS, "BTC/USDT": MarketRules(amount_step=1.0, min_amount=2.0)}
    action = decide(at(TradeState.LEG_B_SENT, rejected_b), CFG, markets=tiny)
    assert isinstance(action, Move) and action.trigger == "park"


def test_unwind_remainder_below_minimum_finishes_the_unwind():
    orders = [
        order(Leg.A, 0.3, 1.0),
        order(Leg.UNWIND, 0.295, 0.3, OrderStatus.CANCELED),
    ]
    action = decide(at(TradeState.UNWINDING, orders), CFG, markets=MARKETS)
    assert isinstance(action, Move) and action.trigger == "unwound"


@pytest.mark.parametrize("amount", [0.0123456, 1.0])
def test_leg_a_amount_is_floored_before_it_is_persisted(amount):
    action = decide(at(TradeState.PENDING, amount=amount), CFG, markets=MARKETS)
    assert isinstance(action, Submit) and action.amount == MARKETS["BTC/USDT"].floor(amount)


async def test_hedge_below_minimum_after_a_partial_fill_unwinds_leg_a(tmp_path):
    """Found by the chaos simulation: from LEG_A_PARTIAL (or FILLED) the only safe move when
    leg B cannot be sent is to unwind leg A; the table once lacked that edge and the engine
    stopped with an IllegalTransition, leaving leg A naked."""
    from pairexec import ExecutionEngine, PairTradeRequest
    from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange

    markets = {s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT")}
    paper = PaperExchange(None, markets=markets, chaos="BTC/USDT@buy:fill=0.6")
    async with ExecutionEngine(paper, store=f"sqlite:///{tmp_path / 't.db'}") as engine:
        # 0.0002 BTC x 0.5 = 0.0001 ETH is tradable; 60% filled -> 0.00006 ETH is not
        outcome = await engine.execute_pair_trade(
            PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 0.5)
        )
    await paper.close()
    assert outcome.state is TradeState.ABORTED
    assert outcome.filled_y == 0 and outcome.unwound_x == outcome.filled_x == 0.00012


# --- minimum order value (notional) ----------------------------------------------------------

VALUED = {
    "BTC/USDT": MarketRules(amount_step=0.00001, min_amount=0.00001, min_cost=5.0),
    "ETH/USDT": MarketRules(amount_step=0.0001, min_amount=0.0001, min_cost=5.0),
}
PRICES = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0}


def priced(leg: Leg, filled: float, amount: float, symbol: str, average: float | None):
    return OrderFacts(
        leg, 1, f"{leg.value}1", symbol, "buy", amount, OrderStatus.CLOSED, filled, 1, "x", average
    )


def test_rules_from_ccxt_read_the_minimum_order_value():
    market = {"precision": {"amount": 0.001}, "limits": {"cost": {"min": 10}}}
    assert rules_from_ccxt(market, TICK_SIZE).min_cost == 10.0


def test_order_value_is_checked_when_a_price_is_known():
    rules = VALUED["ETH/USDT"]
    assert rules.sendable(0.001, 3_000.0) is None  # 3 USDT < 5
    assert rules.sendable(0.002, 3_000.0) == 0.002  # 6 USDT
    assert rules.sendable(0.001) == 0.001  # no price: left to the venue


def test_hedge_worth_less_than_the_minimum_order_value_unwinds_leg_a():
    # leg A 0.0002 BTC filled (12 USDT); hedge 0.0005 ETH x 3000 = 1.5 USDT < 5
    leg_a = [priced(Leg.A, 0.0002, 0.0002, "BTC/USDT", 60_000.0)]
    facts = at(TradeState.LEG_A_FILLED, leg_a, amount=0.0002, ratio=2.5)
    action = decide(facts, CFG, markets=VALUED, prices=PRICES)
    assert isinstance(action, Submit) and action.leg is Leg.UNWIND and action.amount == 0.0002
    assert "order value 1.5 < minimum 5" in action.cause
    # without a price for ETH the engine cannot tell: leg B goes out (the venue decides)
    unpriced = decide(facts, CFG, markets=VALUED)
    assert isinstance(unpriced, Submit) and unpriced.leg is Leg.B


def test_unwind_is_valued_at_leg_a_fill_price_and_parks_below_the_minimum():
    # 0.00008 BTC filled at 60,000 = 4.8 USDT: too small to unwind, whatever ``prices`` says
    action = decide(
        at(
            TradeState.LEG_A_PARTIAL,
            [priced(Leg.A, 0.00008, 0.0001, "BTC/USDT", 60_000.0)],
            amount=0.0001,
            ratio=0.01,
        ),
        CFG,
        markets=VALUED,
        prices={"BTC/USDT": 1e9, "ETH/USDT": 3_000.0},
    )
    assert isinstance(action, Move) and action.trigger == "park"
    assert "order value 4.8 < minimum 5" in action.cause


def test_an_absent_order_sized_before_its_price_was_known_is_not_resent():
    leg_a = priced(Leg.A, 0.0002, 0.0002, "BTC/USDT", 60_000.0)
    absent_b = OrderFacts(Leg.B, 1, "B1", "ETH/USDT", "sell", 0.0005, OrderStatus.ABSENT, 0, 1)
    facts = at(TradeState.RECONCILED, [leg_a, absent_b], amount=0.0002, ratio=2.5)
    action = decide(facts, CFG, markets=VALUED, prices=PRICES)
    assert isinstance(action, GiveUp) and "minimum order value" in action.cause
    resent = decide(facts, CFG, markets=VALUED)  # price unknown: resend
    assert isinstance(resent, Resend)


async def test_no_leg_b_order_below_the_minimum_order_value_reaches_the_paper_exchange(tmp_path):
    from pairexec import ExecutionEngine, PairTradeRequest
    from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange

    markets = {s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT")}  # both: min 5 USDT
    paper = PaperExchange(None, markets=markets)
    async with ExecutionEngine(paper, store=f"sqlite:///{tmp_path / 't.db'}") as engine:
        # leg A 0.0002 BTC = 12 USDT; hedge 0.0005 ETH = 1.5 USDT (above ETH's minimum amount)
        outcome = await engine.execute_pair_trade(
            PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 2.5)
        )
        record = await engine.store.load(outcome.trade_id)
        causes = [e.cause for e in await sql_store(engine).events(outcome.trade_id)]
    await paper.close()
    assert outcome.state is TradeState.ABORTED and outcome.unwound_x == 0.0002
    assert [o.leg for o in record.orders] == [Leg.A, Leg.UNWIND]  # no leg B order, not even one
    assert any("order value 1.5 < minimum 5" in cause for cause in causes)


async def test_a_leg_a_fill_reported_without_a_price_gets_its_value_from_the_ticker(tmp_path):
    """Leg A 40% filled (0.00008 BTC = 4.8 USDT, below the abort ratio) is too small to unwind;
    the venue's answer has no average price, so BTC's price must come from fetch_ticker."""
    from pairexec import ExecutionEngine, PairTradeRequest
    from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange

    class NoAverage(PaperExchange):
        async def create_order(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {**await super().create_order(*args, **kwargs), "average": None}

    markets = {s: DEFAULT_MARKETS[s] for s in ("BTC/USDT", "ETH/USDT")}
    paper = NoAverage(None, markets=markets, chaos="BTC/USDT@buy:fill=0.4")
    async with ExecutionEngine(paper, store=f"sqlite:///{tmp_path / 't.db'}") as engine:
        outcome = await engine.execute_pair_trade(
            PairTradeRequest("BTC/USDT", "buy", 0.0002, "ETH/USDT", "sell", 0.5)
        )
        record = await engine.store.load(outcome.trade_id)
    await paper.close()
    assert [(o.leg, o.filled, o.average) for o in record.orders] == [(Leg.A, 0.00008, None)]
    assert outcome.state is TradeState.ABORTED and "below BTC/USDT's minimum" in record.reason
