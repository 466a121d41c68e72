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

The markets are explored too (``MARKETS``): spot markets without fees, the same with fees in the
coin each order buys (leg A then holds less than it filled: the hedge and the unwind must
follow its net), and leg B on a perpetual counted in contracts of 0.01 ETH (the venue fills
whole contracts, so a hedge of 1.998 ETH is 199 contracts and dust).

Termination is a property of the merged state graph, not of one path: a loop in it that needs
no crash and no stop for ``recover`` is a trade the engine itself could drive forever, and is
reported as a violation with a replayable path round it (``_terminates``). Loops through a
crash or a stop are not: the process dying at the same point every time, or a venue that never
answers a lookup, is not the engine's to end (it never resends blind). When nothing was cut at
the depth, the longest path of one drive (from a new trade or a restart to an end, a stop or a
crash) is then a proven bound on the exchange calls a drive makes. The depth counts calls
over every drive of a path, and the restarts have no end, so a configuration that retries is
never explored to the end that way; a cap on drive ends (``explore(restarts=K)``) bounds the
restarts instead, and the bound is then of a trade's first K+1 drives (of every drive, if no
drive end past the cap reaches a state not explored). A bound over a trade's calls in all
its drives cannot exist: a process that dies at the same point forever makes them endless.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
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
from pairexec.fsm.markets import ANY_AMOUNT, TICK_SIZE, MarketRules, rules_from_ccxt
from pairexec.fsm.model import (
    Change,
    Fee,
    OrderFacts,
    OrderStatus,
    TradeRecord,
    after,
    base_currency,
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
PERP = "ETH/USDT:USDT"
REFERENCE = 100.0
"""The best price a quote answers with (a limit IOC leg's reference), and every fill's price."""
FEE_RATE = 0.001
"""A spot venue's default taker fee: 0.1% of each fill, in the coin the order buys."""
EPSILON = 1e-9
CONFIGS: dict[str, EngineConfig] = {
    "market": EngineConfig(lookup_attempts=2, leg_attempts=3, rate_limit_attempts=2),
    "limit_ladder": EngineConfig(
        lookup_attempts=2,
        leg_attempts=3,
        rate_limit_attempts=2,
        leg_b=OrderPolicy("limit_ioc", max_slippage_bps=10, widen_bps=10, after_cap="unwind"),
    ),
    "market_once": EngineConfig(
        lookup_attempts=1, leg_attempts=1, rate_limit_attempts=1, max_sends_per_order=1
    ),
}
"""The engines explored: market legs, a leg B laddered by limit IOCs (quotes too), and market
legs with every count at one (a lookup a drive, an order a leg, a send an id), small enough
to be explored to the end (depth 7, well under a second) and so to prove its bound."""


@dataclass(frozen=True)
class Markets:
    """The markets one trade is explored on: the request, each market's rules, and the fee
    the venue charges on every fill."""

    request: PairTradeRequest
    rules: Mapping[str, MarketRules]
    fee_rate: float = 0.0
    """Of each fill, in the coin the order buys (a buy's base, a sell's quote): a buy then
    holds less than it filled, which is what leg B must hedge and an unwind may sell."""

    def fees(self, order: OrderFacts, amount: float) -> tuple[Fee, ...] | None:
        """The fees a report of ``amount`` filled carries (None: the venue reports none)."""
        if not self.fee_rate:
            return None
        if amount <= 0:
            return ()
        if order.side == "buy":
            return (Fee(base_currency(order.symbol), self.fee_rate * amount),)
        quote = order.symbol.split("/", 1)[1].split(":", 1)[0]
        return (Fee(quote, self.fee_rate * amount * REFERENCE),)

    def fills(self, order: OrderFacts) -> dict[str, float]:
        """What the venue fills of ``order``: all of it, a part, none. It counts in its own
        units (contracts on a contract market: what the gateway sends, ``to_contracts``), so
        a part is whole contracts, reported back in base units (``to_base``)."""
        rules = self.rules.get(order.market, ANY_AMOUNT)
        units = rules.to_contracts(order.amount)
        step = (rules.contract_step if rules.is_contract else rules.amount_step) or STEP
        part = max(step, round(units * 0.6 / step) * step) if units > step else units
        return {"all": rules.to_base(units), "part": rules.to_base(part), "none": 0.0}


SPOT = {
    "BTC/USDT": MarketRules(amount_step=STEP, min_amount=STEP, symbol="BTC/USDT"),
    "ETH/USDT": MarketRules(amount_step=STEP, min_amount=STEP, symbol="ETH/USDT"),
}
REQUEST = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell", 2.0)
CONTRACT = rules_from_ccxt(
    {
        "contract": True,
        "contractSize": 0.01,
        "precision": {"amount": 1},
        "limits": {"amount": {"min": 1}},
    },
    TICK_SIZE,
    PERP,
)
"""A linear perpetual as ccxt describes it: 0.01 ETH a contract, whole contracts, one at least."""
MARKETS: dict[str, Markets] = {
    "spot": Markets(REQUEST, SPOT),
    "fees": Markets(REQUEST, SPOT, FEE_RATE),
    "contract": Markets(
        replace(REQUEST, pair_y=PERP), {"BTC/USDT": SPOT["BTC/USDT"], PERP: CONTRACT}, FEE_RATE
    ),
}
"""The markets explored: two spot markets without fees; with fees (leg A's 1 BTC holds 0.999:
leg B is 1.998); and leg B on a perpetual in contracts (1.998 ETH is 199 contracts and dust)."""

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
    """The process died, or its drive stopped for ``recover``: the next decision is a
    restart's."""
    sending: str | None = None
    """The client id of an order whose intent is committed and whose create comes next."""
    calls: int = 0

    def held(self, cid: str) -> Held | None:
        return dict(self.venue).get(cid)

    def key(self) -> tuple[Any, ...]:
        """The persisted facts and the venue's truth: what makes two paths the same state."""
        orders = tuple(
            (
                o.leg,
                o.attempt,
                o.status,
                round(o.filled, 9),
                o.sends,
                o.amount,
                o.limit_price,
                o.fees,
            )
            for o in self.record.orders
        )
        return (self.record.state, orders, self.venue, self.quotes, self.resuming, self.sending)


@dataclass(frozen=True)
class Edge:
    label: str
    node: Node

    @property
    def ends_drive(self) -> bool:
        """The process dies on this step, or its drive stops there for ``recover``."""
        return self.node.resuming


@dataclass
class Report:
    config: str
    depth: int | None
    """Exchange calls a path may make in all (None: no limit)."""
    markets: str = "spot"
    states: int = 0
    transitions: int = 0
    deepest: int = 0
    cut: int = 0
    """States left unexplored at the depth bound (not terminal yet)."""
    restarts: int | None = None
    """Drive ends a path may have before the rest is left unexplored (None: no cap)."""
    capped: int = 0
    """States first reached by a drive end past the cap: checked, not expanded. None of
    them is in the bound's scope (a drive after more than ``restarts`` restarts); when there
    are none, the cap left nothing out."""
    terminal: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[str, list[str]]] = field(default_factory=list)
    """(what, the shortest path of step labels to it)."""
    seconds: float = 0.0
    loops: int = 0
    """States where a loop without a crash or a stop closes (each one is a violation)."""
    bound: int | None = None
    """Exchange calls that any drive makes at most; None unless nothing was cut."""
    longest: list[str] = field(default_factory=list)
    """A new trade's longest drive (its calls: ``first``), a path ``replay`` walks."""
    first: int | None = None
    worst: list[str] = field(default_factory=list)
    """A path whose last drive makes ``bound`` calls (the drive begins after step
    ``worst_from``): the bound is reached, not only claimed, be it by a restart's drive."""
    worst_from: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def exhaustive(self) -> bool:
        """Every state reachable was expanded: nothing cut at the depth, nothing left behind
        a violation."""
        return self.ok and self.cut == 0

    def lines(self) -> list[str]:
        ends = ", ".join(f"{s} {n}" for s, n in sorted(self.terminal.items())) or "none"
        if self.depth is None:
            scope = "exchange calls unlimited"  # (``deepest``: of the first path to each)
        else:
            scope = (
                f"up to {self.depth} exchange calls a trade ({self.deepest} reached, "
                f"{self.cut:,} states cut there)"
            )
        if self.restarts is not None:
            scope += (
                f", up to {self.restarts} restart(s) a trade ({self.capped:,} states past "
                "them, checked, not expanded)"
            )
        out = [
            f"{self.config}/{self.markets}: {self.states:,} states, {self.transitions:,} "
            f"transitions, {scope}, {self.seconds:.1f} s; ends: {ends}",
        ]
        if self.bound is not None:
            drives = "every drive (a new trade, or a restart)"
            if self.restarts is not None and self.capped:
                drives = (
                    f"each of a trade's first {self.restarts + 1} drive(s) (paths of up to "
                    f"{self.restarts} restart(s))"
                )
            elif self.restarts is not None:  # every drive end past the cap led back
                drives = (
                    "every drive (a new trade, or a restart after any number of them: no "
                    f"drive end past {self.restarts} restart(s) leads to a state not explored)"
                )
            out.append(
                f"  terminates: nothing cut, no loop without a crash; {drives} ends, stops "
                f"for recover or dies within {self.bound} exchange calls, a new trade's first "
                f"within {self.first}"
            )
        elif not self.loops and self.depth is not None:
            out.append(
                f"  bound not proven up to depth {self.depth} ({self.cut:,} states cut); "
                "no loop without a crash among the states reached"
            )
        if self.loops:
            out.append(f"  {self.loops:,} state(s) where a loop without a crash closes")
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


@dataclass(frozen=True)
class Answer:
    """A create's outcome: what the venue holds of the order after it (None: nothing), and
    what the create returns, a report or an error. Fills are named (``Markets.fills``: all,
    part, none) so that each market's units size them."""

    holds: tuple[OrderStatus, str] | None
    returns: tuple[OrderStatus, str] | CallResult


_CLOSED, _CANCELED, _OPEN = OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.OPEN
_TIMEOUT = Failed(ErrorMeaning.UNKNOWN, "RequestTimeout")

ANSWERS: dict[str, Answer] = {
    "filled": Answer((_CLOSED, "all"), (_CLOSED, "all")),
    "partly filled": Answer((_CANCELED, "part"), (_CANCELED, "part")),
    "nothing filled": Answer((_CANCELED, "none"), (_CANCELED, "none")),
    "open": Answer((_OPEN, "none"), (_OPEN, "none")),
    "open, partly filled": Answer((_OPEN, "part"), (_OPEN, "part")),
    "id only (filled behind it)": Answer((_CLOSED, "all"), (_OPEN, "none")),
    "timeout before accept": Answer(None, _TIMEOUT),
    "timeout after accept": Answer((_CLOSED, "all"), _TIMEOUT),
    "unrecognised error after accept": Answer(
        (_CLOSED, "all"), Failed(ErrorMeaning.UNKNOWN, "ExchangeError: system error")
    ),
    "insane reply after accept": Answer(
        (_CLOSED, "all"), NotBelieved(ErrorMeaning.UNKNOWN, "not believed: filled 1.5x the amount")
    ),
    "rate limited every try": Answer(None, Failed(ErrorMeaning.RETRY_LATER, "RateLimitExceeded")),
    "definite reject": Answer(None, Failed(ErrorMeaning.REJECTED, "InsufficientFunds")),
}


# --- exploring ----------------------------------------------------------------------------------


def new_trade(request: PairTradeRequest = REQUEST) -> TradeRecord:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return TradeRecord("e" * 32, request, TradeState.PENDING, "", at, at)


class Explorer:
    def __init__(
        self, config: EngineConfig, decide_fn: Decide = decide, markets: Markets | None = None
    ) -> None:
        self.config = config
        self.decide = decide_fn
        self.markets = markets or MARKETS["spot"]

    def root(self) -> Node:
        return Node(new_trade(self.markets.request))

    def _decide(self, node: Node, record: TradeRecord | None = None) -> Action | None:
        return self.decide(
            record or node.record,
            self.config,
            markets=self.markets.rules,
            prices={},
            quotes=dict(node.quotes),
            resuming=node.resuming if record is None else False,
            age=0.0 if node.resuming and record is None else None,
        )

    def _report(self, order: OrderFacts, status: OrderStatus, amount: float) -> ExchangeReport:
        """What the venue reports of ``order``: its fill at the reference, and its fees."""
        return ExchangeReport(
            f"x-{order.client_order_id[:6]}",
            status,
            amount,
            REFERENCE if amount else None,
            self.markets.fees(order, amount),
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
            cid = action.order.client_order_id
            for edge in self._write(node, steps.resent(action), f"resend {_name(action.order)}"):
                if not edge.ends_drive:  # the engine sends it straight after the write
                    edge = replace(edge, node=replace(edge.node, sending=cid))
                yield edge
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
        fills = self.markets.fills(order)
        for label, answer in ANSWERS.items():
            held = None if answer.holds is None else Held(answer.holds[0], fills[answer.holds[1]])
            result = answer.returns
            if isinstance(result, tuple):
                result = Answered(self._report(order, result[0], fills[result[1]]))
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
            report = self._report(order, held.status, held.filled)
            found = steps.lookup_answered(order, Answered(report))
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
        whole = self.markets.fills(order)["all"]
        endings = [("fills while open", Held(OrderStatus.CLOSED, whole), "filled while open")]
        if held.status is OrderStatus.OPEN:
            endings.append(
                ("rest cancelled", Held(OrderStatus.CANCELED, held.filled), "remainder cancelled")
            )
        else:  # the venue had closed it behind an id-only reply
            endings = [("found closed", held, "filled while open")]
        for label, final, how in endings:
            venue = _holding(node, order.client_order_id, final)
            report = self._report(order, final.status, final.filled)
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


@dataclass
class _Graph:
    """The merged state graph as explored: each state an id (in the order found), how it was
    first reached, and, once expanded, its steps within a drive and its drive's ends."""

    ids: dict[tuple[Any, ...], int] = field(default_factory=dict)
    first: list[tuple[int, str]] = field(default_factory=list)
    """Per id: (the state it was first reached from, -1 for the new trade; the step's label)."""
    starts: set[int] = field(default_factory=lambda: {0})
    """The states a drive begins at: the new trade, and every one a drive end reaches."""
    live: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Per expanded id: (the next state, the exchange calls the step makes), for every step
    the same drive goes on with."""
    ends: dict[int, int] = field(default_factory=dict)
    """Per expanded id: the most exchange calls a step that ends the drive there makes (a
    crash, a stop for ``recover``); absent if no step does."""

    def add(self, key: tuple[Any, ...], parent: int, label: str) -> int | None:
        """The id of a state not seen before, or None."""
        if key in self.ids:
            return None
        self.ids[key] = len(self.first)
        self.first.append((parent, label))
        return self.ids[key]

    def path(self, at: int) -> list[str]:
        labels: list[str] = []
        while at >= 0:
            at, label = self.first[at]
            labels.append(label)
        return labels[::-1]


def explore(
    depth: int | None,
    config_name: str = "market",
    decide_fn: Decide = decide,
    progress: Callable[[Report], None] | None = None,
    markets: str = "spot",
    restarts: int | None = None,
) -> Report:
    """Breadth-first over every path of one trade, up to ``depth`` exchange calls (None: no
    limit) and ``restarts`` drive ends (None: no cap), then the graph of the states reached,
    for loops and a bound (``_terminates``).

    The depth alone never exhausts a configuration that retries: each crash or stop starts a
    drive with fresh counts (lookups, rate-limit waits), so the restarts, and the states, have
    no end. The cap bounds them instead. With it, the states are explored a restart at a
    time: breadth-first, every state of the drives after K restarts before any of those
    after K + 1. Each state is so first reached with the fewest
    restarts any path to it has (a step within a drive leads to a live state, a drive end to
    a resuming one: the two never meet in ``Node.key()``, so a state first reached by a
    drive end past the fewest is not possible), which is why the count need not be part of
    the key: what follows a state does not depend on how it was reached, and the fewest
    restarts leave the most of the cap, whose paths include every other's. A state
    reached after ``restarts`` restarts has its drive explored in full (its steps, and the
    calls of each step that ends it, which the bound counts); the drive ends are checked
    but go no further (``Report.capped``). A counterexample is then the shortest among those
    with the fewest restarts."""
    config = CONFIGS[config_name]
    explorer = Explorer(config, decide_fn, MARKETS[markets])
    report = Report(config_name, depth, markets, restarts=restarts)
    started = time.perf_counter()
    graph = _Graph()
    root = explorer.root()
    graph.add(root.key(), -1, "a new trade")
    queue = deque([(0, root)])
    restarted: deque[tuple[int, Node]] = deque()  # with a cap, the next restart's drives
    level = 0
    rules = explorer.markets.rules
    while queue or restarted:
        if not queue:  # every drive after ``level`` restarts explored: on to the next
            queue, restarted, level = restarted, queue, level + 1
        at, node = queue.popleft()
        report.states += 1
        report.deepest = max(report.deepest, node.calls)
        problem = check_node(node, config, rules)
        if problem is None and is_terminal(node.record.state) and node.sending is None:
            report.terminal[node.record.state.value] += 1
            problem = check_terminal(node, config, rules)
            if problem is None:
                continue
        if problem is not None:
            report.violations.append((problem, graph.path(at)))
            continue
        if depth is not None and node.calls >= depth:
            report.cut += 1
            continue
        if restarts is not None and level > restarts:
            report.capped += 1
            continue
        try:
            edges = list(explorer.children(node))
        except Violation as exc:
            report.violations.append((str(exc), graph.path(at)))
            continue
        except Exception as exc:  # a decision or a projection that fails is a finding too
            report.violations.append((f"{type(exc).__name__}: {exc}", graph.path(at)))
            continue
        live: list[tuple[int, int]] = []
        for edge in edges:
            report.transitions += 1
            key = edge.node.key()
            new = graph.add(key, at, edge.label)
            calls = edge.node.calls - node.calls
            if edge.ends_drive:
                graph.ends[at] = max(graph.ends.get(at, 0), calls)
                if new is not None:
                    graph.starts.add(new)
                    (queue if restarts is None else restarted).append((new, edge.node))
            else:
                if new is not None:
                    queue.append((new, edge.node))
                live.append((graph.ids[key], calls))
        graph.live[at] = tuple(live)
        if progress is not None and report.states % 5000 == 0:
            report.seconds = time.perf_counter() - started
            progress(report)
    _terminates(report, graph, explorer)
    report.seconds = time.perf_counter() - started
    return report


def _terminates(report: Report, graph: _Graph, explorer: Explorer) -> None:
    """Loops and the bound, over the merged graph of the states expanded.

    A depth-first walk of the steps within a drive: a step back to a state still on the walk
    closes a loop (a violation, with the shortest lap through that state). Otherwise the
    longest drive from each state is known once its successors' are (an end state, a state
    cut at the depth or one that broke an invariant counts 0: the bound is only stated when
    there were none of the last two)."""
    longest: dict[int, int] = {}
    on_walk: set[int] = set()
    closing: set[int] = set()
    for start in graph.live:
        if start in longest:
            continue
        walk = [(start, 0)]
        on_walk.add(start)
        while walk:
            at, i = walk[-1]
            steps_ = graph.live.get(at, ())
            if i < len(steps_):
                walk[-1] = (at, i + 1)
                nxt = steps_[i][0]
                if nxt in on_walk:
                    closing.add(nxt)
                elif nxt not in longest:
                    on_walk.add(nxt)
                    walk.append((nxt, 0))
                continue
            walk.pop()
            on_walk.discard(at)
            longest[at] = max(
                [graph.ends.get(at, 0)]
                + [calls + longest[nxt] for nxt, calls in steps_ if nxt in longest]
            )
    report.loops = len(closing)
    for entry in sorted(closing)[:SHOWN]:
        report.violations.append(_loop(graph, entry, explorer))
    if report.exhaustive:
        report.bound = max(longest.values(), default=0)
        report.first = longest.get(0, 0)
        report.longest = graph.path(0)[:1] + _longest_labels(graph, longest, explorer, 0)
        # A longest drive is one from where a drive begins (a state within it has a drive's
        # rest ahead, never more): the first such start, and the way to it.
        worst = min(at for at in graph.starts if longest.get(at, 0) == report.bound)
        report.worst_from = len(graph.path(worst))
        report.worst = graph.path(worst) + _longest_labels(graph, longest, explorer, worst)


def _loop(graph: _Graph, entry: int, explorer: Explorer) -> tuple[str, list[str]]:
    """The violation a loop through ``entry`` is: the way to it, then its shortest lap."""
    came: dict[int, int] = {}
    queue = deque([entry])
    lap: list[int] = []
    while queue and not lap:
        at = queue.popleft()
        for nxt, _ in graph.live.get(at, ()):
            if nxt == entry:
                while at != entry:
                    lap.append(at)
                    at = came[at]
                lap = [*lap[::-1], entry]
                break
            if nxt not in came:
                came[nxt] = at
                queue.append(nxt)
    prefix = graph.path(entry)
    node = _walk(prefix, explorer)
    labels: list[str] = []
    calls = 0
    for nxt in lap:
        edge = next(
            e
            for e in explorer.children(node)
            if not e.ends_drive and graph.ids.get(e.node.key()) == nxt
        )
        labels.append(edge.label)
        calls, node = calls + edge.node.calls - node.calls, edge.node
    what = (
        f"a loop without a crash or a stop for recover: the last {len(lap)} step(s) "
        f"({calls} exchange call(s)) lead back to the state after step {len(prefix)}, and "
        "the trade can go round them forever"
    )
    return what, prefix + labels


def _longest_labels(
    graph: _Graph, longest: dict[int, int], explorer: Explorer, start: int
) -> list[str]:
    """The longest drive from ``start``, step by step (a witness of ``Report.first`` from
    the new trade, of ``Report.bound`` from the start that makes it)."""
    node, at = _walk(graph.path(start), explorer), start
    labels: list[str] = []
    while True:
        remaining = longest.get(at, 0)
        for edge in explorer.children(node) if at in graph.live else ():
            calls = edge.node.calls - node.calls
            if edge.ends_drive and calls == remaining:
                return [*labels, edge.label]
            nxt = graph.ids[edge.node.key()]
            if not edge.ends_drive and calls + longest.get(nxt, 0) == remaining:
                labels.append(edge.label)
                node, at = edge.node, nxt
                break
        else:
            return labels


def replay(
    path: list[str],
    config_name: str = "market",
    decide_fn: Decide = decide,
    markets: str = "spot",
) -> Node:
    """Walk ``path`` (a violation's step labels, the first one the new trade) again and
    return where it ends: a counterexample is a scenario, not a story."""
    return _walk(path, Explorer(CONFIGS[config_name], decide_fn, MARKETS[markets]))


def _walk(path: list[str], explorer: Explorer) -> Node:
    node = explorer.root()
    for label in path[1:]:
        matches = [e.node for e in explorer.children(node) if e.label == label]
        if not matches:
            raise ValueError(f"no step {label!r} from here")
        node = matches[0]
    return node


# --- invariants -----------------------------------------------------------------------------------


def check_node(
    node: Node, config: EngineConfig, rules: Mapping[str, MarketRules] = SPOT
) -> str | None:
    """What must hold in every state."""
    record, request = node.record, node.record.request
    if node.sending is not None:
        sending = _order(record, node.sending)
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
                f"{_name(sending)} is sent again while the venue holds it: "
                "a second order where a reused client id is accepted"
            )
        problem = _unsendable(sending, rules.get(sending.market, ANY_AMOUNT))
        if problem is not None:
            return problem
    target = hedge_target(request, record.orders, config.hedge_basis)
    if filled(record.orders, Leg.B) > target + EPSILON:
        return f"over-hedged: leg B filled {filled(record.orders, Leg.B):g} > {target:g}"
    held_a = net(record.orders, Leg.A)
    if filled(record.orders, Leg.UNWIND) > held_a + EPSILON:
        return f"unwound {filled(record.orders, Leg.UNWIND):g} of leg A, more than its {held_a:g}"
    if node.sending is None:
        return None
    in_flight = {
        leg: sum(o.amount for o in record.orders if o.leg is leg and o.status is OrderStatus.INTENT)
        for leg in (Leg.B, Leg.UNWIND)
    }
    if in_flight[Leg.B] + filled(record.orders, Leg.B) > target + EPSILON:
        return f"a leg B order of {in_flight[Leg.B]:g} would over-hedge {target:g}"
    if in_flight[Leg.UNWIND] + filled(record.orders, Leg.UNWIND) > held_a + EPSILON:
        return f"an unwind of {in_flight[Leg.UNWIND]:g} would sell more than leg A's {held_a:g}"
    return None


def _unsendable(order: OrderFacts, rules: MarketRules) -> str | None:
    """Why ``order``'s amount is not what its market takes as it stands (off its step, below
    its minimum, or not whole contracts: the gateway would send fewer), or None."""
    taken = rules.to_base(rules.to_contracts(order.amount))
    if (
        rules.sendable(order.amount) is None
        or abs(rules.floor(order.amount) - order.amount) > EPSILON
        or abs(taken - order.amount) > EPSILON
    ):
        return (
            f"{_name(order)} is sent as {order.amount:g} {order.market}, which its market "
            f"(step {rules.amount_step or 0:g}, minimum {rules.min_amount:g}) does not take "
            f"as it stands: the venue would get {taken:g}"
        )
    return None


def check_terminal(
    node: Node, config: EngineConfig, rules: Mapping[str, MarketRules] = SPOT
) -> str | None:
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
        step = rules.get(request.market_y, ANY_AMOUNT).amount_step or 0.0
        missing = hedge_target(request, record.orders, config.hedge_basis) - filled(
            record.orders, Leg.B
        )
        if missing > step + EPSILON:
            return f"DONE with leg B {missing:g} short of its hedge (a step is {step:g})"
    if record.state is TradeState.ABORTED:
        step = rules.get(request.market_x, ANY_AMOUNT).amount_step or 0.0
        left = unwind_target(request, record.orders, config.hedge_basis) - filled(
            record.orders, Leg.UNWIND
        )
        if left > step + EPSILON and "left" not in record.reason and "dust" not in record.reason:
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
