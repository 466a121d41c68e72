"""What must hold after any run, read from the trades DB and the paper exchanges' own files.

A cross-venue run passes one paper exchange per venue (``{"spot": a, "perp": b}``): each order
is then checked on its own venue's book only, and a copy of it on another venue is a finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Protocol

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import EventRecord, OrderStatus, TradeRecord, net
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.sim.venue import Books
from pairexec.fsm.states import TERMINAL_STATES, TradeState


class TradeReader(Protocol):
    """The two reads the checks make: a ``TradeStore``, or a snapshot of what one held."""

    async def list_trades(self, *, limit: int) -> Sequence[TradeRecord]: ...

    async def events(self, trade_id: str) -> Sequence[EventRecord]: ...


async def check_invariants(
    store: TradeReader, paper: PaperExchange | Mapping[str, PaperExchange]
) -> list[str]:
    """Every violated invariant as a sentence (empty list: all hold). ``paper``: the one
    exchange, or the paper exchange of each venue by name."""
    books = Books(paper)
    problems: list[str] = []
    for trade in await store.list_trades(limit=100_000):
        tid = trade.id[:8]
        if trade.state not in TERMINAL_STATES:
            problems.append(f"{tid}: not terminal ({trade.state.value})")
        on_exchange = {leg: 0 for leg in Leg}
        events = await store.events(trade.id)
        for order in trade.orders:
            if order.venue not in books:
                problems.append(
                    f"{tid}: order {order.client_order_id} is on venue {order.venue!r}, "
                    "which the check was not given"
                )
            for venue in books.strays(order):
                problems.append(
                    f"{tid}: order {order.client_order_id} of venue {order.venue} is on {venue}"
                )
            copies = len(books.copies(order))
            on_exchange[order.leg] += copies
            if order.status in (OrderStatus.REJECTED, OrderStatus.ABSENT) and copies:
                # a placed order taken for refused or absent: the evidence rule broken
                cid = order.client_order_id
                why = next((e.cause for e in reversed(events) if e.client_order_id == cid), "")
                problems.append(
                    f"{tid}: order {cid} is {order.status.value} but exists on the exchange ({why})"
                )
            if copies > 1:
                problems.append(f"{tid}: {copies} exchange orders for {order.client_order_id}")
            if order.status in (OrderStatus.CLOSED, OrderStatus.CANCELED) and copies != 1:
                problems.append(f"{tid}: {order.status.value} order missing on the exchange")
        sent_legs = {o.leg for o in trade.orders if o.status is not OrderStatus.REJECTED}
        for leg in sent_legs:
            if on_exchange[leg] != sum(
                1 for o in trade.orders if o.leg is leg and o.status is not OrderStatus.REJECTED
            ):
                problems.append(f"{tid}: leg {leg.value} has {on_exchange[leg]} exchange orders")
        # leg A as the account holds it, after fees in its coin: what leg B hedges by default
        a, b, u = net(trade.orders, Leg.A), trade.filled(Leg.B), trade.filled(Leg.UNWIND)
        ratio = trade.request.hedge_ratio
        # Legs are rounded down to the market's step and never below its minimums (amount,
        # order value), so a hedge may fall short of the exact ratio by less than one
        # tradable unit.
        r = trade.request
        dust_y = _tradable_unit(books.of(r.venue_y), r.pair_y)
        dust_x = _tradable_unit(books.of(r.venue_x), r.pair_x)
        target = ratio * a
        if trade.state is TradeState.DONE and not -1e-9 <= target - b < dust_y + 1e-9:
            problems.append(f"{tid}: DONE but leg B {b:g} != {ratio:g} x leg A {a:g}")
        unhedged = max(min(a - b / ratio, a), 0.0)
        if trade.state is TradeState.ABORTED and u and not -1e-9 <= unhedged - u < dust_x:
            problems.append(f"{tid}: ABORTED but unwound {u:g} != unhedged {unhedged:g}")
        if (
            not events
            or events[0].from_state is not None
            or (events[0].to_state is not TradeState.PENDING)
        ):
            problems.append(f"{tid}: journal does not start with PENDING")
        for before, after in pairwise(events):
            if after.from_state is not before.to_state:
                problems.append(f"{tid}: journal gap {before.to_state} / {after.from_state}")
        if events and events[-1].to_state is not trade.state:
            problems.append(f"{tid}: journal ends in {events[-1].to_state}, trade {trade.state}")
    return problems


def _tradable_unit(paper: PaperExchange | None, symbol: str) -> float:
    """The largest remainder an order may not carry: one step, the minimum amount, or what the
    minimum order value buys at the market's price (plus the step it is floored to)."""
    if paper is None:  # a venue the check was not given: reported apart
        return 1e-9
    market = paper.markets.get(symbol, {})
    size = float(market.get("contractSize") or 1.0) if market.get("contract") else 1.0
    step = float((market.get("precision") or {}).get("amount") or 0) * size  # base units
    limits = market.get("limits") or {}
    minimum = float((limits.get("amount") or {}).get("min") or 0) * size
    min_cost = float((limits.get("cost") or {}).get("min") or 0)
    # a remainder whose floor to the step is worth less than the minimum order value
    by_value = min_cost / paper.book.market(symbol).price + step if market and min_cost else 0.0
    return max(step, minimum, by_value, 1e-9)
