"""Contract markets (swap, future): the domain keeps base units, the rules make decide's
floors whole contracts, inverse contracts are refused, and only unwinds reduce a position."""

from __future__ import annotations

import pytest

from pairexec import EngineConfig, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import Move, Submit, decide
from pairexec.fsm.markets import DECIMAL_PLACES, TICK_SIZE, MarketRules, rules_from_ccxt
from pairexec.fsm.model import OrderFacts, OrderStatus
from tests.support.records import trade

CFG = EngineConfig()


def ccxt_market(symbol: str, size: float | None, step: float, minimum: float, **kw) -> dict:
    """A ccxt ``load_markets()`` entry; ``size`` None: a spot market."""
    market = {
        "symbol": symbol,
        "precision": {"amount": step},
        "limits": {"amount": {"min": minimum}, "cost": {"min": None}},
        "contract": size is not None,
        "spot": size is None,
    }
    if size is not None:
        market.update(contractSize=size, linear=True, inverse=False, swap=True)
    market.update(kw)
    return market


SPOT = rules_from_ccxt(ccxt_market("BTC/USDT", None, 0.0001, 0.0001), TICK_SIZE)
# binance-style: whole contracts of 0.01 BTC; okx-style: 0.01-contract lots of 0.01 BTC
PERP = rules_from_ccxt(ccxt_market("BTC/USDT:USDT", 0.01, 1, 1), TICK_SIZE)
LOTS = rules_from_ccxt(ccxt_market("BTC/USDT:USDT", 0.01, 0.01, 0.01), TICK_SIZE)
MARKETS = {"BTC/USDT": SPOT, "BTC/USDT:USDT": PERP}


def test_contract_rules_are_in_base_units():
    assert not SPOT.is_contract and SPOT.amount_step == 0.0001
    assert PERP.is_contract and PERP.contract_size == 0.01 and PERP.contract_step == 1
    assert (PERP.amount_step, PERP.min_amount) == (0.01, 0.01)  # one contract = 0.01 BTC
    assert (LOTS.amount_step, LOTS.min_amount) == (0.0001, 0.0001)
    big = rules_from_ccxt(ccxt_market("DOGE/USDT:USDT", 1000, 0, 1), DECIMAL_PLACES)
    assert (big.amount_step, big.min_amount) == (1000.0, 1000.0)  # 0 decimals: 1 contract
    assert rules_from_ccxt({"contract": True}, TICK_SIZE).contract_size == 1.0  # ccxt's default


def test_contracts_and_base_units_convert_exactly():
    assert PERP.to_contracts(0.05) == 5.0 and PERP.to_base(5) == 0.05
    assert PERP.to_contracts(0.07) == 7.0  # 0.07 / 0.01 is 7.000000000000001 in floats
    assert LOTS.to_contracts(0.0537) == 5.37 and LOTS.to_base(5.37) == 0.0537
    assert PERP.to_contracts(0.0599) == 5.0  # floored to the contract step, never rounded up
    assert SPOT.to_contracts(0.0537) == 0.0537 and SPOT.to_base(0.0537) == 0.0537


@pytest.mark.parametrize("amount", [0.05, 0.07, 0.0537, 0.1234567, 1.23, 0.29, 3.0])
def test_decide_floor_in_base_units_is_a_whole_number_of_contracts(amount):
    for rules in (PERP, LOTS):
        contracts = rules.to_contracts(rules.floor(amount))
        steps = contracts / (rules.contract_step or 1)
        assert abs(steps - round(steps)) < 1e-9, (rules, amount, contracts)
        assert rules.to_base(contracts) == rules.floor(amount)


def test_spot_perp_basis_trade_sizes_leg_b_in_contracts_and_names_dust():
    order = OrderFacts(Leg.A, 1, "A1", "BTC/USDT", "buy", 0.0537, OrderStatus.CLOSED, 0.0537, 1)
    record = trade(
        TradeState.LEG_A_FILLED,
        [order],
        amount_x=0.0537,
        pair_y="BTC/USDT:USDT",
        hedge_ratio=1.0,
    )
    action = decide(record, CFG, markets=MARKETS)
    assert isinstance(action, Submit) and action.amount == 0.05  # 5 contracts, base units
    assert PERP.to_contracts(action.amount) == 5.0

    leg_b = OrderFacts(Leg.B, 1, "B1", "BTC/USDT:USDT", "sell", 0.05, OrderStatus.CLOSED, 0.05, 1)
    done = decide(
        trade(
            TradeState.LEG_B_SENT,
            [order, leg_b],
            amount_x=0.0537,
            pair_y="BTC/USDT:USDT",
        ),
        CFG,
        markets=MARKETS,
    )
    assert isinstance(done, Move) and "dust" in done.cause and "0.0037" in done.cause


def test_inverse_contracts_are_unsupported_and_say_so():
    inverse = rules_from_ccxt(
        ccxt_market("BTC/USD:BTC", 100, 1, 1, linear=False, inverse=True), TICK_SIZE
    )
    assert inverse.inverse and "BTC/USD:BTC" in (inverse.unsupported() or "")
    assert "inverse" in (inverse.unsupported() or "")
    assert PERP.unsupported() is None and SPOT.unsupported() is None


def test_only_an_unwind_reduces_a_position():
    def facts(leg: Leg) -> OrderFacts:
        return OrderFacts.intent(leg, 1, "c", "BTC/USDT:USDT", "sell", 0.05)

    assert facts(Leg.UNWIND).reduces_position
    assert not facts(Leg.A).reduces_position and not facts(Leg.B).reduces_position


def test_position_mode_is_checked():
    assert EngineConfig().position_mode == "oneway"
    assert EngineConfig(position_mode="hedge").position_mode == "hedge"
    for bad in ("Hedge", "net", 1):
        with pytest.raises(ValueError, match="position_mode"):
            EngineConfig(position_mode=bad)  # type: ignore[arg-type]


def test_spot_rules_compare_as_before():
    assert rules_from_ccxt(ccxt_market("X/Y", None, 0.001, 0.01), TICK_SIZE) == MarketRules(
        0.001, 0.01
    )
