"""The pair-trade state machine and the engine that drives it.

``ExecutionEngine`` is imported lazily: the engine needs ``persistence``, which itself uses
this package's pure modules (states, orders, requests), so an eager import here would be a
cycle for whoever imports ``persistence`` first.
"""

from typing import TYPE_CHECKING, Any

from pairexec.fsm.config import EngineConfig
from pairexec.fsm.machine import IllegalTransition
from pairexec.fsm.request import InvalidRequest, PairTradeRequest, TradeOutcome
from pairexec.fsm.states import TERMINAL_STATES, TRANSITIONS, TradeState

if TYPE_CHECKING:
    from pairexec.fsm.engine import ExecutionEngine

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "EngineConfig",
    "ExecutionEngine",
    "IllegalTransition",
    "InvalidRequest",
    "PairTradeRequest",
    "TradeOutcome",
    "TradeState",
]


def __getattr__(name: str) -> Any:
    if name == "ExecutionEngine":
        from pairexec.fsm.engine import ExecutionEngine

        return ExecutionEngine
    raise AttributeError(f"module 'fsm' has no attribute {name!r}")
