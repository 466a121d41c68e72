"""The SIGKILL crash matrix: real `pairexec` processes killed at every interruption point.

Each case runs `pairexec trade` against the persistent paper exchange with
PAIREXEC_TEST_KILL_AT set, checks the process really died by SIGKILL there, runs
`pairexec recover` in a fresh process, and checks the invariants on the database and on the
exchange's own file: every trade terminal, one exchange order per order row, hedge or unwind
exact, journal complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.crashpoints import ENV_VAR
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.sim.invariants import check_invariants
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore

TRADE = ["trade", "BTC/USDT", "buy", "1", "ETH/USDT", "sell", "--hedge-ratio", "2"]
GHOST_B = "ETH/USDT:timeout_after_accept=1"
LOST_B = "ETH/USDT:timeout_before_accept=1"
REJECT_B = "ETH/USDT:reject_invalid=1"
PARTIAL_A = "BTC/USDT@buy:fill=0.6"

# kill point -> (chaos for the trade process, the state recover must reach)
MATRIX = {
    "intent:A": ("", TradeState.DONE),
    "sent:A": ("", TradeState.DONE),
    "state:LEG_A_SENT": ("", TradeState.DONE),
    "state:LEG_A_FILLED": ("", TradeState.DONE),
    "state:LEG_A_PARTIAL": (PARTIAL_A, TradeState.DONE),
    "intent:B": ("", TradeState.DONE),
    "sent:B": ("", TradeState.DONE),
    "state:LEG_B_SENT": ("", TradeState.DONE),
    "state:UNKNOWN": (GHOST_B, TradeState.DONE),
    "state:RECONCILED": (LOST_B, TradeState.DONE),
    "state:UNWINDING": (REJECT_B, TradeState.ABORTED),
    "intent:UNWIND": (REJECT_B, TradeState.ABORTED),
    "sent:UNWIND": (REJECT_B, TradeState.ABORTED),
    "state:DONE": ("", TradeState.DONE),
    "state:ABORTED": (REJECT_B, TradeState.ABORTED),
}


def pairexec(
    args: list[str],
    tmp: Path,
    kill_at: str | None = None,
    chaos: str = "",
    where: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pairexec ARGS`` in ``tmp``, on ``where`` (default: ``--db`` a SQLite file there),
    killed at ``kill_at``; nothing from the environment may choose another database, exchange
    or config file."""
    overrides = {ENV_VAR, "PAIREXEC_DB", "PAIREXEC_EXCHANGE", "PAIREXEC_CONFIG"}
    env = {k: v for k, v in os.environ.items() if k not in overrides}
    if kill_at:
        env[ENV_VAR] = kill_at
    extra = ["--chaos", chaos] if chaos else []
    where = where or ["--db", f"sqlite:///{tmp / 't.db'}"]
    return subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", *args, *where, *extra],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


async def assert_recovered(tmp: Path, expected: TradeState) -> None:
    paper = PaperExchange(tmp / "t.paper.db")
    try:
        async with TradeStore(f"sqlite:///{tmp / 't.db'}") as store:
            assert await check_invariants(store, paper) == []
    finally:
        await paper.close()
    async with TradeStore(f"sqlite:///{tmp / 't.db'}") as store:
        [trade] = await store.list_trades()
    assert trade.state is expected
    if expected is TradeState.DONE:
        assert trade.filled(Leg.B) == pytest.approx(2 * trade.filled(Leg.A))


@pytest.mark.parametrize("kill_at", list(MATRIX))
async def test_sigkill_then_recover(tmp_path: Path, kill_at: str):
    chaos, expected = MATRIX[kill_at]

    killed = pairexec(TRADE, tmp_path, kill_at=kill_at, chaos=chaos)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    recovered = pairexec(["recover"], tmp_path)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    await assert_recovered(tmp_path, expected)


async def test_kill_during_recover_then_recover_again(tmp_path: Path):
    assert pairexec(TRADE, tmp_path, kill_at="intent:B").returncode == -signal.SIGKILL
    # the first recover finds leg B absent, resends it and dies as it returns
    assert pairexec(["recover"], tmp_path, kill_at="sent:B").returncode == -signal.SIGKILL
    again = pairexec(["recover"], tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    await assert_recovered(tmp_path, TradeState.DONE)
    third = pairexec(["recover"], tmp_path)  # idempotent
    assert third.returncode == 0 and "nothing to recover" in third.stdout
