"""What must hold after a scenario, compared between the trade database and the paper exchange.

``invariants.check_invariants`` runs first, unchanged. Its two hedge equalities assume
amounts that divide exactly (leg B = ratio x leg A to 1e-6, unwound = unhedged to 1e-6); the
simulation trades odd ratios on markets with coarse steps and minimums, where the engine
rightly leaves a remainder below one step or below a minimum ("dust"). Those two checks are
therefore replaced by step-aware ones here (``_hedge``); every other finding of
``check_invariants`` is kept word for word. On top come the checks it does not make:

- each order's fill in the DB equals its fill on the exchange, and final orders are final there;
  its exchange id is its own (``invariants`` already finds a placed order recorded as
  rejected: an unrecognised error taken for a refusal);
- the hedge holds on the exchange's fills too (a hedge sized from a report the exchange does
  not bear out: an over-fill, another order's fill);
- a PARKED trade may leave the one order whose reports could not be believed (its reason names
  it) unresolved: that order alone is exempt from the checks above, for a human to settle;
- no exchange order the DB does not know (an orphan would be an unjournaled send);
- across venues: each order on its own venue only (``invariants``), and the fills of each
  venue's book add up to the DB's fills of the orders sent there;
- a limit order filled at its limit or better (DB and exchange), its limit within its rung of
  the leg's band from its reference;
- client order ids are the deterministic ones, attempts contiguous, one leg-A order per trade;
  each order stored for its leg's venue (leg B on ``venue_y``, leg A and unwinds ``venue_x``);
- every journaled state change is a transition of the table, its events point at its orders;
- one in-flight trade per pair key at any moment of the journal (the duplicate rule);
- a duplicate or invalid request created no trade; one executed trade per signal id;
- FAILED executed nothing, PARKED says why, nothing was over-hedged or over-unwound.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.model import EventRecord, OrderFacts, TradeRecord, net
from pairexec.fsm.paper import MarketSpec, PaperExchange
from pairexec.fsm.pricing import slippage_bps, within_band
from pairexec.fsm.request import TradeOutcome, market_key
from pairexec.fsm.sim.fast_store import JournalRow, Snapshot
from pairexec.fsm.sim.invariants import check_invariants
from pairexec.fsm.sim.venue import Books
from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, TradeState
from pairexec.fsm.venues.reports import parse_fees

SUPERSEDED = ("DONE but leg B", "ABORTED but unwound")
"""``check_invariants`` findings replaced by the step-aware ``_hedge`` (see the module)."""

_LEGAL = {(s, dest) for _, sources, dest in TRANSITIONS for s in sources}
_EXCHANGE_FINAL = {"closed", "canceled"}


@dataclass(frozen=True)
class Submitted:
    """What one ``execute_pair_trade`` call of the scenario came to."""

    signal_id: str | None
    inflight_key: str
    kind: str
    """"outcome", "duplicate", "invalid" (InvalidRequest), "crashed" (the engine died during
    the call), "not sent" (the engine was dead by then), "store failed" (the database failed
    a write: a StoreError, the trade stored or not), or "raised" (any other exception: a bug,
    reported with ``error``)."""
    outcome: TradeOutcome | None = None
    error: str = ""


async def check_scenario(
    snapshot: Snapshot,
    journal_order: Sequence[JournalRow],
    paper: PaperExchange | Mapping[str, PaperExchange],
    markets: dict[str, MarketSpec],
    config: EngineConfig,
    submitted: Sequence[Submitted],
) -> list[str]:
    """Every violated invariant as a sentence (empty: all hold).

    ``snapshot`` is the trades database as the scenario left it; ``journal_order`` its
    journal in the database's order (event ids), for the one check that needs it; ``paper``
    the one exchange, or each venue's by name."""
    found = await check_invariants(snapshot, paper)
    books = Books(paper)
    problems = [p for p in found if not p.partition(": ")[2].startswith(SUPERSEDED)]
    trades = snapshot.trades
    for trade in trades:
        tid = trade.id[:8]
        events = snapshot.events_of[trade.id]
        problems += [f"{tid}: {p}" for p in _hedge(trade, markets, config)]
        problems += [f"{tid}: {p}" for p in _hedge_on_exchange(trade, books, markets, config)]
        problems += [f"{tid}: {p}" for p in _matches_exchange(trade, books)]
        problems += [f"{tid}: {p}" for p in _order_ids(trade)]
        problems += [f"{tid}: {p}" for p in _price_bands(trade, books, config)]
        problems += [f"{tid}: {p}" for p in _journal(trade, events)]
    problems += _no_orphans(trades, books)
    problems += _fills_per_venue(trades, books)
    problems += _one_in_flight_per_key(trades, journal_order)
    problems += _duplicates(trades, submitted)
    return problems


def _dust(spec: MarketSpec | None) -> float:
    """The largest remainder the engine may leave unsent, in base units: below one step, the
    minimum amount, or the minimum order value at the market's price (what the engine's fills
    got). A swap's step and minimum are in contracts."""
    if spec is None:
        return 1e-9
    size = spec.contract_size if spec.is_contract else 1.0
    step, minimum = spec.amount_step * size, spec.min_amount * size
    # a remainder whose floor to the step is worth less than the minimum order value
    by_value = spec.min_cost / spec.price + step if spec.min_cost else 0.0
    return max(step, minimum, by_value) * (1 + 1e-6)


def _base_filled(books: Books, venue: str | None, placed: dict[str, Any]) -> float:
    """What an order on a venue's paper book filled, in base units (a swap counts contracts)."""
    paper = books.of(venue)
    assert paper is not None, f"an order {placed['id']} of venue {venue}, which the run lacks"
    spec = paper.book.market(placed["symbol"])
    return float(placed["filled"]) * (spec.contract_size if spec.is_contract else 1.0)


def _hedge(trade: TradeRecord, markets: dict[str, MarketSpec], config: EngineConfig) -> list[str]:
    r = trade.request
    a, b, u = trade.filled(Leg.A), trade.filled(Leg.B), trade.filled(Leg.UNWIND)
    basis, unhedged = _positions(r.hedge_ratio, a, net(trade.orders, Leg.A), b, config)
    target = r.hedge_ratio * basis
    eps_y = 1e-9 * max(target, 1.0)
    eps_x = 1e-9 * max(a, 1.0)
    dust_x, dust_y = _dust(markets.get(r.pair_x)), _dust(markets.get(r.pair_y))
    problems = []
    if b > target + eps_y:
        problems.append(f"over-hedged: leg B {b:g} > {r.hedge_ratio:g} x leg A {basis:g}")
    if u > unhedged + eps_x:
        problems.append(f"over-unwound: unwound {u:g} > unhedged {unhedged:g}")
    state = trade.state
    if state is TradeState.DONE:
        if a <= 0:
            problems.append("DONE with nothing filled on leg A")
        if target - b > dust_y:
            problems.append(f"DONE but leg B {b:g} short of {target:g} by more than dust")
        if any(o.leg is Leg.UNWIND for o in trade.orders):
            problems.append("DONE with an unwind order")
    elif state is TradeState.ABORTED:
        if config.unwind_on_abort and unhedged - u > dust_x:
            problems.append(f"ABORTED with {unhedged - u:g} of leg A unhedged and not unwound")
        if not config.unwind_on_abort and (b > 0 or u > 0):
            problems.append("ABORTED after leg B or an unwind although unwind_on_abort=False")
    elif state is TradeState.FAILED and (a or b or u):
        problems.append(f"FAILED but executed (A {a:g}, B {b:g}, unwind {u:g})")
    elif state is TradeState.PARKED and not trade.reason.strip():
        problems.append("PARKED without a reason")
    return problems


def _positions(
    ratio: float, filled_a: float, net_a: float, filled_b: float, config: EngineConfig
) -> tuple[float, float]:
    """What leg B must hedge (leg A's net, or its gross fill, by ``hedge_basis``) and leg A's
    part left unhedged, never more than leg A's net: what the account really holds."""
    basis = net_a if config.hedge_basis == "net" else filled_a
    return basis, max(min(basis - filled_b / ratio, net_a), 0.0)


def _hedge_on_exchange(
    trade: TradeRecord, books: Books, markets: dict[str, MarketSpec], config: EngineConfig
) -> list[str]:
    """``_hedge`` on what really filled, when that is not what the DB says: the hedge must
    follow the exchange's fills whatever a reply claimed."""
    ex = {leg: 0.0 for leg in Leg}
    net_a = 0.0
    for order in trade.orders:
        for placed in books.copies(order):
            on_book = _base_filled(books, order.venue, placed)
            ex[order.leg] += on_book
            if order.leg is Leg.A:  # its net by the exchange's own fill and fees
                fees = parse_fees(placed) or ()
                net_a += replace(order, filled=on_book, fees=fees).net
    db = {leg: trade.filled(leg) for leg in Leg}
    if all(abs(ex[leg] - db[leg]) <= 1e-9 * max(db[leg], 1.0) for leg in Leg):
        return []  # _hedge has judged these very fills
    r = trade.request
    a, b, u = ex[Leg.A], ex[Leg.B], ex[Leg.UNWIND]
    basis, unhedged = _positions(r.hedge_ratio, a, net_a, b, config)
    target = r.hedge_ratio * basis
    on = "on the exchange"
    problems = []
    if b > target + 1e-9 * max(target, 1.0):
        problems.append(f"over-hedged {on}: leg B {b:g} > {r.hedge_ratio:g} x leg A {basis:g}")
    if u > unhedged + 1e-9 * max(a, 1.0):
        problems.append(f"over-unwound {on}: unwound {u:g} > unhedged {unhedged:g}")
    if trade.state is TradeState.DONE and target - b > _dust(markets.get(r.pair_y)):
        problems.append(f"DONE but {on} leg B {b:g} is short of {target:g} by more than dust")
    if (
        trade.state is TradeState.ABORTED
        and config.unwind_on_abort
        and unhedged - u > _dust(markets.get(r.pair_x))
    ):
        problems.append(f"ABORTED with {unhedged - u:g} of leg A unhedged {on}")
    if trade.state is TradeState.FAILED and (a or b or u):
        problems.append(f"FAILED but executed {on} (A {a:g}, B {b:g}, unwind {u:g})")
    return problems


def _unresolved(trade: TradeRecord, order: OrderFacts) -> bool:
    """The order a PARKED trade left for a human because its reports could not be believed."""
    return (
        trade.state is TradeState.PARKED
        and not order.is_final
        and order.client_order_id in trade.reason
        and "cannot be this order" in trade.reason
    )


def _matches_exchange(trade: TradeRecord, books: Books) -> list[str]:
    problems = []
    terminal = trade.state in TERMINAL_STATES
    for order in trade.orders:
        cid = order.client_order_id
        copies = books.copies(order)
        if _unresolved(trade, order):
            continue
        if terminal and not order.is_final:
            problems.append(f"order {cid} still {order.status.value} in a terminal trade")
        if len(copies) != 1:
            continue
        on_exchange = copies[0]
        if order.exchange_order_id not in (None, on_exchange["id"]):
            problems.append(
                f"order {cid} records exchange id {order.exchange_order_id}, "
                f"the exchange's is {on_exchange['id']} (another order's report believed)"
            )
        on_book = _base_filled(books, order.venue, on_exchange)
        if abs(on_book - order.filled) > 1e-9 * max(order.amount, 1.0):
            problems.append(
                f"order {cid} filled {order.filled:g} in the DB, {on_book:g} on the exchange"
            )
        if terminal and on_exchange["status"] not in _EXCHANGE_FINAL:
            problems.append(f"order {cid} left {on_exchange['status']} on the exchange")
    return problems


def _price_bands(trade: TradeRecord, books: Books, config: EngineConfig) -> list[str]:
    """A limit order filled at its limit or better, in the DB and on the exchange, and its
    limit is no further from its reference than its rung of the leg's ladder allows."""
    problems = []
    for order in trade.orders:
        limit = order.limit_price
        if limit is None:
            continue
        cid = order.client_order_id
        averages = [("in the DB", order.average)]
        averages += [("on the exchange", p.get("average")) for p in books.copies(order)]
        for where, average in averages:
            if order.filled > 0 and average and not within_band(order.side, limit, average):
                problems.append(
                    f"order {cid} {order.side} filled at {average:g} {where}, "
                    f"beyond its limit {limit:g}"
                )
        policy = {Leg.A: config.leg_a, Leg.B: config.leg_b}.get(order.leg, config.unwind)
        if order.reference_price is not None:
            band = slippage_bps(order.side, order.reference_price, limit)
            allowed = policy.band_bps(order.attempt)
            if band > allowed + 1e-6:
                problems.append(
                    f"order {cid}: limit {limit:g} is {band:g} bps from its reference "
                    f"{order.reference_price:g}, its rung allows {allowed:g}"
                )
    return problems


def _order_ids(trade: TradeRecord) -> list[str]:
    problems = []
    attempts: dict[Leg, list[int]] = defaultdict(list)
    for order in trade.orders:
        attempts[order.leg].append(order.attempt)
        expected = client_order_id(trade.id, order.leg, order.attempt)
        if order.client_order_id != expected:
            problems.append(f"order {order.client_order_id} is not the deterministic id")
        if order.venue != trade.request.venue_of(order.leg):
            problems.append(
                f"order {order.client_order_id} (leg {order.leg.value}) is stored for venue "
                f"{order.venue}, its leg's is {trade.request.venue_of(order.leg)}"
            )
    for leg, numbers in attempts.items():
        if sorted(numbers) != list(range(1, len(numbers) + 1)):
            problems.append(f"leg {leg.value} attempts {sorted(numbers)} are not 1..n")
    if len(attempts.get(Leg.A, [])) > 1:
        problems.append("more than one leg A order")
    return problems


def _journal(trade: TradeRecord, events: Sequence[EventRecord]) -> list[str]:
    problems = []
    cids = {o.client_order_id for o in trade.orders}
    for event in events:
        before, after = event.from_state, event.to_state
        if before is not None and before is not after and (before, after) not in _LEGAL:
            problems.append(f"journal: illegal move {before.value} -> {after.value}")
        if event.client_order_id is not None and event.client_order_id not in cids:
            problems.append(f"journal names order {event.client_order_id}, not this trade's")
    stamps = [e.at for e in events]
    if stamps != sorted(stamps):
        problems.append("journal times go backwards")
    return problems


def _no_orphans(trades: Sequence[TradeRecord], books: Books) -> list[str]:
    known = {(o.venue, o.client_order_id) for t in trades for o in t.orders}
    return [
        f"exchange order {o['id']} ({o['clientOrderId']}) on {venue} is unknown to the DB"
        if venue
        else f"exchange order {o['id']} ({o['clientOrderId']}) is unknown to the DB"
        for venue, o in books.all_orders()
        if (venue, o["clientOrderId"]) not in known
    ]


def _fills_per_venue(trades: Sequence[TradeRecord], books: Books) -> list[str]:
    """Each venue's book filled, market by market, what the DB says the orders sent there
    filled (the orders a PARKED trade leaves for a human aside: their reports are not
    believed)."""
    exempt = {o.client_order_id for t in trades for o in t.orders if _unresolved(t, o)}
    in_db: dict[tuple[str | None, str], float] = defaultdict(float)
    on_books: dict[tuple[str | None, str], float] = defaultdict(float)
    for order in (o for t in trades for o in t.orders if o.client_order_id not in exempt):
        in_db[order.venue, order.symbol] += order.filled
    for venue, placed in books.all_orders():
        if placed["clientOrderId"] not in exempt:
            on_books[venue, placed["symbol"]] += _base_filled(books, venue, placed)
    return [
        f"{market_key(symbol, venue)}: the book filled {on_books[venue, symbol]:g}, "
        f"the DB's orders {in_db[venue, symbol]:g}"
        for venue, symbol in sorted(set(in_db) | set(on_books), key=str)
        if abs(on_books[venue, symbol] - in_db[venue, symbol])
        > 1e-9 * max(in_db[venue, symbol], 1.0)
    ]


def _one_in_flight_per_key(
    trades: Sequence[TradeRecord], journal_order: Sequence[JournalRow]
) -> list[str]:
    """From the journal's global order (event ids): a key's in-flight spans never overlap."""
    key = {t.id: t.request.inflight_key for t in trades}
    terminal = {s.value for s in TERMINAL_STATES}
    spans: dict[str, list[int]] = {}
    for event_id, trade_id, to_state in journal_order:
        span = spans.setdefault(trade_id, [event_id, 1 << 62])
        if to_state in terminal:
            span[1] = min(span[1], event_id)
    problems = []
    by_key: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for trade_id, (start, end) in spans.items():
        by_key[key.get(trade_id, "?")].append((start, end, trade_id))
    for k, items in by_key.items():
        items.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(items):
            if start < end:
                problems.append(f"trades {first[:8]} and {second[:8]} in flight together on {k}")
    return problems


def _duplicates(trades: Sequence[TradeRecord], submitted: Sequence[Submitted]) -> list[str]:
    problems = []
    could_create = sum(
        1 for s in submitted if s.kind in ("outcome", "crashed", "raised", "store failed")
    )
    if len(trades) > could_create:
        problems.append(
            f"{len(trades)} trades stored but only {could_create} requests could create one: "
            "a duplicate or rejected request was stored"
        )
    executed = [s.outcome.trade_id for s in submitted if s.kind == "outcome" and s.outcome]
    ids = {t.id for t in trades}
    if len(set(executed)) != len(executed) or not set(executed) <= ids:
        problems.append("executed outcomes do not map one to one onto stored trades")
    per_signal: dict[str, int] = defaultdict(int)
    for s in submitted:
        if s.kind == "outcome" and s.signal_id is not None:
            per_signal[s.signal_id] += 1
    problems += [f"signal {sig} executed {n} times" for sig, n in per_signal.items() if n > 1]
    for s in submitted:
        if s.kind == "duplicate" and s.outcome and s.outcome.trade_id not in ids | {""}:
            problems.append(f"duplicate outcome names unknown trade {s.outcome.trade_id}")
    return problems
