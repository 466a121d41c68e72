"""Pure decision logic: given a trade and what is known of its orders, what happens next.

No I/O here. The engine persists facts (order rows, trade state), calls ``decide`` and carries
out the one action it returns, over and over until the trade is terminal. Because the decision
reads only persisted facts, a process that restarts after a crash decides exactly what the
crashed one would have, and recovery needs no code of its own.

The rule that makes it safe: an order whose outcome is not known (INTENT after a crash, UNKNOWN
after a timeout) can only be looked up. A resend is decided only for an order that a lookup
confirmed ABSENT, and it reuses the order's client id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fsm.client_ids import Leg
from fsm.config import EngineConfig
from fsm.orders import OrderFacts, OrderStatus
from fsm.states import TERMINAL_STATES, TradeState


@dataclass(frozen=True)
class TradeFacts:
    """The persisted trade as the decision logic sees it."""

    state: TradeState
    pair_x: str
    side_x: str
    amount_x: float
    pair_y: str
    side_y: str
    hedge_ratio: float


# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """Persist a new order (intent, client id) with ``trigger``, then send it."""

    trigger: str
    leg: Leg
    attempt: int
    symbol: str
    side: str
    amount: float
    cause: str


@dataclass(frozen=True)
class Resend:
    """The order was confirmed absent: send it again under the same client order id."""

    trigger: str
    order: OrderFacts
    cause: str


@dataclass(frozen=True)
class Lookup:
    """The order's outcome is unknown: fetch it by client order id (trade -> UNKNOWN first)."""

    order: OrderFacts


@dataclass(frozen=True)
class Settle:
    """The order is open: let it fill for a while, then cancel the rest and read the result."""

    order: OrderFacts


@dataclass(frozen=True)
class Move:
    """A pure state change (e.g. leg A classified, trade done)."""

    trigger: str
    cause: str


@dataclass(frozen=True)
class GiveUp:
    """An order cannot be placed (sent too often while absent): record it as rejected."""

    order: OrderFacts
    cause: str


Action = Submit | Resend | Lookup | Settle | Move | GiveUp

# --- the decision --------------------------------------------------------------------------

_TRIGGER_FOR_LEG = {Leg.A: "send_leg_a", Leg.B: "send_leg_b", Leg.UNWIND: "unwind"}


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def filled(orders: Sequence[OrderFacts], leg: Leg) -> float:
    return sum((o.filled for o in orders if o.leg is leg), 0.0)


def hedge_target(trade: TradeFacts, orders: Sequence[OrderFacts]) -> float:
    """Leg B's total amount: the hedge ratio times what leg A actually filled."""
    return trade.hedge_ratio * filled(orders, Leg.A)


def unwind_target(trade: TradeFacts, orders: Sequence[OrderFacts]) -> float:
    """The part of leg A's fill that leg B does not hedge: what unwind orders must close."""
    return max(filled(orders, Leg.A) - filled(orders, Leg.B) / trade.hedge_ratio, 0.0)


def decide(
    trade: TradeFacts,
    orders: Sequence[OrderFacts],
    config: EngineConfig,
    *,
    resuming: bool = False,
) -> Action | None:
    """The next action for a trade, or None if it is terminal.

    ``resuming`` is set by ``recover()``: a trade still PENDING then was never sent before the
    restart, and a stale signal must not open a position hours later, so it fails instead.
    """
    if trade.state in TERMINAL_STATES:
        return None
    if trade.state is TradeState.PENDING:
        if resuming:
            return Move("never_sent", "not resumed: leg A was never sent before the restart")
        return Submit(
            "send_leg_a", Leg.A, 1, trade.pair_x, trade.side_x, trade.amount_x, "leg A intent"
        )
    if trade.state in (TradeState.LEG_A_FILLED, TradeState.LEG_A_PARTIAL):
        return _next_leg_b(trade, orders, config, attempt=1)

    current = orders[-1]  # every other state has sent at least one order; the last is current
    if current.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        return Lookup(current)
    if current.status is OrderStatus.ABSENT:
        if current.sends >= config.max_sends_per_order:
            return GiveUp(current, f"absent after {current.sends} sends")
        return Resend(_TRIGGER_FOR_LEG[current.leg], current, "confirmed absent: resend same id")
    if current.status is OrderStatus.OPEN:
        return Settle(current)

    if current.leg is Leg.A:
        return _after_leg_a(trade, current, config)
    if current.leg is Leg.B:
        return _after_leg_b(trade, orders, current, config)
    return _after_unwind(trade, orders, current, config)


def _after_leg_a(trade: TradeFacts, leg_a: OrderFacts, config: EngineConfig) -> Action:
    ratio = leg_a.filled / trade.amount_x
    text = f"leg A filled {leg_a.filled:g} of {trade.amount_x:g} ({ratio:.0%})"
    if leg_a.filled <= 0:
        why = "rejected" if leg_a.status is OrderStatus.REJECTED else "nothing filled"
        return Move("leg_a_failed", f"leg A {why}; nothing executed")
    if ratio >= config.full_fill_ratio:
        return Move("leg_a_filled", text)
    if ratio >= config.abort_fill_ratio:
        return Move("leg_a_partial", text)
    abort = f"{text} < abort ratio {config.abort_fill_ratio:g}"
    if config.unwind_on_abort:
        return Submit(
            "unwind",
            Leg.UNWIND,
            1,
            trade.pair_x,
            opposite(trade.side_x),
            leg_a.filled,
            f"{abort}: unwind leg A",
        )
    return Move("leg_a_too_small", f"{abort}: leg A left open (unwind_on_abort=False)")


def _next_leg_b(
    trade: TradeFacts, orders: Sequence[OrderFacts], config: EngineConfig, attempt: int
) -> Action:
    remaining = hedge_target(trade, orders) - filled(orders, Leg.B)
    return Submit(
        "send_leg_b",
        Leg.B,
        attempt,
        trade.pair_y,
        trade.side_y,
        remaining,
        f"leg B {remaining:g} = {trade.hedge_ratio:g} x leg A filled "
        f"{filled(orders, Leg.A):g}" + ("" if attempt == 1 else " (remainder)"),
    )


def _complete(done: float, target: float, config: EngineConfig) -> bool:
    return target - done <= config.hedge_tolerance * max(target, 1e-12)


def _after_leg_b(
    trade: TradeFacts, orders: Sequence[OrderFacts], leg_b: OrderFacts, config: EngineConfig
) -> Action:
    target = hedge_target(trade, orders)
    done = filled(orders, Leg.B)
    if _complete(done, target, config):
        return Move(
            "leg_b_filled", f"leg B filled {done:g}, hedging leg A {filled(orders, Leg.A):g}"
        )
    if leg_b.status is not OrderStatus.REJECTED and leg_b.attempt < config.leg_attempts:
        return _next_leg_b(trade, orders, config, attempt=leg_b.attempt + 1)
    why = "rejected" if leg_b.status is OrderStatus.REJECTED else f"{leg_b.attempt} orders"
    amount = unwind_target(trade, orders)
    if not config.unwind_on_abort:
        return Move("park", f"leg B filled {done:g} of {target:g} ({why}); leg A unhedged")
    return Submit(
        "unwind",
        Leg.UNWIND,
        1,
        trade.pair_x,
        opposite(trade.side_x),
        amount,
        f"leg B filled {done:g} of {target:g} ({why}): unwind leg A's unhedged {amount:g}",
    )


def _after_unwind(
    trade: TradeFacts, orders: Sequence[OrderFacts], unwind: OrderFacts, config: EngineConfig
) -> Action:
    target = unwind_target(trade, orders)
    done = filled(orders, Leg.UNWIND)
    if _complete(done, target, config):
        return Move("unwound", f"unwound {done:g} of leg A")
    remaining = target - done
    if unwind.status is OrderStatus.REJECTED or unwind.attempt >= config.leg_attempts:
        return Move(
            "park",
            f"unwind incomplete: {remaining:g} {trade.pair_x} of leg A still open "
            f"({'rejected' if unwind.status is OrderStatus.REJECTED else 'out of attempts'})",
        )
    return Submit(
        "unwind",
        Leg.UNWIND,
        unwind.attempt + 1,
        trade.pair_x,
        opposite(trade.side_x),
        remaining,
        f"unwind remainder {remaining:g}",
    )
