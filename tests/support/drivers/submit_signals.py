"""A bot process for the scale-out tests: submits the same batch of signals as its peers.

Run: python -m tests.support.drivers.submit_signals DB_URL PAPER_PATH N_SIGNALS BARRIER_FILE
Waits for BARRIER_FILE to exist (so all processes start together), then submits N signals
concurrently and prints one JSON line: {"executed": .., "duplicates": .., "owner": ..}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
import time
from pathlib import Path

from pairexec import EngineConfig, ExecutionEngine, PairTradeRequest
from pairexec.fsm.paper import DEFAULT_MARKETS, PaperExchange

NOTIONAL = 50.0  # USDT per leg: above every default market's minimum order value


def signals(count: int) -> list[PairTradeRequest]:
    """``count`` signals, each on its own (pair_x, pair_y) so only signal ids can collide."""
    markets = DEFAULT_MARKETS
    pairs = list(itertools.permutations(sorted(markets), 2))
    if count > len(pairs):
        raise SystemExit(f"at most {len(pairs)} distinct pairs")
    requests = []
    for number, (x, y) in enumerate(pairs[:count]):
        mx, my = markets[x], markets[y]
        amount = math.ceil(NOTIONAL / mx.price / mx.amount_step) * mx.amount_step
        requests.append(
            PairTradeRequest(
                x,
                "buy",
                round(amount, 10),
                y,
                "sell",
                mx.price / my.price,
                signal_id=f"scale-signal-{number}",
            )
        )
    return requests


async def main(db_url: str, paper_path: str, count: int, barrier: str) -> None:
    requests = signals(count)
    paper = PaperExchange(paper_path, chaos="*:latency=0.005")
    config = EngineConfig(lookup_backoff=0.01, settle_timeout=0.1, settle_poll_interval=0.02)
    async with ExecutionEngine(paper, store=db_url, config=config) as engine:
        while not Path(barrier).exists():
            time.sleep(0.01)
        outcomes = await asyncio.gather(*(engine.execute_pair_trade(r) for r in requests))
        owner = engine.owner
    await paper.close()
    print(
        json.dumps(
            {
                "executed": sum(not o.duplicate for o in outcomes),
                "duplicates": sum(o.duplicate for o in outcomes),
                "done": sum(o.ok for o in outcomes),
                "owner": owner,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
