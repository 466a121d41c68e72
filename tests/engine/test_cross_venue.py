"""Two venues in one trade: each leg on its own exchange, every call to that venue only.

Two in-memory fakes stand for the venues; every assertion names the venue it is about, so a
call routed to the wrong one (a lookup of leg B on leg A's venue, an unwind on leg B's) fails
the test that makes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from pairexec import ExecutionEngine, InvalidRequest, PairTradeRequest, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.engine import EngineError
from pairexec.fsm.model import OrderStatus
from pairexec.fsm.request import DuplicateReason
from pairexec.persistence import TradeStore
from tests.conftest import FAST
from tests.support.fake_exchange import FakeExchange


def across(
    amount: float = 1.0, venue_x: str | None = "spot", venue_y: str | None = "perp", **kw: object
) -> PairTradeRequest:
    """Buy BTC/USDT on one venue, sell the same symbol on the other (the arbitrage)."""
    return PairTradeRequest(
        pair_x="BTC/USDT",
        side_x="buy",
        amount_x=amount,
        pair_y="BTC/USDT",
        side_y="sell",
        venue_x=venue_x,
        venue_y=venue_y,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def spot() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
def perp() -> FakeExchange:
    return FakeExchange()


@pytest.fixture
async def engine(spot: FakeExchange, perp: FakeExchange, db_url: str):
    async with ExecutionEngine(
        {"spot": spot, "perp": perp}, store=TradeStore(db_url), config=FAST
    ) as eng:
        yield eng


def sides(venue: FakeExchange) -> list[str | None]:
    return [c.side for c in venue.create_calls()]


async def test_each_leg_goes_to_its_own_venue_and_is_stored_with_it(engine, spot, perp):
    outcome = await engine.execute_pair_trade(across(0.5))

    assert outcome.state is TradeState.DONE
    assert sides(spot) == ["buy"] and sides(perp) == ["sell"]
    assert [c.amount for c in perp.create_calls()] == [0.5]
    record = await engine.store.load(outcome.trade_id)
    assert [(o.leg, o.venue) for o in record.orders] == [(Leg.A, "spot"), (Leg.B, "perp")]
    assert (record.request.venue_x, record.request.venue_y) == ("spot", "perp")


async def test_leg_b_rejected_on_its_venue_is_unwound_on_leg_a_venue(engine, spot, perp):
    perp.fail("create_order", "BTC/USDT", "reject_funds")

    outcome = await engine.execute_pair_trade(across())

    assert outcome.state is TradeState.ABORTED
    assert sides(spot) == ["buy", "sell"]  # the unwind closes leg A where it was bought
    assert sides(perp) == ["sell"]  # a definite reject is not retried
    record = await engine.store.load(outcome.trade_id)
    assert [o.venue for o in record.orders if o.leg is Leg.UNWIND] == ["spot"]


async def test_leg_b_unknown_is_looked_up_on_its_venue_only_never_resent(engine, spot, perp):
    perp.fail("create_order", "BTC/USDT", "timeout_after_accept")

    outcome = await engine.execute_pair_trade(across())

    assert outcome.state is TradeState.DONE
    assert sides(perp) == ["sell"]  # found by the lookup, not sent twice
    assert perp.count("fetch_order") >= 1
    assert spot.count("fetch_order") == 0  # leg A's venue never asked about leg B


async def test_an_open_leg_b_is_settled_and_cancelled_on_its_venue(engine, spot, perp):
    perp.behave("BTC/USDT", fill=0.5, leave_open=True)

    outcome = await engine.execute_pair_trade(across())

    # Each of leg B's three orders fills half and has its rest cancelled, on perp only.
    assert perp.count("cancel_order") == 3 and spot.count("cancel_order") == 0
    assert spot.count("fetch_order") == 0
    assert outcome.filled_y == pytest.approx(0.875)
    assert sides(spot) == ["buy", "sell"] and outcome.unwound_x == pytest.approx(0.125)
    assert sides(perp) == ["sell"] * 3


@pytest.mark.parametrize(
    ("venue_x", "venue_y", "problem"),
    [
        (None, "perp", "venue_x missing"),
        ("spot", None, "venue_y missing"),
        ("spot", "okx", "venue_y 'okx' is not one of the engine's venues (spot, perp)"),
        ("spot", "spot", "same symbol ('BTC/USDT') on venue 'spot'"),
        ("sp@t", "perp", "venue_x must be a venue name"),
    ],
)
async def test_a_request_without_a_known_venue_per_leg_is_refused_before_anything(
    engine, spot, perp, venue_x, venue_y, problem
):
    with pytest.raises(InvalidRequest, match=problem.replace("(", r"\(").replace(")", r"\)")):
        await engine.execute_pair_trade(across(venue_x=venue_x, venue_y=venue_y))

    assert spot.calls == [] and perp.calls == []
    assert await engine.store.list_trades() == []


async def test_a_single_exchange_takes_no_venue_names(db_url):
    async with ExecutionEngine(FakeExchange(), store=TradeStore(db_url), config=FAST) as eng:
        with pytest.raises(InvalidRequest, match="venue_x 'spot' given, but the engine has a"):
            await eng.execute_pair_trade(across(venue_y=None))


async def test_venue_names_are_checked_when_the_engine_is_made():
    with pytest.raises(EngineError, match="venue must be a venue name"):
        ExecutionEngine({"a|b": FakeExchange()})
    with pytest.raises(EngineError, match="no venues"):
        ExecutionEngine({})


async def test_the_in_flight_key_includes_the_venues(engine, spot, perp):
    gate = asyncio.Event()
    original = spot.create_order

    async def slow_create(*args, **kwargs):
        await gate.wait()
        return await original(*args, **kwargs)

    spot.create_order = slow_create
    first = asyncio.create_task(engine.execute_pair_trade(across()))
    await asyncio.sleep(0.05)  # the first trade is stored and its leg A on its way

    busy = await engine.execute_pair_trade(across())
    reversed_ = asyncio.create_task(
        engine.execute_pair_trade(across(venue_x="perp", venue_y="spot"))
    )
    await asyncio.sleep(0.05)
    gate.set()
    other = await reversed_

    assert busy.duplicate and busy.duplicate_reason is DuplicateReason.PAIR_BUSY
    assert not other.duplicate and other.state is TradeState.DONE  # other venues: other key
    assert (await first).state is TradeState.DONE


async def test_a_blocked_venue_does_not_hold_up_trades_on_the_other(db_url):
    """Each venue throttles (and stalls) alone: nothing in the engine serialises venues."""
    stalled, a, b = FakeExchange(), FakeExchange(), FakeExchange()
    gate = asyncio.Event()
    original = stalled.create_order

    async def stuck(*args, **kwargs):
        await gate.wait()
        return await original(*args, **kwargs)

    stalled.create_order = stuck  # type: ignore[method-assign]
    venues = {"stalled": stalled, "a": a, "b": b}
    async with ExecutionEngine(venues, store=TradeStore(db_url), config=FAST) as eng:
        queued = [
            asyncio.create_task(
                eng.execute_pair_trade(  # five pairs (one pair would be one trade in flight)
                    replace(across(venue_x="stalled", venue_y="a"), pair_x=f"C{i}/USDT")
                )
            )
            for i in range(5)
        ]
        await asyncio.sleep(0.05)
        free = await asyncio.wait_for(
            eng.execute_pair_trade(across(venue_x="a", venue_y="b")), timeout=10
        )
        assert free.state is TradeState.DONE
        assert not any(t.done() for t in queued)  # still waiting on the stalled venue
        gate.set()
        assert all(o.state is TradeState.DONE for o in await asyncio.gather(*queued))
    assert sides(b) == ["sell"]


async def test_recover_leaves_a_trade_whose_venue_is_missing_untouched(spot, perp, db_url):
    perp.fail("create_order", "BTC/USDT", "timeout_after_accept")
    perp.fail("fetch_order", "BTC/USDT", *["timeout_before_accept"] * FAST.lookup_attempts)
    async with ExecutionEngine(
        {"spot": spot, "perp": perp}, store=TradeStore(db_url), config=FAST
    ) as first:
        stuck = await first.execute_pair_trade(across())
    assert stuck.state is TradeState.UNKNOWN  # leg B's outcome still unknown

    spot_calls = len(spot.calls)
    async with ExecutionEngine({"spot": spot}, store=TradeStore(db_url), config=FAST) as only:
        [outcome] = await only.recover()
        stored = await only.store.load(stuck.trade_id)
    assert outcome.state is TradeState.UNKNOWN and not outcome.ok
    assert "venue 'perp'" in outcome.reason and "not given to this engine" in outcome.reason
    assert len(spot.calls) == spot_calls  # nothing sent or asked anywhere
    assert stored.state is TradeState.UNKNOWN and "venue 'perp'" in stored.reason
    assert [o.status for o in stored.orders if o.leg is Leg.B] == [OrderStatus.UNKNOWN]

    async with ExecutionEngine(
        {"spot": spot, "perp": perp}, store=TradeStore(db_url), config=FAST
    ) as both:
        [finished] = await both.recover()
    assert finished.state is TradeState.DONE
    assert sides(perp) == ["sell"]  # leg B found by its lookup on perp, never resent
    assert len(spot.calls) == spot_calls


async def test_a_single_exchange_trade_is_not_resumed_by_an_engine_with_venues(db_url):
    one = FakeExchange()
    one.fail("create_order", "ETH/USDT", "timeout_after_accept")
    one.fail("fetch_order", "ETH/USDT", *["timeout_before_accept"] * FAST.lookup_attempts)
    request = PairTradeRequest("BTC/USDT", "buy", 1.0, "ETH/USDT", "sell")
    async with ExecutionEngine(one, store=TradeStore(db_url), config=FAST) as eng:
        stuck = await eng.execute_pair_trade(request)
    assert stuck.state is TradeState.UNKNOWN

    other = FakeExchange()
    async with ExecutionEngine({"x": other}, store=TradeStore(db_url), config=FAST) as eng:
        [outcome] = await eng.recover()
    assert outcome.state is TradeState.UNKNOWN and "made with a single exchange" in outcome.reason
    assert other.calls == []
