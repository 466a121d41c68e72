"""The scenario's exchanges: in-memory paper books, seen through flaky or calm facades.

Recovery may run against a calmer exchange than trading did (the brief's "chaos off for
recovery"), but it must be the *same* exchange: the orders the crashed engine left are in that
book. ``PaperExchange`` takes its faults at construction, so a calm facade is a second
``PaperExchange`` over the trading one's book.

A cross-venue run has one paper exchange per venue, each with its own book and faults:
``Books`` is how the checks read them, every order on its own venue's book only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pairexec.fsm.model import OrderFacts
from pairexec.fsm.paper import MarketSpec, PaperExchange


def flaky_paper(markets: dict[str, MarketSpec], chaos: str, seed: int) -> PaperExchange:
    """In-memory paper exchange with the scenario's faults, drawn from the scenario's seed."""
    return PaperExchange(None, chaos=chaos, seed=seed, markets=markets)


def calm_facade(paper: PaperExchange) -> PaperExchange:
    """A fault-free ``PaperExchange`` over ``paper``'s book (its orders, balances, prices)."""
    return PaperExchange(book=paper.book)


class Books:
    """The paper exchanges of a run by venue name; one exchange alone is the venue None (the
    engine of a single exchange stores its orders without a venue)."""

    def __init__(self, papers: PaperExchange | Mapping[str, PaperExchange]) -> None:
        self._papers: dict[str | None, PaperExchange] = {}
        if isinstance(papers, PaperExchange):
            self._papers[None] = papers
        else:
            self._papers.update(papers)

    def of(self, venue: str | None) -> PaperExchange | None:
        """The venue's paper exchange (None: the run has no such venue)."""
        return self._papers.get(venue)

    def copies(self, order: OrderFacts) -> list[dict[str, Any]]:
        """The exchange orders with ``order``'s client id on its own venue (one, if sent)."""
        if order.venue not in self._papers:
            return []
        return self._papers[order.venue].orders_with_client_id(order.client_order_id)

    def strays(self, order: OrderFacts) -> list[str]:
        """The other venues that hold an order with ``order``'s client id: sent to the wrong
        venue (or a lookup's answer from one taken for this order)."""
        return [
            str(venue)
            for venue, paper in self._papers.items()
            if venue != order.venue and paper.orders_with_client_id(order.client_order_id)
        ]

    def all_orders(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        """Every order on every venue's book, with its venue."""
        for venue, paper in self._papers.items():
            for placed in paper.all_orders():
                yield venue, placed

    def __contains__(self, venue: object) -> bool:
        return venue in self._papers
