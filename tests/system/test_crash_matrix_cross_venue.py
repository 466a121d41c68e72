"""The SIGKILL crash matrix on the cross-venue path: leg A on paper venue a, leg B on paper venue b.

Like ``test_crash_matrix``, each case runs a real `pairexec trade` process (here with a config
file of two paper venues, `BTC/USDT@a buy 1 ETH/USDT@b sell --hedge-ratio 2`) with
PAIREXEC_TEST_KILL_AT set, checks it died by SIGKILL there, runs `pairexec recover` in a fresh
process, and checks the invariants per venue: every leg A and unwind order on a's book exactly
once and never on b's, every leg B order on b's exactly once and never on a's, no client id
twice on either book, each book's fills the database's, and the hedge or the unwind exact.
A representative subset of the kill points keeps the real processes' time bounded; the
single-venue matrix covers every point.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderStatus, TradeRecord
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.sim.invariants import check_invariants
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore
from tests.system.test_crash_matrix import pairexec as run

CONFIG = """
database = "trades.db"

[venues.a]
exchange = "paper"

[venues.b]
exchange = "paper"
"""

TRADE = ["trade", "BTC/USDT@a", "buy", "1", "ETH/USDT@b", "sell", "--hedge-ratio", "2"]
# `--chaos` reaches every paper venue of the file; ETH/USDT is traded on b only, so these hit b.
GHOST_B = "ETH/USDT:timeout_after_accept=1"
REJECT_B = "ETH/USDT:reject_invalid=1"

# kill point -> (chaos for the trade process, the state recover must reach)
MATRIX = {
    "intent:A": ("", TradeState.DONE),
    "sent:A": ("", TradeState.DONE),
    "intent:B": ("", TradeState.DONE),
    "sent:B": ("", TradeState.DONE),
    "state:UNKNOWN": (GHOST_B, TradeState.DONE),  # leg B placed on b, its reply lost
    "intent:UNWIND": (REJECT_B, TradeState.ABORTED),  # leg B rejected on b: unwind on a
    "sent:UNWIND": (REJECT_B, TradeState.ABORTED),
}

VENUE_OF_LEG = {Leg.A: "a", Leg.UNWIND: "a", Leg.B: "b"}
VENUES = ("a", "b")


def pairexec(
    args: list[str], tmp: Path, kill_at: str | None = None, chaos: str = ""
) -> subprocess.CompletedProcess[str]:
    """``pairexec ARGS`` on the two venues of ``tmp``'s config file (see the SIGKILL matrix)."""
    return run(args, tmp, kill_at, chaos, where=["--config", str(tmp / "pairexec.toml")])


def venue_problems(trade: TradeRecord, books: dict[str, PaperExchange]) -> list[str]:
    """Each order on its own venue's book only, once; the books' fills the database's."""
    problems: list[str] = []
    if (trade.request.venue_x, trade.request.venue_y) != ("a", "b"):
        problems.append(f"trade venues {trade.request.venue_x}, {trade.request.venue_y}")
    for order in trade.orders:
        cid, home = order.client_order_id, VENUE_OF_LEG[order.leg]
        if order.venue != home:
            problems.append(f"{cid} (leg {order.leg.value}) stored on venue {order.venue}")
        for name, book in books.items():
            copies = book.orders_with_client_id(cid)
            if name != home and copies:
                problems.append(f"{cid} (leg {order.leg.value}) on venue {name}'s book")
            if name != home:
                continue
            # a rejected order never got through; every other one is on its venue, once
            wanted = (0, 1) if order.status is OrderStatus.REJECTED else (1,)
            if len(copies) not in wanted:
                problems.append(f"{cid}: {len(copies)} orders on venue {name} ({order.status})")
            on_book = sum(float(c["filled"] or 0) for c in copies)
            if on_book != pytest.approx(order.filled):
                problems.append(f"{cid}: filled {on_book:g} on {name}, {order.filled:g} stored")
    for name, book in books.items():
        cids = Counter(o["clientOrderId"] for o in book.all_orders())
        problems += [f"{cid} {n} times on venue {name}" for cid, n in cids.items() if n > 1]
        stored = {o.client_order_id for o in trade.orders if o.venue == name}
        problems += [f"{cid} on venue {name}, not stored" for cid in cids if cid not in stored]
        book_fills = sum(float(o["filled"] or 0) for o in book.all_orders())
        db_fills = sum(o.filled for o in trade.orders if o.venue == name)
        if book_fills != pytest.approx(db_fills):
            problems.append(f"venue {name}: {book_fills:g} filled on the book, {db_fills:g} stored")
    return problems


async def assert_recovered(tmp: Path, expected: TradeState) -> None:
    books = {name: PaperExchange(tmp / f"trades.{name}.paper.db") for name in VENUES}
    try:
        async with TradeStore(f"sqlite:///{tmp / 'trades.db'}") as store:
            assert await check_invariants(store, books) == []
            [trade] = await store.list_trades()
        assert venue_problems(trade, books) == []
    finally:
        for book in books.values():
            await book.close()
    assert trade.state is expected, trade.reason
    assert trade.filled(Leg.A) > 0
    if expected is TradeState.DONE:
        assert trade.filled(Leg.B) == pytest.approx(2 * trade.filled(Leg.A))
        assert trade.filled(Leg.UNWIND) == 0
    else:
        assert trade.filled(Leg.B) == 0
        assert trade.filled(Leg.UNWIND) == pytest.approx(trade.filled(Leg.A))


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "pairexec.toml").write_text(CONFIG)
    return tmp_path


@pytest.mark.parametrize("kill_at", list(MATRIX))
async def test_sigkill_then_recover_across_venues(workdir: Path, kill_at: str) -> None:
    chaos, expected = MATRIX[kill_at]

    killed = pairexec(TRADE, workdir, kill_at=kill_at, chaos=chaos)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    recovered = pairexec(["recover"], workdir)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    await assert_recovered(workdir, expected)


async def test_kill_during_recover_then_recover_again_across_venues(workdir: Path) -> None:
    assert pairexec(TRADE, workdir, kill_at="intent:B").returncode == -signal.SIGKILL
    # the first recover looks leg B up on b, finds it absent, resends it there and dies as
    # create_order returns: the second must find that order on b, not send another
    first = pairexec(["recover"], workdir, kill_at="sent:B")
    assert first.returncode == -signal.SIGKILL, first.stdout + first.stderr
    again = pairexec(["recover"], workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    await assert_recovered(workdir, TradeState.DONE)
    third = pairexec(["recover"], workdir)  # idempotent
    assert third.returncode == 0 and "nothing to recover" in third.stdout, third.stdout
