"""Writes that commit a hedge's intent go first where writes wait for the database: the pool's
turns on PostgreSQL, the next group commit on SQLite. (The unhedged window this shortens is
measured in ``bench/unhedged.py``: 200 trades at once on PostgreSQL, p99 from ~360 ms to ~50-170
ms; here, that the order is the one intended.)"""

from __future__ import annotations

import asyncio

import pytest

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import Change, OrderFacts, OrderStatus, OrderUpdate, Transition, hedges
from pairexec.fsm.states import TradeState
from pairexec.persistence.db import Turns, _Job, _next_batch
from tests.support.records import trade

S = TradeState


def _intent(leg: Leg, cid: str = "c") -> OrderFacts:
    return OrderFacts.intent(leg, 1, cid, "ETH/USDT", "sell", 1.0)


def test_a_hedge_or_an_unwind_intent_is_urgent_and_leg_a_s_is_not() -> None:
    pending = trade(S.PENDING)
    assert not hedges(pending, Change("leg A", S.LEG_A_SENT, new_order=_intent(Leg.A)))
    filled = Change("leg A filled", order_update=OrderUpdate("a", OrderStatus.CLOSED, 1.0))
    assert not hedges(pending, filled)
    then_b = Transition(S.LEG_B_SENT, "hedge", _intent(Leg.B))
    assert hedges(pending, Change("leg A filled", then=(then_b,)))
    assert hedges(pending, Change("unwind", S.UNWINDING, new_order=_intent(Leg.UNWIND)))
    with_b = trade(S.RECONCILED, [_intent(Leg.A, "a"), _intent(Leg.B, "b")])
    assert hedges(with_b, Change("resend", order_update=OrderUpdate("b", OrderStatus.INTENT)))
    assert not hedges(with_b, Change("resend", order_update=OrderUpdate("a", OrderStatus.INTENT)))


async def test_an_urgent_waiter_gets_the_next_turn_before_earlier_others() -> None:
    turns = Turns(1)
    served: list[str] = []
    release = asyncio.Event()

    async def job(name: str, urgent: bool) -> None:
        async with turns.turn(urgent):
            served.append(name)
            if name == "first":
                await release.wait()

    tasks = [asyncio.create_task(job("first", False))]
    await asyncio.sleep(0)
    for name, urgent in [("plain 1", False), ("plain 2", False), ("hedge", True)]:
        tasks.append(asyncio.create_task(job(name, urgent)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert served == ["first", "hedge", "plain 1", "plain 2"]


async def test_a_waiter_cancelled_after_its_turn_came_hands_it_on() -> None:
    turns = Turns(1)
    got: list[str] = []

    async def holder(gate: asyncio.Event) -> None:
        async with turns.turn(False):
            await gate.wait()

    gate = asyncio.Event()
    first = asyncio.create_task(holder(gate))
    await asyncio.sleep(0)

    async def waiter(name: str) -> None:
        async with turns.turn(True):
            got.append(name)

    doomed = asyncio.create_task(waiter("doomed"))
    later = asyncio.create_task(waiter("later"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0)  # the holder leaves: the turn is handed to "doomed"...
    doomed.cancel()  # ...which is cancelled before it runs
    await asyncio.wait_for(asyncio.gather(first, later), 2)  # a lost turn: a TimeoutError
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert got == ["later"]  # the turn went on, none was lost

    async def again() -> None:
        async with turns.turn(False):
            pass

    await asyncio.wait_for(again(), 1)  # and it is free again


def test_the_next_group_commit_takes_the_urgent_jobs_alone() -> None:
    loop = asyncio.new_event_loop()
    try:
        jobs = [
            _Job(lambda db: None, True, loop.create_future(), u) for u in (False, True, False, True)
        ]
        first, rest = _next_batch(jobs)
        assert first == [jobs[1], jobs[3]] and rest == [jobs[0], jobs[2]]
        assert _next_batch(rest) == (rest, [])
    finally:
        loop.close()


async def test_a_waiter_cancelled_just_before_a_hand_on_leaves_the_queue_sound() -> None:
    """The holder leaves in the same step as a waiter is cancelled: the hand-on drops the
    cancelled waiter and serves the next; the cancelled one then finds itself gone."""
    turns = Turns(1)
    gate = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with turns.turn(False):
            await gate.wait()

    async def waiter(name: str) -> None:
        async with turns.turn(False):
            got.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed, later = asyncio.create_task(waiter("doomed")), asyncio.create_task(waiter("later"))
    await asyncio.sleep(0)
    gate.set()  # the holder's wake-up is queued first...
    doomed.cancel()  # ...then the doomed waiter's cancellation
    await asyncio.wait_for(asyncio.gather(first, later), 2)
    with pytest.raises(asyncio.CancelledError):  # not a ValueError from the queue
        await doomed
    assert got == ["later"]
