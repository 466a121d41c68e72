"""The paper exchange: a simulated spot and swap venue, the CLI's default and the demo's.

Three layers: ``book`` (matching, balances and orders in SQLite), ``exchange`` (the ccxt-shaped
facade the engine calls) and ``chaos`` (seeded fault injection), whose faults are named in
``faults``: the vocabulary the test fakes share.
"""

from pairexec.fsm.paper.book import (
    DEFAULT_MARKETS,
    PAPER_MARKETS,
    SWAP_MARKETS,
    Balance,
    BookDepth,
    MarketSpec,
    PaperBook,
    PaperOrder,
    Position,
    default_balances,
)
from pairexec.fsm.paper.chaos import ChaosConfig, SymbolChaos
from pairexec.fsm.paper.exchange import PaperExchange
from pairexec.fsm.paper.faults import LIES, Fault, Fills

__all__ = [
    "DEFAULT_MARKETS",
    "LIES",
    "PAPER_MARKETS",
    "SWAP_MARKETS",
    "Balance",
    "BookDepth",
    "ChaosConfig",
    "Fault",
    "Fills",
    "MarketSpec",
    "PaperBook",
    "PaperExchange",
    "PaperOrder",
    "Position",
    "SymbolChaos",
    "default_balances",
]
