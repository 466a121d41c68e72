"""The trade state machine as one table.

Every trade moves only along the rows of ``TRANSITIONS``; the README diagram is generated
from this table (``python -m pairexec.fsm.diagram``) and a test keeps the two identical. The table
is loaded into a single shared ``transitions.Machine`` that validates it and answers "where
does trigger T lead from state S"; trades are *not* machine models (see ``pairexec.fsm.machine``).
"""

from __future__ import annotations

import enum


class TradeState(str, enum.Enum):
    """Where a pair trade is. The value is what the database stores."""

    PENDING = "PENDING"
    """Trade accepted and persisted; no order sent yet."""
    LEG_A_SENT = "LEG_A_SENT"
    """Leg A's client order id is persisted and its create_order is (or was) in flight."""
    LEG_A_FILLED = "LEG_A_FILLED"
    """Leg A is final with fill ratio >= full_fill_ratio; leg B comes next."""
    LEG_A_PARTIAL = "LEG_A_PARTIAL"
    """Leg A is final with abort_fill_ratio <= ratio < full_fill_ratio; leg B hedges the fill."""
    LEG_B_SENT = "LEG_B_SENT"
    """A leg B order is persisted and in flight (hedge = hedge_ratio x leg A filled)."""
    UNWINDING = "UNWINDING"
    """An order closing leg A's unhedged fill is persisted and in flight."""
    UNKNOWN = "UNKNOWN"
    """The outcome of the current order is unknown (timeout, lost connection, crash): it must be
    looked up by client order id before anything else is sent."""
    RECONCILED = "RECONCILED"
    """The lookup answered: the order exists (with its real fill) or is confirmed absent."""
    DONE = "DONE"
    """Both legs executed, leg B hedges leg A's actual fill. Terminal."""
    ABORTED = "ABORTED"
    """Leg A filled too little, or leg B could not be completed: leg A's unhedged part was closed
    (or, with unwind_on_abort=False, deliberately left). Terminal."""
    FAILED = "FAILED"
    """Nothing executed: leg A rejected or unfilled, or the trade was never sent. Terminal."""
    PARKED = "PARKED"
    """Needs a human: the engine could not reach a safe state by itself (e.g. an unwind that the
    exchange keeps rejecting). The reason column says what is open. Terminal for the engine."""


TERMINAL_STATES: frozenset[TradeState] = frozenset(
    {TradeState.DONE, TradeState.ABORTED, TradeState.FAILED, TradeState.PARKED}
)

S = TradeState
_ANY_ACTIVE = [s for s in TradeState if s not in TERMINAL_STATES]

# trigger, source state(s), destination. Read top to bottom it is the life of a trade.
TRANSITIONS: list[tuple[str, list[TradeState], TradeState]] = [
    ("send_leg_a", [S.PENDING, S.RECONCILED], S.LEG_A_SENT),
    ("never_sent", [S.PENDING], S.FAILED),
    ("outcome_unknown", [S.LEG_A_SENT, S.LEG_B_SENT, S.UNWINDING], S.UNKNOWN),
    ("reconciled", [S.UNKNOWN], S.RECONCILED),
    ("leg_a_filled", [S.LEG_A_SENT, S.RECONCILED], S.LEG_A_FILLED),
    ("leg_a_partial", [S.LEG_A_SENT, S.RECONCILED], S.LEG_A_PARTIAL),
    ("leg_a_failed", [S.LEG_A_SENT, S.RECONCILED], S.FAILED),
    ("leg_a_too_small", [S.LEG_A_SENT, S.RECONCILED], S.ABORTED),
    ("send_leg_b", [S.LEG_A_FILLED, S.LEG_A_PARTIAL, S.LEG_B_SENT, S.RECONCILED], S.LEG_B_SENT),
    ("leg_b_filled", [S.LEG_B_SENT, S.RECONCILED], S.DONE),
    (
        "unwind",
        [S.LEG_A_SENT, S.LEG_A_FILLED, S.LEG_A_PARTIAL, S.LEG_B_SENT, S.UNWINDING, S.RECONCILED],
        S.UNWINDING,
    ),
    ("unwound", [S.UNWINDING, S.RECONCILED], S.ABORTED),
    ("park", _ANY_ACTIVE, S.PARKED),
]
