"""Every path of one trade, explored: is there any way to send an order while another's
existence is unknown, over-hedge, or stop short of an end?

The seeded simulation samples scenarios; this explores them all, up to a number of exchange
calls per trade. Breadth-first from a new trade, it runs the real ``decide`` and the real
record projection (``model.after``, through ``steps``: the very functions the engine writes
with), and at every exchange call branches on every answer a venue can give (``ANSWERS``:
accepted with each kind of fill, open then filled or cancelled, an id-only reply, timeouts
before and after the venue took it, a rate limit, a definite reject, an unrecognised error
after accept, a reply that cannot be the order, a lookup's found / not
found / failing / not believed...), and at every write on a crash: the process dies there, and
the trade resumes from what was persisted (``decide(resuming=True)``), as ``recover`` does.
What the venue holds is part of the state (an order it took whose reply was lost is there
for the lookup to find), and states are merged on the persisted facts, so each distinct
situation is explored once.

Invariants are checked on every state reached (``check_node``, ``check_terminal``); a violation
comes with the shortest path to it (breadth-first), which ``replay`` walks again.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from pairexec.fsm import steps
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.decide import (
    Action,
    GiveUp,
    Lookup,
    Move,
    Quote,
    Resend,
    Settle,
    Submit,
    decide,
    hedge_target,
    unwind_target,
)
from pairexec.fsm.machine import is_terminal
from pairexec.fsm.markets import MarketRules
from pairexec.fsm.model import (
    Change,
    OrderFacts,
    OrderStatus,
    TradeRecord,
    after,
    filled,
    journal,
    net,
)
from pairexec.fsm.pricing import OrderPolicy
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TradeState
from pairexec.fsm.venues.errors import ErrorMeaning
from pairexec.fsm.venues.gateway import Answered, CallResult, Failed, NotBelieved
from pairexec.fsm.venues.reports import ExchangeReport

STEP = 0.001
MARKETS = {
    "BTC/USDT": MarketRules(amount_step=STEP, min_amount=STEP, symbol="BTC/USDT"),
    "ETH/USDT": MarketRules(amount_step=STEP, min_amount=STEP, symbol="ETH/USDT"),
}
REQUEST = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell", 2.0)
REFERENCE = 100.0
"""The best price a quote answers with (a limit IOC leg's reference)."""
EPSILON = 1e-9
CONFIGS: dict[str, EngineConfig] = {
    "market": EngineConfig(lookup_attempts=2, leg_attempts=3, rate_limit_attempts=2),
    "limit_ladder": EngineConfig(
        lookup_attempts=2,
        leg_attempts=3,
        rate_limit_attempts=2,
        leg_b=OrderPolicy("limit_ioc", max_slippage_bps=10, widen_bps=10, after_cap="unwind"),
    ),
}
"""The policies explored: market legs, and a leg B laddered by limit IOCs (quotes too)."""

Decide = Callable[..., Action | None]
SHOWN = 3
"""Violations printed with their paths (breadth-first: the shortest come first)."""


class Violation(AssertionError):
    """A step the engine would take that breaks an invariant (found while expanding)."""


@dataclass(frozen=True)
class Held:
    """What the venue holds of one order: the truth a lookup or a settle reads."""

    status: OrderStatus
    filled: float


@dataclass(frozen=True)
class Node:
    """A situation of the trade: what is persisted, what the venue holds, and the in-memory
    rest a live process has (its quotes, an order it is about to send)."""

    record: TradeRecord
    venue: tuple[tuple[str, Held], ...] = ()
    quotes: tuple[tuple[tuple[str, str], float | None], ...] = ()
    resuming: bool = False
    """The process died: the next decision is a restart's (``recover``)."""
    sending: str | None = None
    """The client id of an order whose intent is committed and whose create comes next."""
    calls: int = 0

    def held(self, cid: str) -> Held | None:
        return dict(self.venue).get(cid)

    def key(self) -> tuple[Any, ...]:
        """The persisted facts and the venue's truth: what makes two paths the same state."""
        orders = tuple(
            (o.leg, o.attempt, o.status, round(o.filled, 9), o.sends, o.amount, o.limit_price)
            for o in self.record.orders
        )
        return (self.record.state, orders, self.venue, self.quotes, self.resuming, self.sending)


@dataclass(frozen=True)
class Edge:
    label: str
    node: Node


@dataclass
class Report:
    config: str
    depth: int
    states: int = 0
    transitions: int = 0
    deepest: int = 0
    cut: int = 0
    """States left unexplored at the depth bound (not terminal yet)."""
    terminal: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[str, list[str]]] = field(default_factory=list)
    """(what, the shortest path of step labels to it)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        ends = ", ".join(f"{s} {n}" for s, n in sorted(self.terminal.items())) or "none"
        out = [
            f"{self.config}: {self.states:,} states, {self.transitions:,} transitions, up to "
            f"{self.depth} exchange calls a trade ({self.deepest} reached, {self.cut:,} states "
            f"cut there), {self.seconds:.1f} s; ends: {ends}",
        ]
        if self.violations:
            out.append(
                f"  {len(self.violations)} violation(s); the shortest "
                f"{min(SHOWN, len(self.violations))}, each a path replay() walks again:"
            )
        for what, path in self.violations[:SHOWN]:
            out.append(f"  VIOLATION {what}")
            out.extend(f"    {i}. {step}" for i, step in enumerate(path, 1))
        return out


# --- the venue's answers ----------------------------------------------------------------------


def _report(cid: str, status: OrderStatus, amount: float) -> Answered:
    return Answered(ExchangeReport(f"x-{cid[:6]}", status, amount, REFERENCE if amount else None))


def _part(amount: float) -> float:
    return max(STEP, round(amount * 0.6 / STEP) * STEP) if amount > STEP else amount


CreateAnswer = Callable[[OrderFacts], tuple[Held | None, CallResult]]
"""(what the venue holds of the order after the create, what the create returned)."""

ANSWERS: dict[str, CreateAnswer] = {
    "filled": lambda o: (
        Held(OrderStatus.CLOSED, o.amount),
        _report(o.client_order_id, OrderStatus.CLOSED, o.amount),
    ),
    "partly filled": lambda o: (
        Held(OrderStatus.CANCELED, _part(o.amount)),
        _report(o.client_order_id, OrderStatus.CANCELED, _part(o.amount)),
    ),
    "nothing filled": lambda o: (
        Held(OrderStatus.CANCELED, 0.0),
        _report(o.client_order_id, OrderStatus.CANCELED, 0.0),
    ),
    "open": lambda o: (
        Held(OrderStatus.OPEN, 0.0),
        _report(o.client_order_id, OrderStatus.OPEN, 0.0),
    ),
    "open, partly filled": lambda o: (
        Held(OrderStatus.OPEN, _part(o.amount)),
        _report(o.client_order_id, OrderStatus.OPEN, _part(o.amount)),
    ),
    "id only (filled behind it)": lambda o: (
        Held(OrderStatus.CLOSED, o.amount),
        _report(o.client_order_id, OrderStatus.OPEN, 0.0),
    ),
    "timeout before accept": lambda o: (None, Failed(ErrorMeaning.UNKNOWN, "RequestTimeout")),
    "timeout after accept": lambda o: (
        Held(OrderStatus.CLOSED, o.amount),
        Failed(ErrorMeaning.UNKNOWN, "RequestTimeout"),
    ),
    "unrecognised error after accept": lambda o: (
        Held(OrderStatus.CLOSED, o.amount),
        Failed(ErrorMeaning.UNKNOWN, "ExchangeError: system error"),
    ),
    "insane reply after accept": lambda o: (
        Held(OrderStatus.CLOSED, o.amount),
        NotBelieved(ErrorMeaning.UNKNOWN, "not believed: filled 1.5x the amount"),
    ),
    "rate limited every try": lambda o: (
        None,
        Failed(ErrorMeaning.RETRY_LATER, "RateLimitExceeded"),
    ),
    "definite reject": lambda o: (None, Failed(ErrorMeaning.REJECTED, "InsufficientFunds")),
}


# --- exploring ----------------------------------------------------------------------------------


def new_trade(request: PairTradeRequest = REQUEST) -> TradeRecord:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return TradeRecord("e" * 32, request, TradeState.PENDING, "", at, at)


class Explorer:
    def __init__(self, config: EngineConfig, decide_fn: Decide = decide) -> None:
        self.config = config
        self.decide = decide_fn

    def _decide(self, node: Node, record: TradeRecord | None = None) -> Action | None:
        return self.decide(
            record or node.record,
            self.config,
            markets=MARKETS,
            prices={},
            quotes=dict(node.quotes),
            resuming=node.resuming if record is None else False,
            age=0.0 if node.resuming and record is None else None,
        )

    def _write(self, node: Node, fact: steps.Fact, label: str, **more: Any) -> Iterator[Edge]:
        """The write of ``fact`` (with its folded moves), then the live process goes on; or the
        process dies right after the commit."""
        change = steps.folded(node.record, fact, lambda r: self._decide(node, r))
        record = after(node.record, change)
        _check_change(node.record, change, record)
        sending = change.then[-1].new_order if change.then else None
        base = replace(node, record=record, resuming=False, **more)
        yield Edge(label, replace(base, sending=sending.client_order_id if sending else None))
        yield Edge(
            f"{label}; the process dies after the write",
            replace(base, resuming=True, sending=None, quotes=()),
        )

    def children(self, node: Node) -> Iterator[Edge]:
        if node.sending is not None:
            yield from self._create(node, _order(node.record, node.sending))
            return
        action = self._decide(node)
        node = replace(node, resuming=False) if node.resuming else node
        if action is None:
            return
        if isinstance(action, Submit):
            fact = steps.submitted(node.record, action)
            assert fact.new_order is not None
            for edge in self._write(node, fact, f"{_leg(action.leg)} intent {action.amount:g}"):
                sending = edge.node.sending or (
                    None if edge.node.resuming else fact.new_order.client_order_id
                )
                yield replace(edge, node=replace(edge.node, sending=sending))
        elif isinstance(action, Resend):
            if action.order.status is not OrderStatus.ABSENT:
                raise Violation(
                    f"{_name(action.order)} is resent while {action.order.status.value}, "
                    "without a lookup that found it absent"
                )
            yield from self._write(node, steps.resent(action), f"resend {_name(action.order)}")
        elif isinstance(action, Move):
            yield from self._write(node, steps.moved(action), f"move: {action.cause}")
        elif isinstance(action, GiveUp):
            yield from self._write(node, steps.given_up(action), f"give up {_name(action.order)}")
        elif isinstance(action, Lookup):
            yield from self._lookup(node, action.order)
        elif isinstance(action, Settle):
            yield from self._settle(node, action.order)
        elif isinstance(action, Quote):
            for price in (REFERENCE, None):
                quotes = tuple(sorted({**dict(node.quotes), action.key: price}.items()))
                said = "none" if price is None else f"{price:g}"
                yield Edge(
                    f"quote {action.key[0]} {action.side}: {said}",
                    replace(node, quotes=quotes, calls=node.calls + 1),
                )

    def _create(self, node: Node, order: OrderFacts) -> Iterator[Edge]:
        node = replace(node, sending=None, quotes=(), calls=node.calls + 1)
        name = _name(order)
        yield Edge(f"{name}: the process dies before the create", replace(node, resuming=True))
        # A create of an order the venue already holds never gets here: ``check_node``
        # refuses that state (a second order where a reused client id is accepted).
        answers = [(label, *answer(order)) for label, answer in ANSWERS.items()]
        for label, held, result in answers:
            venue = _holding(node, order.client_order_id, held)
            yield Edge(
                f"{name} create: {label}; the process dies before the answer is written",
                replace(node, venue=venue, resuming=True),
            )
            sends = self.config.rate_limit_attempts if label == "rate limited every try" else 1
            fact = steps.create_answered(order, result, sends)
            yield from self._write(replace(node, venue=venue), fact, f"{name} create: {label}")

    def _lookup(self, node: Node, order: OrderFacts) -> Iterator[Edge]:
        name = _name(order)
        if node.record.state is not TradeState.UNKNOWN:  # first the INTENT becomes UNKNOWN
            yield from self._write(node, steps.resuming(order), f"{name}: may have been sent")
            return
        node = replace(node, calls=node.calls + 1)
        held = node.held(order.client_order_id)
        if held is not None:
            found = steps.lookup_answered(
                order, _report(order.client_order_id, held.status, held.filled)
            )
        else:
            found = steps.lookup_answered(order, Failed(ErrorMeaning.NOT_FOUND, "OrderNotFound"))
        assert found is not None
        yield from self._write(node, found, f"{name} lookup: {'found' if held else 'not found'}")
        tries = self.config.lookup_attempts
        failed = steps.lookups_failed(order, tries, 0, "RequestTimeout")
        yield from self._stopped(node, failed, f"{name} lookups: all time out")
        if held is not None:  # a venue that answers with something that cannot be the order
            insane = steps.lookups_failed(order, tries, tries, "not believed")
            yield from self._write(node, insane, f"{name} lookups: none believable")

    def _settle(self, node: Node, order: OrderFacts) -> Iterator[Edge]:
        name = _name(order)
        node = replace(node, calls=node.calls + 1)
        held = node.held(order.client_order_id) or Held(OrderStatus.OPEN, order.filled)
        endings = [
            ("fills while open", Held(OrderStatus.CLOSED, order.amount), "filled while open")
        ]
        if held.status is OrderStatus.OPEN:
            endings.append(
                ("rest cancelled", Held(OrderStatus.CANCELED, held.filled), "remainder cancelled")
            )
        else:  # the venue had closed it behind an id-only reply
            endings = [("found closed", held, "filled while open")]
        for label, final, how in endings:
            venue = _holding(node, order.client_order_id, final)
            report = ExchangeReport(
                f"x-{order.client_order_id[:6]}",
                final.status,
                final.filled,
                REFERENCE if final.filled else None,
            )
            fact = steps.report_fact(
                order, report, f"{order.client_order_id} {how}", of_amount=True
            )
            yield from self._write(replace(node, venue=venue), fact, f"{name} settle: {label}")
        failed = steps.settle_failed(
            order,
            Failed(ErrorMeaning.UNKNOWN, "RequestTimeout"),
            "RequestTimeout",
            self.config.lookup_attempts,
        )
        yield from self._stopped(node, failed, f"{name} settle: every fetch fails")

    def _stopped(self, node: Node, fact: steps.Fact, label: str) -> Iterator[Edge]:
        """A fact without a move (the reason alone): the drive stops there, for ``recover``."""
        for edge in self._write(node, fact, label):
            yield replace(edge, node=replace(edge.node, resuming=True, sending=None, quotes=()))


def explore(
    depth: int,
    config_name: str = "market",
    decide_fn: Decide = decide,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Breadth-first over every path of one trade, up to ``depth`` exchange calls."""
    config = CONFIGS[config_name]
    explorer = Explorer(config, decide_fn)
    report = Report(config_name, depth)
    started = time.perf_counter()
    root = Node(new_trade())
    parents: dict[tuple[Any, ...], tuple[tuple[Any, ...] | None, str]] = {
        root.key(): (None, "a new trade")
    }
    queue = deque([root])
    while queue:
        node = queue.popleft()
        report.states += 1
        report.deepest = max(report.deepest, node.calls)
        problem = check_node(node, config)
        if problem is None and is_terminal(node.record.state) and node.sending is None:
            report.terminal[node.record.state.value] += 1
            problem = check_terminal(node, config)
            if problem is None:
                continue
        if problem is not None:
            report.violations.append((problem, _path(parents, node.key())))
            continue
        if node.calls >= depth:
            report.cut += 1
            continue
        try:
            edges = list(explorer.children(node))
        except Violation as exc:
            report.violations.append((str(exc), _path(parents, node.key())))
            continue
        except Exception as exc:  # a decision or a projection that fails is a finding too
            report.violations.append((f"{type(exc).__name__}: {exc}", _path(parents, node.key())))
            continue
        for edge in edges:
            report.transitions += 1
            key = edge.node.key()
            if key in parents:
                continue
            parents[key] = (node.key(), edge.label)
            queue.append(edge.node)
        if progress is not None and report.states % 5000 == 0:
            report.seconds = time.perf_counter() - started
            progress(report)
    report.seconds = time.perf_counter() - started
    return report


def replay(path: list[str], config_name: str = "market", decide_fn: Decide = decide) -> Node:
    """Walk ``path`` (a violation's step labels, the first one the new trade) again and
    return where it ends: a counterexample is a scenario, not a story."""
    explorer = Explorer(CONFIGS[config_name], decide_fn)
    node = Node(new_trade())
    for label in path[1:]:
        matches = [e.node for e in explorer.children(node) if e.label == label]
        if not matches:
            raise ValueError(f"no step {label!r} from here")
        node = matches[0]
    return node


# --- invariants -----------------------------------------------------------------------------------


def check_node(node: Node, config: EngineConfig) -> str | None:
    """What must hold in every state."""
    record, request = node.record, node.record.request
    if node.sending is not None:
        others = [
            o
            for o in record.orders
            if o.client_order_id != node.sending
            and o.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN)
        ]
        if others:
            return f"an order is sent while {_name(others[0])}'s existence is unknown"
        if node.held(node.sending) is not None:  # Binance takes a closed order's id again
            return (
                f"{_name(_order(record, node.sending))} is sent again while the venue holds it: "
                "a second order where a reused client id is accepted"
            )
    target = hedge_target(request, record.orders, config.hedge_basis)
    if filled(record.orders, Leg.B) > target + EPSILON:
        return f"over-hedged: leg B filled {filled(record.orders, Leg.B):g} > {target:g}"
    held_a = net(record.orders, Leg.A)
    if filled(record.orders, Leg.UNWIND) > held_a + EPSILON:
        return f"unwound {filled(record.orders, Leg.UNWIND):g} of leg A, more than its {held_a:g}"
    sent_b = sum(
        o.amount for o in record.orders if o.leg is Leg.B and o.status is OrderStatus.INTENT
    )
    if sent_b + filled(record.orders, Leg.B) > target + EPSILON and node.sending is not None:
        return f"a leg B order of {sent_b:g} would over-hedge {target:g}"
    return None


def check_terminal(node: Node, config: EngineConfig) -> str | None:
    """What an end must show."""
    record, request = node.record, node.record.request
    open_orders = [
        o
        for o in record.orders
        if o.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN)
    ]
    if record.state is not TradeState.PARKED and open_orders:
        return (
            f"{record.state.value} with {_name(open_orders[0])} still {open_orders[0].status.value}"
        )
    if record.state is TradeState.DONE:
        missing = hedge_target(request, record.orders, config.hedge_basis) - filled(
            record.orders, Leg.B
        )
        if missing > STEP + EPSILON:
            return f"DONE with leg B {missing:g} short of its hedge"
    if record.state is TradeState.ABORTED:
        left = unwind_target(request, record.orders, config.hedge_basis) - filled(
            record.orders, Leg.UNWIND
        )
        if left > STEP + EPSILON and "left" not in record.reason and "dust" not in record.reason:
            return f"ABORTED with {left:g} of leg A neither unwound nor stated ({record.reason})"
    if record.state is TradeState.FAILED and filled(record.orders, Leg.A) > EPSILON:
        return f"FAILED although leg A filled {filled(record.orders, Leg.A):g}"
    return None


def _check_change(before: TradeRecord, change: Change, record: TradeRecord) -> None:
    """The journal a write adds must replay to the state the projection says."""
    rows = journal(before.id, before.state, change, record.updated_at)
    state = before.state
    for row in rows:
        if row.from_state is not state:
            raise AssertionError(f"journal row from {row.from_state} after {state}")
        state = row.to_state
    if state is not record.state:
        raise AssertionError(f"the journal ends {state.value}, the record {record.state.value}")


# --- helpers --------------------------------------------------------------------------------------


def _order(record: TradeRecord, cid: str) -> OrderFacts:
    return next(o for o in record.orders if o.client_order_id == cid)


def _holding(node: Node, cid: str, held: Held | None) -> tuple[tuple[str, Held], ...]:
    venue = dict(node.venue)
    if held is not None:
        venue[cid] = held
    return tuple(sorted(venue.items()))


def _leg(leg: Leg) -> str:
    return "unwind" if leg is Leg.UNWIND else f"leg {leg.value}"


def _name(order: OrderFacts) -> str:
    return f"{_leg(order.leg)} #{order.attempt}"


def _path(
    parents: dict[tuple[Any, ...], tuple[tuple[Any, ...] | None, str]], key: tuple[Any, ...]
) -> list[str]:
    labels: list[str] = []
    current: tuple[Any, ...] | None = key
    while current is not None:
        parent, label = parents[current]
        labels.append(label)
        current = parent
    return labels[::-1]
