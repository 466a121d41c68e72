"""What a state machine per trade would cost, against the one shared machine the engine uses.

Run: python bench/fsm_cost.py [N]. Prints per-trade microseconds and ratios measured in this one
run; absolute numbers depend on the machine, the ratios are what the design decision rests on.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from transitions import Machine
from transitions.extensions.asyncio import AsyncMachine

from pairexec.fsm.machine import next_state
from pairexec.fsm.states import TRANSITIONS, TradeState

# A typical life: PENDING -> LEG_A_SENT -> LEG_A_FILLED -> LEG_B_SENT -> DONE
PATH = ["send_leg_a", "leg_a_filled", "send_leg_b", "leg_b_filled"]
TABLE: list[list[Any]] = [[t, [s.value for s in sources], d.value] for t, sources, d in TRANSITIONS]


class Model:
    pass


def machine_per_trade() -> None:
    model = Model()
    Machine(
        model=model,
        states=[s.value for s in TradeState],
        transitions=TABLE,
        initial="PENDING",
        auto_transitions=False,
    )
    for trigger in PATH:
        getattr(model, trigger)()


_LOOP = asyncio.new_event_loop()


def async_machine_per_trade() -> None:
    """Run on one long-lived loop, so only the machine is measured, not loop start-up."""
    model = Model()
    AsyncMachine(
        model=model,
        states=[s.value for s in TradeState],
        transitions=TABLE,
        initial="PENDING",
        auto_transitions=False,
    )

    async def run() -> None:
        for trigger in PATH:
            await getattr(model, trigger)()

    _LOOP.run_until_complete(run())


def shared_machine() -> None:
    state = TradeState.PENDING
    for trigger in PATH:
        state = next_state(state, trigger)


def measure(fn: Callable[[], None], n: int) -> tuple[float, float]:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    per_trade_us = (time.perf_counter() - start) / n * 1e6
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return per_trade_us, peak / 1024


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    results = {
        "shared machine (engine)": measure(shared_machine, n),
        "Machine per trade": measure(machine_per_trade, n),
        "AsyncMachine per trade": measure(async_machine_per_trade, max(n // 10, 50)),
    }
    base = results["shared machine (engine)"][0]
    print(f"{'design':28} {'us/trade':>10} {'ratio':>8} {'peak KiB':>9}")
    for name, (us, kib) in results.items():
        print(f"{name:28} {us:10.1f} {us / base:7.1f}x {kib:9.1f}")
    print(json.dumps({k: {"us_per_trade": v[0], "ratio": v[0] / base} for k, v in results.items()}))


if __name__ == "__main__":
    main()
