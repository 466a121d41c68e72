"""The crash matrix's leg-B cases through real ccxt: an engine process SIGKILLed around leg B's
create_order, recovered by a new engine, with one exchange order per leg.

The fake Binance server runs in the test process and outlives the engine: the engine runs in a
subprocess (this module's ``__main__``), trading through a real ``ccxt.async_support.binance``
client, with ``PAIREXEC_TEST_KILL_AT`` set (``pairexec.fsm.crashpoints``), so it kills itself with
SIGKILL exactly there:

- ``intent:B``: leg B's client id is committed, its POST /api/v3/order never made;
- ``sent:B``: the POST was answered (the order is on the book), the answer never stored.

A new engine with a new ccxt client then runs ``recover()``; the invariants of
``pairexec.fsm.sim.invariants`` are checked on the trades DB and on the server's own book file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from pairexec import ExecutionEngine, TradeState, TradeStore
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.crashpoints import ENV_VAR
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.sim.invariants import check_invariants
from tests.conftest import FAST, btc_eth
from tests.support.fake_binance import FakeBinance, binance_client
from tests.support.paths import ROOT


async def _trade(url: str, db_url: str) -> None:
    """The engine process: one pair trade through real ccxt (run as ``__main__``)."""
    exchange = binance_client(url)
    try:
        async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
            await engine.execute_pair_trade(btc_eth(1.0, hedge_ratio=2.0))
    finally:
        await exchange.close()


@pytest.mark.parametrize("kill_at", ["intent:B", "sent:B"])
async def test_sigkill_around_leg_b_then_recover_through_ccxt(tmp_path: Path, kill_at: str):
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'trades.db'}"
    async with FakeBinance(path=tmp_path / "venue.db") as fake:
        env = {**os.environ, ENV_VAR: kill_at, "PYTHONPATH": str(ROOT)}
        engine_process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.system.test_ccxt_crash",
            fake.url,
            db_url,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(engine_process.communicate(), 120)
        assert engine_process.returncode == -signal.SIGKILL, (out + err).decode()

        # what the dead process left on the venue: leg A, and leg B only if it was sent
        assert len(fake.orders("BTC/USDT")) == 1
        assert len(fake.orders("ETH/USDT")) == (1 if kill_at == "sent:B" else 0)
        creates_before = len(fake.seen("create", "ETH/USDT"))

        exchange = binance_client(fake.url)  # the new process's own client
        try:
            async with ExecutionEngine(exchange, store=db_url, config=FAST) as engine:
                [outcome] = await engine.recover()
                record = await engine.store.load(outcome.trade_id)
        finally:
            await exchange.close()

        assert outcome.state is TradeState.DONE, outcome.reason
        assert outcome.filled_y == pytest.approx(2 * outcome.filled_x)
        [leg_b] = [o for o in record.orders if o.leg is Leg.B]
        lookups = fake.seen("fetch", "ETH/USDT")
        assert lookups and lookups[0].client_order_id == leg_b.client_order_id  # looked up first
        resent = len(fake.seen("create", "ETH/USDT")) - creates_before
        assert resent == (0 if kill_at == "sent:B" else 1)  # found / confirmed absent + resent
        assert len(fake.orders("ETH/USDT")) == 1 and len(fake.orders("BTC/USDT")) == 1

    book = PaperExchange(tmp_path / "venue.db")
    try:
        async with TradeStore(db_url) as store:
            assert await check_invariants(store, book) == []
    finally:
        await book.close()


if __name__ == "__main__":  # the engine process: python -m tests.system.test_ccxt_crash URL DB_URL
    asyncio.run(_trade(sys.argv[1], sys.argv[2]))
