"""Validating trade transitions with one shared ``transitions.Machine``.

Why not a machine (or an ``AsyncMachine``) per trade: building one costs far more than the
trade's own bookkeeping (measured in ``bench/fsm_cost.py``), and ``AsyncMachine`` cancels a
model's running transition when another trigger arrives on the same model, which would let a
late callback interrupt an order in flight. Instead the engine runs exactly one driver per
trade (``pairexec.fsm.engine``), does its I/O outside the machine, and asks this module only
whether a trigger is allowed from the trade's current state and where it leads. The store then
applies the move with a compare-and-set on the persisted state, so even two processes cannot
both apply a transition from the same state.
"""

from __future__ import annotations

import functools

from transitions import Machine

from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, TradeState, Trigger


class IllegalTransition(RuntimeError):
    """A trigger was fired from a state the table does not allow it from: a bug, never data."""


def _build_machine() -> Machine:
    return Machine(
        model=None,
        states=TradeState,
        transitions=[[trigger, list(sources), dest] for trigger, sources, dest in TRANSITIONS],
        initial=TradeState.PENDING,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )


_MACHINE = _build_machine()


@functools.cache  # asked at every step; the table is fixed (an IllegalTransition is not cached)
def next_state(state: TradeState, trigger: Trigger | str) -> TradeState:
    """Where ``trigger`` leads from ``state``, or IllegalTransition."""
    if trigger not in _MACHINE.events:
        raise IllegalTransition(f"unknown trigger {trigger!r}")
    found = _MACHINE.get_transitions(trigger=trigger, source=state.value)
    if not found:
        raise IllegalTransition(f"trigger {trigger!r} is not allowed from {state.value}")
    return TradeState(found[0].dest)


def is_terminal(state: TradeState) -> bool:
    return state in TERMINAL_STATES
