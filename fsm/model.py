"""The domain records: what pairexec knows about a trade and its orders, and how one step
changes it. Pure data and one pure projection (``after``); no I/O, no driver, no venue.

Everything above this module speaks these types: ``decide`` reads a ``TradeRecord``, the engine
writes a ``Change``, the store persists it and returns the record ``after`` computes, the CLI
prints records. So the one definition of an order (``OrderFacts``) serves from the intent
written before a send to the row a lookup last updated.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.request import DuplicateReason, PairTradeRequest, market_key
from pairexec.fsm.states import TradeState


class OrderStatus(str, enum.Enum):
    INTENT = "INTENT"
    """Persisted with its client order id; create_order has not (known to have) returned."""
    UNKNOWN = "UNKNOWN"
    """create_order failed in a way that leaves its existence unknown: look it up."""
    ABSENT = "ABSENT"
    """A lookup by client order id confirmed the exchange has no such order: resend, same id."""
    OPEN = "OPEN"
    """On the exchange and may still fill."""
    CLOSED = "CLOSED"
    """Final, filled."""
    CANCELED = "CANCELED"
    """Final, cancelled or expired; ``filled`` may be partial."""
    REJECTED = "REJECTED"
    """Final: the exchange refused it (or it never got through); nothing filled."""


FINAL_ORDER_STATUSES = frozenset({OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.REJECTED})


@dataclass(frozen=True)
class OrderFacts:
    """An order row as the pure decision logic sees it."""

    leg: Leg
    attempt: int
    client_order_id: str
    symbol: str
    side: str
    amount: float
    status: OrderStatus
    filled: float = 0.0
    sends: int = 0
    exchange_order_id: str | None = None
    average: float | None = None
    """The average fill price the exchange reported, if any."""
    fees: tuple[Fee, ...] = ()
    """The fees the exchange reported for the order so far (each a currency and a cost)."""
    venue: str | None = None
    """The venue the order is sent to, looked up on and cancelled on, and no other (a name of
    the engine's exchange mapping; None with a single exchange)."""
    reference_price: float | None = None
    """A limit order's reference: the venue's best price on the side it takes (a buy's ask, a
    sell's bid) when it was decided; None for a market order or a request's own limit."""
    limit_price: float | None = None
    """A limit IOC order's limit (``pricing``), stored with its intent so that a resend after
    a restart carries the same limit; None: a market order."""

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_ORDER_STATUSES

    @property
    def reduces_position(self) -> bool:
        """Whether this order closes (part of) a position the trade opened: an unwind closes
        leg A's. On a contract market it is sent reduce-only (``venues.gateway``)."""
        return self.leg is Leg.UNWIND

    @property
    def net(self) -> float:
        """The base amount that actually moved on the account: a buy's fill minus the fees
        charged in the base currency, a sell's fill plus them (it gives away more)."""
        base_fee = sum((f.cost for f in self.fees if f.currency == base_currency(self.symbol)), 0.0)
        return self.filled - base_fee if self.side == "buy" else self.filled + base_fee

    @classmethod
    def intent(
        cls,
        leg: Leg,
        attempt: int,
        client_order_id: str,
        symbol: str,
        side: str,
        amount: float,
        venue: str | None = None,
        *,
        reference_price: float | None = None,
        limit_price: float | None = None,
    ) -> OrderFacts:
        """An order as it is written before its send: nothing filled, no exchange id yet."""
        return cls(
            leg,
            attempt,
            client_order_id,
            symbol,
            side,
            amount,
            OrderStatus.INTENT,
            venue=venue,
            reference_price=reference_price,
            limit_price=limit_price,
        )

    @property
    def market(self) -> str:
        """The order's market as one text (``BTC/USDT@binance``; see ``market_key``)."""
        return market_key(self.symbol, self.venue)


def filled(orders: Iterable[OrderFacts], leg: Leg) -> float:
    """What ``leg``'s orders filled together (a leg may take several orders: remainders)."""
    return sum((o.filled for o in orders if o.leg is leg), 0.0)


@dataclass(frozen=True)
class Fee:
    """One fee an exchange charged on an order, in ccxt's unified sign: a positive cost was
    paid, a negative one (a maker rebate) was received."""

    currency: str
    cost: float


def base_currency(symbol: str) -> str:
    """The base currency of a ccxt symbol: BTC of ``BTC/USDT`` and of ``BTC/USDT:USDT``."""
    return symbol.split("/", 1)[0]


def net(orders: Iterable[OrderFacts], leg: Leg) -> float:
    """The base amount ``leg``'s orders moved on the account, after fees in the base currency
    (``OrderFacts.net``)."""
    return sum((o.net for o in orders if o.leg is leg), 0.0)


def average_price(orders: Iterable[OrderFacts], leg: Leg) -> float | None:
    """The volume-weighted average fill price of ``leg``'s orders; None if nothing filled or
    an order that filled has no reported average (the leg's average is then unknown)."""
    quantity = value = 0.0
    for o in orders:
        if o.leg is not leg or o.filled <= 0:
            continue
        if o.average is None:
            return None
        quantity += o.filled
        value += o.filled * o.average
    return value / quantity if quantity > 0 else None


def fee_totals(orders: Iterable[OrderFacts]) -> dict[str, float]:
    """Every fee of ``orders`` summed per currency (all legs, unwinds included)."""
    totals: dict[str, float] = {}
    for o in orders:
        for fee in o.fees:
            totals[fee.currency] = totals.get(fee.currency, 0.0) + fee.cost
    return totals


@dataclass(frozen=True)
class TradeRecord:
    id: str
    request: PairTradeRequest
    state: TradeState
    reason: str
    created_at: datetime
    updated_at: datetime
    orders: tuple[OrderFacts, ...] = ()
    version: int = 0
    """The trade's version as stored: a write must name it (see ``TradeStore.apply``)."""

    def filled(self, leg: Leg) -> float:
        return filled(self.orders, leg)

    @property
    def venues(self) -> tuple[str | None, ...]:
        """The venues the trade's legs go to (leg A's first), each once."""
        r = self.request
        return (r.venue_x,) if r.venue_y == r.venue_x else (r.venue_x, r.venue_y)


@dataclass(frozen=True)
class EventRecord:
    """One row of a trade's journal: a step it took, the order the step was about, when."""

    trade_id: str
    from_state: TradeState | None
    """None for the trade's first row, its acceptance."""
    to_state: TradeState
    cause: str
    client_order_id: str | None
    at: datetime


def accepted_cause(request: PairTradeRequest) -> str:
    """The cause of a new trade's first journal row."""
    return "trade accepted" + (f" (signal {request.signal_id})" if request.signal_id else "")


def journal(trade_id: str, expected: TradeState, change: Change, at: datetime) -> list[EventRecord]:
    """The journal rows writing ``change`` to a trade in state ``expected`` adds: the fact,
    then each move that follows from it. The store writes exactly these, and the engine
    publishes exactly these once they are committed (``ExecutionEngine.events``): one
    definition, so a bot's events and the journal cannot drift apart."""
    cid = change.new_order.client_order_id if change.new_order is not None else None
    if change.order_update is not None:
        cid = change.order_update.client_order_id
    state = change.to_state or expected
    rows = [EventRecord(trade_id, expected, state, change.cause, cid, at)]
    for move in change.then:
        cid = move.new_order.client_order_id if move.new_order is not None else None
        rows.append(EventRecord(trade_id, state, move.to_state, move.cause, cid, at))
        state = move.to_state
    return rows


def creation_journal(pending: TradeRecord, first: Change | None) -> list[EventRecord]:
    """A new trade's journal rows: its acceptance, then its first step if it was written with
    it (``TradeStore.create_trade``)."""
    at = pending.created_at
    accepted = EventRecord(
        pending.id, None, TradeState.PENDING, accepted_cause(pending.request), None, at
    )
    return [accepted, *(journal(pending.id, TradeState.PENDING, first, at) if first else ())]


@dataclass(frozen=True)
class TradeEvent:
    """One committed step of a trade, as a bot following it sees it
    (``ExecutionEngine.events``): a journal row with the state of the order it was about.

    A trade's events chain: each ``from_state`` is the previous event's ``to_state`` (the
    first event, the trade's acceptance, goes from PENDING to PENDING), and their ``at`` never
    decrease. A step that changes no state (a partial fill recorded, a remainder's intent)
    has ``from_state`` == ``to_state``."""

    trade_id: str
    from_state: TradeState
    to_state: TradeState
    cause: str
    at: datetime
    client_order_id: str | None = None
    leg: Leg | None = None
    venue: str | None = None
    """The order's venue (None with a single exchange, or for a step about no order)."""
    status: OrderStatus | None = None
    """The order's status once the step was committed."""
    filled: float | None = None
    """The order's cumulative fill once the step was committed (base units)."""


def trade_events(rows: Iterable[EventRecord], record: TradeRecord) -> list[TradeEvent]:
    """``rows`` (committed journal rows of ``record``'s trade) as events, each with its
    order's facts as ``record`` (the trade after the write) has them. An ``at`` earlier than
    the one before (the wall clock stepped back) is raised to it: events' times never
    decrease."""
    orders = {o.client_order_id: o for o in record.orders}
    events: list[TradeEvent] = []
    latest: datetime | None = None
    for row in rows:
        order = orders.get(row.client_order_id) if row.client_order_id else None
        latest = row.at if latest is None or row.at > latest else latest
        events.append(
            TradeEvent(
                trade_id=row.trade_id,
                from_state=row.from_state or row.to_state,
                to_state=row.to_state,
                cause=row.cause,
                at=latest,
                client_order_id=row.client_order_id,
                leg=order.leg if order else None,
                venue=order.venue if order else None,
                status=order.status if order else None,
                filled=order.filled if order else None,
            )
        )
    return events


@dataclass(frozen=True)
class OrderUpdate:
    client_order_id: str
    status: OrderStatus
    filled: float | None = None
    exchange_order_id: str | None = None
    average: float | None = None
    add_sends: int = 0
    error: str | None = None
    fees: tuple[Fee, ...] | None = None
    """The order's fees as now reported (they replace those stored); None: unchanged."""


@dataclass(frozen=True)
class Transition:
    """A state change that follows from facts already known (no I/O decides it), with the
    intent of the order it submits, if it submits one (the order is sent once it is stored;
    ``new_order`` is an ``OrderFacts.intent``)."""

    to_state: TradeState
    cause: str
    new_order: OrderFacts | None = None


@dataclass(frozen=True)
class Change:
    """One atomic step of a trade: optionally a new order, an order update, a new state, then
    the moves that follow from it (``then``), each journaled as its own transition.

    Folding those moves into the write that made them certain saves a commit each; a crash
    can only lose them together with the fact they follow from, and they would be decided
    again from that fact. The last of them may submit an order: its intent is then committed
    with the fact (persist-before-send holds), and after a crash it is looked up like any
    other intent."""

    cause: str
    to_state: TradeState | None = None
    new_order: OrderFacts | None = None
    order_update: OrderUpdate | None = None
    then: tuple[Transition, ...] = ()
    keep_parked_pair: bool = False
    """If the step ends PARKED, the trade keeps its pair key: an identical request is refused
    (``pair_parked``) until a human resolves it, instead of piling onto a naked leg."""


@dataclass(frozen=True)
class Lease:
    """Who drives a trade, and for how long that claim holds without renewal.

    ``seconds``: from the moment the database writes it, by the database's clock (what the
    engine uses: no worker's own clock can make a lease look expired early). ``until``: an
    instant given by the writer's clock (tools and tests that set a lease by hand)."""

    owner: str
    until: datetime | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.until is None) == (self.seconds is None):
            raise ValueError("a Lease has either until or seconds")


@dataclass(frozen=True)
class LeaseHolder:
    """A non-terminal trade whose lease another process holds."""

    trade_id: str
    owner: str
    until: datetime | None


@dataclass(frozen=True)
class Duplicate:
    """The request was not stored: an existing trade already holds its signal id or key."""

    existing: TradeRecord | None
    why: str
    reason: DuplicateReason


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def after(record: TradeRecord, change: Change, now: datetime | None = None) -> TradeRecord:
    """The trade once ``change`` is written (what a read-back would return): ``apply`` returns
    it without reading, and the engine uses it to see which moves follow from a fact."""
    state = change.to_state or record.state
    reason = record.reason
    if state is not record.state or state in (TradeState.PARKED, TradeState.UNKNOWN):
        reason = change.cause
    for move in change.then:
        state, reason = move.to_state, move.cause
    return TradeRecord(  # not dataclasses.replace: on every step's path, and 3x slower
        id=record.id,
        request=record.request,
        state=state,
        reason=reason,
        created_at=record.created_at,
        updated_at=now or utc_now(),
        orders=_orders_after(record.orders, change),
        version=record.version + 1,
    )


def hedges(record: TradeRecord, change: Change) -> bool:
    """Whether ``change`` commits the intent of an order that hedges or unwinds leg A (new,
    or re-armed for a resend). Until that write is durable its order cannot be sent, and leg
    A is unhedged: where writes wait for the database, such a write goes first."""
    new = [change.new_order, *(move.new_order for move in change.then)]
    if any(order is not None and order.leg is not Leg.A for order in new):
        return True
    update = change.order_update
    return (
        update is not None
        and update.status is OrderStatus.INTENT
        and any(
            o.client_order_id == update.client_order_id and o.leg is not Leg.A
            for o in record.orders
        )
    )


def same_facts(stored: TradeRecord, expected: TradeRecord) -> bool:
    """Whether ``stored`` (read back) holds exactly the facts of ``expected`` (``after`` a
    write): the same version, state, reason and orders. Timestamps aside: the writer's clock
    set them. The version alone would not do: another driver's write bumps it too."""
    return (
        stored.id == expected.id
        and stored.version == expected.version
        and stored.state is expected.state
        and stored.reason == expected.reason
        and stored.orders == expected.orders
    )


def _orders_after(orders: tuple[OrderFacts, ...], change: Change) -> tuple[OrderFacts, ...]:
    """The trade's orders once ``change`` is written: what a read-back would return."""
    if change.new_order is not None:
        orders = (*orders, change.new_order)
    orders = _updated(orders, change.order_update)
    for move in change.then:
        if move.new_order is not None:
            orders = (*orders, move.new_order)
    return orders


def _updated(orders: tuple[OrderFacts, ...], upd: OrderUpdate | None) -> tuple[OrderFacts, ...]:
    if upd is None:
        return orders
    return tuple(
        replace(  # what the order was sent as (leg, symbol, venue...) never changes
            o,
            status=upd.status,
            filled=o.filled if upd.filled is None else upd.filled,
            sends=o.sends + upd.add_sends,
            exchange_order_id=(
                o.exchange_order_id if upd.exchange_order_id is None else upd.exchange_order_id
            ),
            average=o.average if upd.average is None else upd.average,
            fees=o.fees if upd.fees is None else upd.fees,
        )
        if o.client_order_id == upd.client_order_id
        else o
        for o in orders
    )
