"""Leg-B latency: from "leg A's fill is known" to leg B's ``create_order`` leaving the engine.

This is the time a pair trade is naked (leg A filled, leg B not yet sent). It is measured
from outside the engine: a proxy of the exchange timestamps when each ``create_order``
returned and when each was called, by client order id; a trade's latency is the call of its
first leg-B order minus the return of its leg-A order. In between, the engine durably records
leg A's fill together with its classification and leg B's intent (one commit): by design, an
order is durable before it is sent.

Measured on a SQLite file (WAL, synchronous=FULL) against the in-memory paper exchange: trades
one at a time, and N at once with 20 ms per exchange call (the store then queues).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import BENCH_CONFIG, Result, distinct_pairs, percentile, synthetic_markets
from pairexec.fsm.client_ids import Leg, client_order_id
from pairexec.fsm.engine import ExecutionEngine
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.venues.proxy import ExchangeProxy, OrderCall


class Stamps(ExchangeProxy):
    """Wraps an exchange; records when each create_order was called and returned, by cid."""

    def __init__(self, exchange: Any) -> None:
        super().__init__(exchange)
        self.called: dict[str, float] = {}
        self.returned: dict[str, float] = {}

    async def _call(self, call: OrderCall, forward: Callable[[], Awaitable[Any]]) -> Any:
        if call.method != "create_order":
            return await forward()
        cid = str(call.client_order_id)
        self.called.setdefault(cid, time.perf_counter())
        order = await forward()
        self.returned[cid] = time.perf_counter()
        return order


async def _latencies(
    tmp: Path, name: str, requests: list[PairTradeRequest], chaos: str, at_once: bool
) -> list[float]:
    markets = synthetic_markets(400)
    stamps = Stamps(PaperExchange(None, chaos=chaos, markets=markets))
    url = f"sqlite:///{tmp / name}.db"
    async with ExecutionEngine(stamps, store=url, config=BENCH_CONFIG) as engine:
        if at_once:
            outcomes = await asyncio.gather(*(engine.execute_pair_trade(r) for r in requests))
        else:
            outcomes = [await engine.execute_pair_trade(r) for r in requests]
    latencies = []
    for outcome in outcomes:
        a = client_order_id(outcome.trade_id, Leg.A, 1)
        b = client_order_id(outcome.trade_id, Leg.B, 1)
        latencies.append(stamps.called[b] - stamps.returned[a])
    return latencies


def run(quick: bool) -> Result:
    n = 50 if quick else 200
    requests = distinct_pairs(synthetic_markets(400), n)
    with tempfile.TemporaryDirectory(prefix="pairexec-bench-") as tmp:
        alone = asyncio.run(_latencies(Path(tmp), "alone", requests, "", at_once=False))
        loaded = asyncio.run(
            _latencies(Path(tmp), "loaded", requests, "*:latency=0.02", at_once=True)
        )
    result = Result("leg_b_latency", data={"trades": n})
    for label, values, key in (
        ("one trade at a time", alone, "alone"),
        (f"{n} trades at once, 20 ms calls", loaded, "loaded"),
    ):
        p50, p99 = percentile(values, 50) * 1e3, percentile(values, 99) * 1e3
        result.add(
            f"leg A fill -> leg B sent, {label}",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "1 commit in between (leg A's fill, its class and leg B's intent)",
            **{f"{key}_p50_ms": p50, f"{key}_p99_ms": p99},
        )
    return result
