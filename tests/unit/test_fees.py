"""Fees, net amounts and average prices in the domain (``pairexec.fsm.model``) and as ccxt
order dicts report them (``pairexec.fsm.venues.reports.parse_fees``)."""

from __future__ import annotations

import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    Fee,
    OrderFacts,
    OrderStatus,
    average_price,
    base_currency,
    fee_totals,
    net,
)
from pairexec.fsm.venues.reports import parse_fees, parse_order


def order(
    leg: Leg = Leg.A,
    side: str = "buy",
    filled: float = 0.1,
    fees: tuple[Fee, ...] = (),
    average: float | None = 60_000.0,
    symbol: str = "BTC/USDT",
    attempt: int = 1,
) -> OrderFacts:
    return OrderFacts(
        leg,
        attempt,
        f"cid-{leg.value}-{attempt}",
        symbol,
        side,
        1.0,
        OrderStatus.CLOSED,
        filled,
        1,
        "1",
        average,
        fees,
    )


def test_base_currency_of_spot_and_contract_symbols():
    assert base_currency("BTC/USDT") == "BTC"
    assert base_currency("ETH/USDT:USDT") == "ETH"


def test_a_buy_receives_its_fill_minus_the_fee_in_base():
    assert order(fees=(Fee("BTC", 0.0001),)).net == pytest.approx(0.0999)


def test_a_sell_paying_its_fee_in_base_gives_away_more():
    assert order(side="sell", fees=(Fee("BTC", 0.0001),)).net == pytest.approx(0.1001)


def test_fees_in_the_quote_or_another_coin_leave_the_base_amount_alone():
    fees = (Fee("USDT", 6.0), Fee("BNB", 0.01))
    assert order(fees=fees).net == 0.1
    assert order(side="sell", fees=fees).net == 0.1


def test_a_rebate_in_base_adds_to_what_a_buy_received():
    assert order(fees=(Fee("BTC", -0.00001),)).net == pytest.approx(0.10001)


def test_net_and_average_over_a_legs_orders():
    orders = [
        order(filled=0.1, average=60_000.0, fees=(Fee("BTC", 0.0001),)),
        order(filled=0.3, average=64_000.0, attempt=2),
        order(Leg.B, "sell", filled=1.5, average=3_000.0, symbol="ETH/USDT"),
    ]
    assert net(orders, Leg.A) == pytest.approx(0.3999)
    assert average_price(orders, Leg.A) == pytest.approx(63_000.0)
    assert average_price(orders, Leg.B) == 3_000.0
    assert average_price(orders, Leg.UNWIND) is None  # nothing filled


def test_the_average_is_unknown_when_a_filled_order_has_none():
    orders = [order(average=60_000.0), order(average=None, attempt=2)]
    assert average_price(orders, Leg.A) is None
    # an order that filled nothing does not count
    assert average_price([order(), order(filled=0.0, average=None, attempt=2)], Leg.A) == 60_000


def test_fee_totals_cover_every_order_unwinds_included():
    orders = [
        order(fees=(Fee("BTC", 0.0001), Fee("BNB", 0.002))),
        order(Leg.B, "sell", symbol="ETH/USDT", fees=(Fee("USDT", 4.5),)),
        order(Leg.UNWIND, "sell", fees=(Fee("USDT", 1.5), Fee("BNB", 0.001))),
    ]
    assert fee_totals(orders) == pytest.approx({"BTC": 0.0001, "BNB": 0.003, "USDT": 6.0})


# --- ccxt's fee / fees -----------------------------------------------------------------------


def test_fees_list_beside_fee_none_as_on_gate():
    fees = parse_fees(
        {
            "fee": None,
            "fees": [
                {"currency": "GT", "cost": 0.5},
                {"currency": "BTC", "cost": 0.0002},
                {"currency": "USDT", "cost": 0.0},
            ],
        }
    )
    assert fees == (Fee("GT", 0.5), Fee("BTC", 0.0002))


def test_fees_list_wins_and_fee_is_never_added_to_it():
    single = {"currency": "BTC", "cost": 0.0001}
    assert parse_fees({"fee": single, "fees": [single]}) == (Fee("BTC", 0.0001),)


def test_fee_alone_and_entries_in_one_currency_summed():
    assert parse_fees({"fee": {"currency": "USDT", "cost": "6"}, "fees": []}) == (Fee("USDT", 6.0),)
    summed = parse_fees(
        {"fees": [{"currency": "BTC", "cost": 1e-4}, {"currency": "BTC", "cost": 2e-4}]}
    )
    assert summed is not None and summed[0].cost == pytest.approx(3e-4)


def test_negative_costs_are_kept_as_rebates():
    assert parse_fees({"fee": {"currency": "USDT", "cost": -0.3}}) == (Fee("USDT", -0.3),)


@pytest.mark.parametrize(
    "reply",
    [
        {},
        {"fee": None, "fees": []},
        {"fee": {"currency": "BTC", "cost": None}},
        {"fees": [{"currency": None, "cost": 1.0}, {"currency": "BTC", "cost": "nan"}]},
    ],
)
def test_no_usable_fee_is_none_so_a_stored_one_is_kept(reply):
    assert parse_fees(reply) is None


def test_parse_order_carries_the_fees():
    facts = OrderFacts.intent(Leg.A, 1, "cid", "BTC/USDT", "buy", 1.0)
    report = parse_order(
        {
            "id": "9",
            "status": "closed",
            "filled": 0.1,
            "average": 60_000,
            "fee": {"currency": "BTC", "cost": 0.0001},
        },
        facts,
    )
    assert report.fees == (Fee("BTC", 0.0001),) and report.average == 60_000


# --- what leg B hedges and what an unwind sells (fsm/decide.py) --------------------------------

from datetime import datetime, timezone  # noqa: E402

from pairexec.fsm.config import EngineConfig  # noqa: E402
from pairexec.fsm.decide import Move, Submit, decide  # noqa: E402
from pairexec.fsm.markets import MarketRules  # noqa: E402
from pairexec.fsm.model import TradeRecord  # noqa: E402
from pairexec.fsm.request import PairTradeRequest  # noqa: E402
from pairexec.fsm.states import TradeState, Trigger  # noqa: E402

NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)
STEP = {"BTC/USDT": MarketRules(amount_step=0.0001), "ETH/USDT": MarketRules(amount_step=0.0001)}


def trade_after_leg_a(
    state: TradeState, filled: float, fee: float, side: str = "buy"
) -> TradeRecord:
    request = PairTradeRequest("BTC/USDT", side, 1.0, "ETH/USDT", "sell", 15.0).validated()
    leg_a = order(side=side, filled=filled, fees=(Fee("BTC", fee),))
    return TradeRecord("t1", request, state, "", NOW, NOW, (leg_a,))


def test_an_unwind_after_a_fee_in_base_sells_only_the_net_fill():
    record = trade_after_leg_a(TradeState.LEG_A_SENT, 0.1, 0.0001)
    action = decide(record, EngineConfig(), markets=STEP)
    assert isinstance(action, Submit) and action.side == "sell"
    assert action.amount == 0.0999  # not 0.1: the account holds 0.0999 BTC
    # with the gross basis too: an unwind never sells more than leg A's net
    action = decide(record, EngineConfig(hedge_basis="filled"), markets=STEP)
    assert isinstance(action, Submit) and action.amount == 0.0999


def test_the_unwind_of_the_net_fill_completes_the_abort():
    record = trade_after_leg_a(TradeState.LEG_A_SENT, 0.1, 0.0001)
    unwind = OrderFacts(
        Leg.UNWIND, 1, "u1", "BTC/USDT", "sell", 0.0999, OrderStatus.CLOSED, 0.0999, 1, "2"
    )
    done = TradeRecord(
        "t1", record.request, TradeState.UNWINDING, "", NOW, NOW, (*record.orders, unwind)
    )
    action = decide(done, EngineConfig(), markets=STEP)
    assert isinstance(action, Move) and action.trigger is Trigger.UNWOUND, action


def test_leg_b_hedges_the_net_fill_by_default_and_the_gross_one_when_asked():
    record = trade_after_leg_a(TradeState.LEG_A_FILLED, 1.0, 0.001)
    action = decide(record, EngineConfig(), markets=STEP)
    assert isinstance(action, Submit) and action.amount == pytest.approx(15 * 0.999)
    action = decide(record, EngineConfig(hedge_basis="filled"), markets=STEP)
    assert isinstance(action, Submit) and action.amount == 15.0


def test_a_sell_that_paid_its_fee_in_base_is_hedged_for_what_it_gave_away():
    record = trade_after_leg_a(TradeState.LEG_A_FILLED, 1.0, 0.001, side="sell")
    action = decide(record, EngineConfig(), markets=STEP)
    assert isinstance(action, Submit) and action.amount == pytest.approx(15 * 1.001)


@pytest.mark.parametrize("basis", ["gross", "", "NET", None, 1])
def test_hedge_basis_is_validated(basis):
    with pytest.raises(ValueError, match="hedge_basis"):
        EngineConfig(hedge_basis=basis)
