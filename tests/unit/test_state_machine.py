"""The transition table, its diagram in docs/state-machine.md, and the pure decision logic."""

from __future__ import annotations

import asyncio

import pytest
from transitions.extensions.asyncio import AsyncMachine

from pairexec import EngineConfig, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import GiveUp, Lookup, Move, Resend, Settle, Submit, decide
from pairexec.fsm.diagram import mermaid
from pairexec.fsm.machine import IllegalTransition, next_state
from pairexec.fsm.model import OrderFacts, OrderStatus, TradeRecord
from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, Trigger
from tests.support.paths import ROOT
from tests.support.records import trade

STATE_MACHINE_DOC = ROOT / "docs" / "state-machine.md"


def test_docs_diagram_is_the_transition_table():
    text = STATE_MACHINE_DOC.read_text()
    assert f"```mermaid\n{mermaid()}\n```" in text, (
        "run: python -m pairexec.fsm.diagram, paste in docs/state-machine.md"
    )
    for state in TradeState:
        assert f"`{state.value}`" in text, f"docs/state-machine.md does not describe {state.value}"


def test_terminal_states_have_no_way_out_but_a_humans_resolve():
    """The engine stops at a terminal state for good; only a human moves a PARKED trade on."""
    for trigger, sources, dest in TRANSITIONS:
        if trigger is Trigger.RESOLVE:
            assert sources == [TradeState.PARKED] and dest is TradeState.RESOLVED
            continue
        assert not set(sources) & TERMINAL_STATES


def test_every_state_is_reachable_and_every_active_state_can_finish():
    edges = {(s, d) for _t, sources, d in TRANSITIONS for s in sources}
    reachable = {TradeState.PENDING}
    while True:
        more = {d for s, d in edges if s in reachable} - reachable
        if not more:
            break
        reachable |= more
    assert reachable == set(TradeState)
    for state in set(TradeState) - TERMINAL_STATES:
        seen, frontier = {state}, {state}
        while frontier:
            frontier = {d for s, d in edges if s in frontier} - seen
            seen |= frontier
        assert seen & TERMINAL_STATES, state


def test_illegal_transitions_raise():
    assert next_state(TradeState.PENDING, "send_leg_a") is TradeState.LEG_A_SENT
    with pytest.raises(IllegalTransition):
        next_state(TradeState.DONE, "send_leg_b")
    with pytest.raises(IllegalTransition):
        next_state(TradeState.PENDING, "send_leg_b")  # no leg B before leg A
    with pytest.raises(IllegalTransition):
        next_state(TradeState.UNKNOWN, "send_leg_a")  # never send while unknown
    with pytest.raises(IllegalTransition):
        next_state(TradeState.PENDING, "no_such_trigger")


async def test_async_machine_interrupts_a_running_transition():
    """Why the engine does not run trades as AsyncMachine models: a second trigger on the same
    model cancels the first transition's callbacks mid-way. Were that callback a create_order,
    the order's existence would be unknown. The engine keeps one driver per trade instead
    (tests/engine/test_recovery.py::test_recover_joins_a_trade_this_engine_is_already_driving)."""
    finished: list[str] = []

    async def send_order() -> None:
        await asyncio.sleep(0.05)
        finished.append("order sent")

    class Trade:
        pass

    trade = Trade()
    AsyncMachine(
        model=trade,
        states=["a", "b", "c"],
        transitions=[
            {"trigger": "go", "source": "a", "dest": "b", "before": send_order},
            ["other", "a", "c"],
        ],
        initial="a",
    )
    first = asyncio.create_task(trade.go())  # type: ignore[attr-defined]
    await asyncio.sleep(0.01)
    await trade.other()  # type: ignore[attr-defined]
    assert await first is False and finished == [] and trade.state == "c"  # type: ignore[attr-defined]


# --- decide(): pure, so each rule is one small test ---------------------------------------

CFG = EngineConfig()


def order(leg=Leg.A, status=OrderStatus.CLOSED, filled=2.0, amount=2.0, attempt=1, sends=1):
    return OrderFacts(
        leg, attempt, f"cid-{leg.value}-{attempt}", "X", "buy", amount, status, filled, sends
    )


def at(state: TradeState, *orders: OrderFacts) -> TradeRecord:
    """Buy 2 BTC, hedge with 1.5 x its fill in ETH: the trade in ``state`` with ``orders``."""
    return trade(state, orders, amount_x=2.0, hedge_ratio=1.5)


@pytest.mark.parametrize(
    ("filled", "trigger"),
    [
        (2.0, "leg_a_filled"),
        (1.9, "leg_a_filled"),
        (1.89, "leg_a_partial"),
        (1.0, "leg_a_partial"),
        (0.99, "unwind"),
        (0.0, "leg_a_failed"),
    ],
)
def test_leg_a_fill_ratio_boundaries(filled, trigger):
    action = decide(at(TradeState.LEG_A_SENT, order(filled=filled)), CFG)
    assert getattr(action, "trigger", None) == trigger


def test_unknown_or_unconfirmed_orders_are_only_looked_up():
    for status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        assert isinstance(decide(at(TradeState.UNKNOWN, order(status=status)), CFG), Lookup)
        assert isinstance(decide(at(TradeState.LEG_A_SENT, order(status=status)), CFG), Lookup)


def test_absent_order_is_resent_with_its_own_id_until_the_limit():
    absent = order(status=OrderStatus.ABSENT, filled=0, sends=1)
    action = decide(at(TradeState.RECONCILED, absent), CFG)
    assert isinstance(action, Resend) and action.order is absent
    worn = order(status=OrderStatus.ABSENT, filled=0, sends=CFG.max_sends_per_order)
    assert isinstance(decide(at(TradeState.RECONCILED, worn), CFG), GiveUp)


def test_open_order_is_settled():
    assert isinstance(
        decide(at(TradeState.LEG_A_SENT, order(status=OrderStatus.OPEN, filled=1)), CFG), Settle
    )


def test_leg_b_hedges_actual_fill_times_ratio():
    action = decide(at(TradeState.LEG_A_PARTIAL, order(filled=1.2)), CFG)
    assert isinstance(action, Submit) and action.leg is Leg.B
    assert action.amount == pytest.approx(1.8) and action.symbol == "ETH/USDT"


def test_pending_trade_is_sent_live_but_failed_on_resume():
    assert isinstance(decide(at(TradeState.PENDING), CFG), Submit)
    resumed = decide(at(TradeState.PENDING), CFG, resuming=True)
    assert isinstance(resumed, Move) and resumed.trigger == "never_sent"


def test_terminal_trade_has_nothing_to_do():
    for state in TERMINAL_STATES:
        assert decide(at(state, order()), CFG) is None


def test_the_diagram_draws_every_row_of_the_table():
    """The doc check above compares the doc with the generator; this one keeps the generator
    honest: a row it skipped (say, from a terminal state) would vanish from both."""
    drawn = mermaid().splitlines()
    for trigger, sources, dest in TRANSITIONS:
        if trigger is Trigger.PARK:
            assert any(line.strip().startswith(f"note right of {dest.value}") for line in drawn)
            continue
        for source in sources:
            assert f"    {source.value} --> {dest.value}: {trigger}" in drawn
