"""The scenario's exchange: one in-memory paper book, seen through a flaky or a calm facade.

Recovery may run against a calmer exchange than trading did (the brief's "chaos off for
recovery"), but it must be the *same* exchange: the orders the crashed engine left are in that
book. ``PaperExchange`` takes its faults at construction, so a calm facade is a second
``PaperExchange`` whose own (empty) book is swapped for the trading one's.
"""

from __future__ import annotations

from pairexec.fsm.paper import MarketSpec, PaperExchange


def flaky_paper(markets: dict[str, MarketSpec], chaos: str, seed: int) -> PaperExchange:
    """In-memory paper exchange with the scenario's faults, drawn from the scenario's seed."""
    return PaperExchange(None, chaos=chaos, seed=seed, markets=markets)


def calm_facade(paper: PaperExchange) -> PaperExchange:
    """A fault-free ``PaperExchange`` over ``paper``'s book (its orders, balances, prices)."""
    calm = PaperExchange(None, markets={s: paper.book.market(s) for s in paper.markets})
    calm.book.close()
    calm.book = paper.book
    return calm
