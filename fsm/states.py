"""The trade state machine as one table.

Every trade moves only along the rows of ``TRANSITIONS``; the README diagram is generated
from this table (``python -m pairexec.fsm.diagram``) and a test keeps the two identical. The
table is loaded into a single shared ``transitions.Machine`` that validates it and answers
"where does trigger T lead from state S"; trades are *not* machine models (see
``pairexec.fsm.machine``).
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
    exchange keeps rejecting). The reason column says what is open. Terminal for the engine;
    its pair stays blocked (``block_pair_while_parked``) until a human resolves it."""
    RESOLVED = "RESOLVED"
    """A human settled a PARKED trade (``TradeStore.resolve`` / ``pairexec resolve``), with a
    note in the reason column; its pair is free again. Terminal."""

    @property
    def terminal(self) -> bool:
        """Whether the trade is finished: nothing more will be sent or decided for it."""
        return self in TERMINAL_STATES


class Trigger(str, enum.Enum):
    """What moves a trade: one name per kind of event or decision, as journaled and drawn."""

    __str__ = str.__str__  # the name as it reads in the table and the diagram, on any Python

    SEND_LEG_A = "send_leg_a"
    NEVER_SENT = "never_sent"
    OUTCOME_UNKNOWN = "outcome_unknown"
    RECONCILED = "reconciled"
    LEG_A_FILLED = "leg_a_filled"
    LEG_A_PARTIAL = "leg_a_partial"
    LEG_A_FAILED = "leg_a_failed"
    LEG_A_TOO_SMALL = "leg_a_too_small"
    SEND_LEG_B = "send_leg_b"
    LEG_B_FILLED = "leg_b_filled"
    UNWIND = "unwind"
    UNWOUND = "unwound"
    PARK = "park"
    RESOLVE = "resolve"


TERMINAL_STATES: frozenset[TradeState] = frozenset(
    {
        TradeState.DONE,
        TradeState.ABORTED,
        TradeState.FAILED,
        TradeState.PARKED,
        TradeState.RESOLVED,
    }
)

S = TradeState
T = Trigger
_ANY_ACTIVE = [s for s in TradeState if s not in TERMINAL_STATES]

# trigger, source state(s), destination. Read top to bottom it is the life of a trade.
#
# RECONCILED appears as a source of most rows: it means "a lookup answered, decide again", and
# the decision from there is whatever it would have been had the order's reply arrived in time
# (send or resend, classify leg A, finish, unwind). That is why recovery needs no rows of its own.
TRANSITIONS: list[tuple[Trigger, list[TradeState], TradeState]] = [
    # a confirmed-absent leg A is resent from RECONCILED under the same client id
    (T.SEND_LEG_A, [S.PENDING, S.RECONCILED], S.LEG_A_SENT),
    # PENDING at a restart: leg A was never sent, and a stale signal must not trade hours late;
    # or leg A's limit could not be priced (no quote): nothing was sent either way
    (T.NEVER_SENT, [S.PENDING], S.FAILED),
    (T.OUTCOME_UNKNOWN, [S.LEG_A_SENT, S.LEG_B_SENT, S.UNWINDING], S.UNKNOWN),
    (T.RECONCILED, [S.UNKNOWN], S.RECONCILED),
    (T.LEG_A_FILLED, [S.LEG_A_SENT, S.RECONCILED], S.LEG_A_FILLED),
    (T.LEG_A_PARTIAL, [S.LEG_A_SENT, S.RECONCILED], S.LEG_A_PARTIAL),
    (T.LEG_A_FAILED, [S.LEG_A_SENT, S.RECONCILED], S.FAILED),
    # leg A filled below abort_fill_ratio and is left or too small to close: nothing to hedge
    (T.LEG_A_TOO_SMALL, [S.LEG_A_SENT, S.RECONCILED], S.ABORTED),
    # LEG_B_SENT -> LEG_B_SENT: a remainder order after a partly filled leg B
    (T.SEND_LEG_B, [S.LEG_A_FILLED, S.LEG_A_PARTIAL, S.LEG_B_SENT, S.RECONCILED], S.LEG_B_SENT),
    (T.LEG_B_FILLED, [S.LEG_B_SENT, S.RECONCILED], S.DONE),
    # from LEG_A_SENT: leg A filled too little; from LEG_A_*: the hedge is below the market's
    # minimum; from LEG_B_SENT: leg B refused or short; UNWINDING -> UNWINDING: a remainder
    (
        T.UNWIND,
        [S.LEG_A_SENT, S.LEG_A_FILLED, S.LEG_A_PARTIAL, S.LEG_B_SENT, S.UNWINDING, S.RECONCILED],
        S.UNWINDING,
    ),
    (T.UNWOUND, [S.UNWINDING, S.RECONCILED], S.ABORTED),
    # a human is needed: from any state, because what cannot be resolved is found anywhere
    (T.PARK, _ANY_ACTIVE, S.PARKED),
    # the one move the engine never makes: a human, after settling the parked legs by hand
    (T.RESOLVE, [S.PARKED], S.RESOLVED),
]
