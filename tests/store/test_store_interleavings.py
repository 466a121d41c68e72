"""Two drivers on one trade, in any interleaving: the store keeps the trade on the table.

A Hypothesis state machine owns one real ``TradeStore`` (a SQLite file, and on the second run
a PostgreSQL database) and one trade, and plays two drivers against it. Each driver has its
own lease owner and its own view of the trade, which goes stale as soon as the other one
writes. In any order Hypothesis picks, a driver reloads its view, claims the trade (with a
lease that is live or already expired, so the other may take it over), releases it, or
applies a step to its view: a move the transition table allows from the state the view shows
(with the intent of a new order, an update of an order it knows, a move that follows from it),
or a step that changes no state, with or without its lease.

The store is judged against a small model of what it must do, the lease owner and expiry it
wrote and the version it stored:

- an ``apply`` succeeds exactly when the view is the stored version and the driver holds the
  lease (or writes without one), and then returns the record as stored; otherwise it raises
  ``StaleTrade`` and changes nothing; a ``claim`` takes the trade exactly when it is active and
  free (no live lease of the other driver's); nothing else is ever raised;
- after every step the stored trade's version is the model's (it only grows, by one per write),
  the lease is held by the model's owner, the last driver whose write went through sees exactly
  the stored trade, and the journal only grows and replays to the stored state: it starts with
  the trade's acceptance (None → PENDING), each row starts where the one before ended, every
  row that changes state is a move of the table, and the last row ends in the stored state.

So no interleaving of two processes' writes, compare-and-set losers and lease takeovers
included, can leave a trade in a state the table does not reach, or a journal that tells a
different story from the trade. The examples are derandomized: CI runs the same interleavings
every time, and a failure is a real one, printed as the shortest sequence of steps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from pairexec import PairTradeRequest
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.machine import IllegalTransition, next_state
from pairexec.fsm.model import (
    Change,
    EventRecord,
    Fee,
    Lease,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    Transition,
    utc_now,
)
from pairexec.fsm.states import TradeState, Trigger
from pairexec.persistence import StaleTrade, TradeStore

T = TypeVar("T")


def _moves(state: TradeState) -> list[Trigger]:
    """The triggers the transition table (through the shared machine) allows from ``state``."""
    allowed = []
    for trigger in Trigger:
        try:
            next_state(state, trigger)
        except IllegalTransition:
            continue
        allowed.append(trigger)
    return allowed


MOVES: dict[TradeState, list[Trigger]] = {state: _moves(state) for state in TradeState}
TABLE: frozenset[tuple[TradeState, TradeState]] = frozenset(
    (state, next_state(state, trigger)) for state, triggers in MOVES.items() for trigger in triggers
)
"""Every (from, to) pair of distinct or equal states some trigger of the table moves along."""

SENDS: dict[TradeState, Leg] = {
    TradeState.LEG_A_SENT: Leg.A,
    TradeState.LEG_B_SENT: Leg.B,
    TradeState.UNWINDING: Leg.UNWIND,
}
"""The leg whose order a move into this state submits."""

HOUR = timedelta(hours=1)
"""How far a lease is live or expired: far beyond any test's length, so no clock race."""

DRIVERS = st.integers(min_value=0, max_value=1)


def _next_attempt(orders: tuple[OrderFacts, ...], leg: Leg) -> int:
    return 1 + max((o.attempt for o in orders if o.leg is leg), default=0)


def _intent(view: TradeRecord, leg: Leg, orders: tuple[OrderFacts, ...]) -> OrderFacts:
    """A new order's intent as a driver that knows ``orders`` would write it."""
    attempt = _next_attempt(orders, leg)
    r = view.request
    symbol, side = (r.pair_y, r.side_y) if leg is Leg.B else (r.pair_x, r.side_x)
    if leg is Leg.UNWIND:
        side = "sell" if r.side_x == "buy" else "buy"
    return OrderFacts.intent(
        leg, attempt, client_order_id(view.id, leg, attempt), symbol, side, r.amount_x
    )


@st.composite
def _updates(draw: st.DrawFn, view: TradeRecord) -> OrderUpdate:
    order = draw(st.sampled_from(view.orders))
    fraction = draw(st.sampled_from([None, 0.0, 0.25, 1.0]))
    return OrderUpdate(
        order.client_order_id,
        draw(st.sampled_from(OrderStatus)),
        filled=None if fraction is None else fraction * order.amount,
        exchange_order_id=draw(st.sampled_from([None, f"x-{order.client_order_id[:8]}"])),
        average=draw(st.sampled_from([None, 101.5])),
        add_sends=draw(st.integers(min_value=0, max_value=1)),
        error=draw(st.sampled_from([None, "timeout"])),
        fees=draw(st.sampled_from([None, (), (Fee("USDT", 0.1),)])),
    )


@st.composite
def _changes(draw: st.DrawFn, view: TradeRecord, owner: str) -> Change:
    """A step a driver would write on the trade as ``view`` shows it: a move the table allows
    from the view's state (one in five ends the trade, when another move is possible: else
    most runs would end at the first step), or none; perhaps a new order, an order update,
    and a move that follows."""
    moves = MOVES[view.state]
    going_on = [t for t in moves if not next_state(view.state, t).terminal]
    ending = [t for t in moves if next_state(view.state, t).terminal]
    trigger: Trigger | None
    if ending and (not going_on or draw(st.integers(min_value=0, max_value=4)) == 0):
        trigger = draw(st.sampled_from(ending))
    else:
        trigger = draw(st.sampled_from([*going_on, None]))
    to_state = None if trigger is None else next_state(view.state, trigger)
    landed = to_state or view.state
    orders = view.orders

    new_order = None
    if draw(st.booleans()):
        leg = SENDS.get(landed) or draw(st.sampled_from(Leg))
        new_order = _intent(view, leg, orders)
        orders = (*orders, new_order)
    update = None
    if len(view.orders) > 0 and draw(st.booleans()):
        update = draw(_updates(view))

    then: tuple[Transition, ...] = ()
    if trigger is not None and MOVES[landed] and draw(st.integers(0, 3)) == 0:
        follow = draw(st.sampled_from(MOVES[landed]))
        final = next_state(landed, follow)
        leg_then = SENDS.get(final)
        intent = _intent(view, leg_then, orders) if leg_then and draw(st.booleans()) else None
        then = (Transition(final, f"{owner}: {follow}", intent),)
    cause = f"{owner}: {trigger or 'no move'}"
    return Change(cause, to_state=to_state, new_order=new_order, order_update=update, then=then)


@dataclass
class Driver:
    owner: str
    view: TradeRecord
    """The trade as this driver last read or wrote it: stale once the other one writes."""
    lease: Lease
    """The lease this driver last claimed with (and writes with)."""


def _same_trade(seen: TradeRecord, stored: TradeRecord) -> bool:
    return (seen.state, seen.version, seen.reason, seen.orders) == (
        stored.state,
        stored.version,
        stored.reason,
        stored.orders,
    )


class TwoDrivers(RuleBasedStateMachine):
    """One trade, two drivers, any interleaving of their writes (see the module docstring)."""

    url: ClassVar[str] = ""
    """The database: set by ``_machine_on`` for each backend."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = TradeStore(self.url)
        self.run(self.store.open())
        run = uuid.uuid4().hex[:10]  # examples share the database: their own pair and owners
        request = PairTradeRequest(f"X{run}/USDT", "buy", 1.0, f"Y{run}/USDT", "sell", 0.5)
        first = Lease(f"d0-{run}", until=utc_now() + HOUR)
        created = self.run(self.store.create_trade(request.validated(), first))
        assert isinstance(created, TradeRecord), created
        self.trade_id = created.id
        self.drivers = [
            Driver(f"d0-{run}", created, first),
            Driver(f"d1-{run}", created, Lease(f"d1-{run}", until=utc_now() + HOUR)),
        ]
        # the model: who holds the lease until when, the version stored, the journal so far
        self.owner: int | None = 0
        self.expiry: datetime | None = first.until
        self.version = created.version
        self.journal: list[EventRecord] = []
        self.last_writer: int | None = 0
        """The driver whose write went through last: its view is the stored trade."""

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)

    def load(self) -> TradeRecord:
        return self.run(self.store.load(self.trade_id))

    def teardown(self) -> None:
        try:
            stored = self.load()
            event(f"ends {stored.state.value}")
            # examples share the database: leave nothing a later example's claim would take
            if not stored.state.terminal:
                self.run(self.store.apply(stored, Change("example over", TradeState.PARKED)))
        finally:
            self.run(self.store.close())
            self.loop.close()

    # --- rules -----------------------------------------------------------------------------

    @rule(i=DRIVERS)
    def reload(self, i: int) -> None:
        self.drivers[i].view = self.load()

    @rule(i=DRIVERS, with_lease=st.booleans(), data=st.data())
    def apply_step(self, i: int, with_lease: bool, data: st.DataObject) -> None:
        driver = self.drivers[i]
        change = data.draw(_changes(driver.view, driver.owner), label="change")
        lease = driver.lease if with_lease else None
        before = self.load()
        should_win = driver.view.version == before.version and (lease is None or self.owner == i)
        try:
            written = self.run(self.store.apply(driver.view, change, lease))
        except StaleTrade:
            stale = "version" if driver.view.version != before.version else "lease"
            event(f"apply: StaleTrade ({stale})")
            assert not should_win, f"{driver.owner} holds the trade and its view is current"
            assert _same_trade(self.load(), before), "a refused write changed the trade"
            return
        assert should_win, (
            f"a write went through for {driver.owner} on version {driver.view.version} "
            f"(stored {before.version}, lease {'held' if self.owner == i else 'not held'})"
        )
        assert written.version == before.version + 1
        event("apply: written")
        driver.view = written
        self.version = written.version
        self.last_writer = i
        if lease is not None:
            self.expiry = lease.until

    @rule(i=DRIVERS, expired=st.booleans())
    def claim(self, i: int, expired: bool) -> None:
        driver = self.drivers[i]
        now = utc_now()
        lease = Lease(driver.owner, until=now - HOUR if expired else now + HOUR)
        free = not self.load().state.terminal and (
            self.owner == i or self.expiry is None or self.expiry < now
        )
        claimed = self.trade_id in self.run(self.store.claim(lease))
        assert claimed == free, f"claim by {driver.owner}: took {claimed}, free {free}"
        event(f"claim: {'taken' if claimed else 'refused'}")
        driver.lease = lease
        if claimed:
            self.owner, self.expiry = i, lease.until

    @rule(i=DRIVERS)
    def release(self, i: int) -> None:
        self.run(self.store.release(self.drivers[i].owner, self.trade_id))
        if self.owner == i:
            self.expiry = None

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def the_store_agrees_with_the_model(self) -> None:
        stored = self.load()
        self.check_trade(stored)
        self.check_journal(stored)

    def check_trade(self, stored: TradeRecord) -> None:
        assert isinstance(stored.state, TradeState)
        assert stored.version == self.version, f"version {stored.version}, wrote {self.version}"
        if self.last_writer is not None:
            seen = self.drivers[self.last_writer].view
            assert _same_trade(seen, stored), f"the last writer saw {seen}, stored {stored}"
        holders = self.run(self.store.lease_holders(self.trade_id))
        if stored.state.terminal or self.owner is None or self.expiry is None:
            assert holders == []
        else:
            assert [h.owner for h in holders] == [self.drivers[self.owner].owner]

    def check_journal(self, stored: TradeRecord) -> None:
        events = self.run(self.store.events(self.trade_id))
        assert events[: len(self.journal)] == self.journal, "a journal row changed or vanished"
        self.journal = events
        assert events, "no journal"
        assert (events[0].from_state, events[0].to_state) == (None, TradeState.PENDING)
        state = TradeState.PENDING
        for row in events[1:]:
            assert row.from_state is state, f"{row} does not start where {state.value} ended"
            assert row.from_state is row.to_state or (row.from_state, row.to_state) in TABLE, (
                f"{row.from_state.value} → {row.to_state.value} is no move of the table"
            )
            state = row.to_state
        assert state is stored.state, (
            f"the journal ends in {state.value}, the trade is in {stored.state.value}"
        )


INTERLEAVINGS = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,  # the same interleavings on every run: CI cannot flake on a new draw
    database=None,
    report_multiple_bugs=False,  # shrink the first failure only: a broken store fails fast
    suppress_health_check=[HealthCheck.too_slow],
)


def _machine_on(url: str) -> type[TwoDrivers]:
    return type("TwoDriversOnDb", (TwoDrivers,), {"url": url})


def test_any_interleaving_of_two_drivers_keeps_the_trade_on_the_table(db_url: str) -> None:
    run_state_machine_as_test(_machine_on(db_url), settings=INTERLEAVINGS)
