"""What the engine writes for each answer it gets: the facts of a step, pure.

``decide`` says what to do next; this module says what the trade's record learns from doing it
(a create's answer, a lookup's, a settle's...) and which pure moves follow, folded into the
same write. The engine does the I/O around these functions, and the explorer
(``pairexec.fsm.sim.explore``) calls the very same ones for every answer a venue can give,
so what it proves is what the engine writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.decide import Action, GiveUp, Move, Resend, Submit
from pairexec.fsm.machine import is_terminal, next_state
from pairexec.fsm.model import (
    Change,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    Transition,
    after,
)
from pairexec.fsm.states import TradeState, Trigger
from pairexec.fsm.venues.errors import ErrorMeaning
from pairexec.fsm.venues.gateway import Answered, CallResult, NotBelieved
from pairexec.fsm.venues.reports import ExchangeReport


@dataclass(frozen=True)
class Fact:
    """One thing a step learned, before the moves that follow from it are added."""

    cause: str
    trigger: Trigger | None = None
    new_order: OrderFacts | None = None
    order_update: OrderUpdate | None = None

    def change(self, state: TradeState) -> Change:
        """The fact alone as a write to a trade in ``state``."""
        to_state = next_state(state, self.trigger) if self.trigger else None
        return Change(
            self.cause, to_state=to_state, new_order=self.new_order, order_update=self.order_update
        )


def folded(
    record: TradeRecord,
    fact: Fact,
    decide: Callable[[TradeRecord], Action | None],
    *,
    keep_parked_pair: bool = True,
) -> Change:
    """The write of ``fact`` with the pure moves ``decide`` makes after it (leg A classified,
    the trade done, the next order's intent...): they cost no commit of their own. A submit
    ends them: its order must be sent before anything else is decided."""
    alone = fact.change(record.state)
    state = alone.to_state or record.state
    current = after(record, alone)
    moves: list[Transition] = []
    while not is_terminal(state):
        action = decide(current)
        if isinstance(action, Submit):
            step = intent(current, action)
            moves.append(Transition(step.to_state or state, step.cause, step.new_order))
            break
        if not isinstance(action, Move):
            break
        move = Transition(next_state(state, action.trigger), action.cause)
        moves.append(move)
        current = after(current, Change(move.cause, to_state=move.to_state))
        state = move.to_state
    return Change(
        alone.cause,
        alone.to_state,
        alone.new_order,
        alone.order_update,
        tuple(moves),
        keep_parked_pair=keep_parked_pair,
    )


def intent(record: TradeRecord, submit: Submit) -> Change:
    """The write that records ``submit``'s order before it is sent: its row, under the client
    order id it will be sent with, and the state that sending it enters."""
    cid = client_order_id(record.id, submit.leg, submit.attempt)
    return Change(
        submit.cause,
        to_state=next_state(record.state, submit.trigger),
        new_order=OrderFacts.intent(
            submit.leg,
            submit.attempt,
            cid,
            submit.symbol,
            submit.side,
            submit.amount,
            record.request.venue_of(submit.leg),
            reference_price=submit.reference_price,
            limit_price=submit.limit_price,
        ),
    )


def submitted(record: TradeRecord, submit: Submit) -> Fact:
    step = intent(record, submit)
    return Fact(step.cause, trigger=submit.trigger, new_order=step.new_order)


def resent(action: Resend) -> Fact:
    """A resend goes out under the same client id: its row is an intent again first."""
    return Fact(
        action.cause,
        trigger=action.trigger,
        order_update=OrderUpdate(action.order.client_order_id, OrderStatus.INTENT),
    )


def moved(action: Move) -> Fact:
    return Fact(action.cause, trigger=action.trigger)


def given_up(action: GiveUp) -> Fact:
    order = action.order
    return Fact(
        f"{order.leg.value} order {order.client_order_id}: {action.cause}",
        order_update=OrderUpdate(order.client_order_id, OrderStatus.REJECTED, filled=0.0),
    )


def leg_name(order: OrderFacts) -> str:
    return f"leg {order.leg.value}" if order.leg is not Leg.UNWIND else "unwind"


def reported(order: OrderFacts, report: ExchangeReport, add_sends: int = 0) -> OrderUpdate:
    """What the exchange said about ``order``, as the update that records it."""
    return OrderUpdate(
        order.client_order_id,
        report.status,
        filled=report.filled,
        exchange_order_id=report.exchange_order_id,
        average=report.average,
        add_sends=add_sends,
        fees=report.fees,
    )


def report_fact(
    order: OrderFacts,
    report: ExchangeReport,
    learned: str,
    *,
    trigger: Trigger | None = None,
    add_sends: int = 0,
    of_amount: bool = False,
) -> Fact:
    """What the exchange reported of ``order``; ``learned`` says how it was learned (the
    journal's cause starts with it)."""
    total = f" of {order.amount:g}" if of_amount else ""
    return Fact(
        f"{learned}: {report.status.value.lower()}, filled {report.filled:g}{total}",
        trigger=trigger,
        order_update=reported(order, report, add_sends),
    )


def create_answered(order: OrderFacts, result: CallResult, sends: int) -> Fact:
    """A create's last answer (``sends`` calls made): the report, a rejection (a definite one,
    or a rate limit that outlasted every try: the venue refused to take it), or an unknown
    outcome, which only a lookup may settle."""
    leg = leg_name(order)
    if isinstance(result, Answered):
        learned = f"{leg} {order.side} {order.amount:g} {order.symbol} accepted"
        return report_fact(order, result.report, learned, add_sends=sends)
    if result.meaning in (ErrorMeaning.REJECTED, ErrorMeaning.RETRY_LATER):
        return Fact(
            f"{leg} rejected: {result.error}",
            order_update=OrderUpdate(
                order.client_order_id,
                OrderStatus.REJECTED,
                filled=0.0,
                add_sends=sends,
                error=result.error,
            ),
        )
    # UNKNOWN (or NOT_FOUND from a create, which makes no sense): look it up next.
    return Fact(
        f"{leg} outcome unknown: {result.error}",
        trigger=Trigger.OUTCOME_UNKNOWN,
        order_update=OrderUpdate(
            order.client_order_id, OrderStatus.UNKNOWN, add_sends=sends, error=result.error
        ),
    )


def resuming(order: OrderFacts) -> Fact:
    """After a crash the order is still INTENT: its create_order may have gone out."""
    return Fact(
        f"resuming: create_order of {order.client_order_id} may have been sent",
        trigger=Trigger.OUTCOME_UNKNOWN,
        order_update=OrderUpdate(order.client_order_id, OrderStatus.UNKNOWN),
    )


def lookup_answered(order: OrderFacts, result: CallResult) -> Fact | None:
    """A lookup's answer if it settles the order's existence (found, or definitely absent);
    None if it proves nothing (try again, or leave it to ``recover``)."""
    if isinstance(result, Answered):
        return report_fact(
            order,
            result.report,
            f"lookup found {order.client_order_id}",
            trigger=Trigger.RECONCILED,
        )
    if result.meaning is ErrorMeaning.NOT_FOUND:
        return Fact(
            f"lookup: {order.client_order_id} confirmed absent on the exchange",
            trigger=Trigger.RECONCILED,
            order_update=OrderUpdate(order.client_order_id, OrderStatus.ABSENT, filled=0.0),
        )
    return None


def lookups_failed(order: OrderFacts, tries: int, not_believed: int, last_error: str) -> Fact:
    """Every lookup proved nothing. A venue that answers every lookup, but never with a report
    that can be this order, will not tell the truth by being asked later: PARK (a trigger).
    Otherwise the fact is the reason alone, and the drive stops for ``recover``."""
    if not_believed == tries:
        return Fact(
            f"order {order.client_order_id}: {not_believed} of {not_believed} lookups "
            f"answered with a report that cannot be this order ({last_error}); its fill "
            "is unknown and nothing more was sent: check it on the exchange",
            trigger=Trigger.PARK,
            order_update=OrderUpdate(order.client_order_id, OrderStatus.UNKNOWN, error=last_error),
        )
    return Fact(
        f"order {order.client_order_id} outcome still unknown after {tries} lookups "
        f"({last_error}); run recover"
    )


def settle_failed(order: OrderFacts, result: CallResult, detail: str, tries: int) -> Fact:
    """An open order whose final fill could not be read after the cancel: PARK if every
    answer was not believable (what sizes the next step is unknown), else the reason alone,
    and the drive stops for ``recover``."""
    if isinstance(result, NotBelieved):
        return Fact(
            f"order {order.client_order_id} could not be settled: {tries} of {tries} lookups "
            f"after the cancel answered with a report that cannot be this order ({detail}); "
            "its final fill is unknown and nothing more was sent: check it on the exchange",
            trigger=Trigger.PARK,
            order_update=OrderUpdate(order.client_order_id, OrderStatus.OPEN, error=result.error),
        )
    return Fact(f"order {order.client_order_id} could not be settled ({detail}); run recover")
