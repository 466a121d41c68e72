"""The explorer: every path of a trade up to a depth, the real decide() and projection, and
invariants that catch a planted bug with a short, replayable counterexample."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pairexec.fsm.cli import main
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import Action, Lookup, Move, Quote, Resend, Submit, decide
from pairexec.fsm.markets import MarketRules
from pairexec.fsm.model import OrderStatus, filled
from pairexec.fsm.sim.explore import CONFIGS, MARKETS, explore, replay
from pairexec.fsm.states import TradeState, Trigger

DEPTH = 6
"""Exchange calls a trade may make here: about 2 s for market legs; each more is about 2.5x."""
SHALLOWER = {("market", "fees"): 5, ("market", "contract"): 5}
"""Market legs on the fee and contract markets, one call less: a fifth of the time, every
kind of end still reached (CI's 10 minutes are nearly spent)."""
TO_THE_END = 7
"""The depth at which ``market_once`` has nothing left to cut (explored there, not above)."""


@pytest.mark.parametrize("markets", sorted(MARKETS))
@pytest.mark.parametrize("policy", sorted(set(CONFIGS) - {"market_once"}))
def test_no_path_breaks_an_invariant(policy: str, markets: str) -> None:
    depth = SHALLOWER.get((policy, markets), DEPTH)
    report = explore(depth, policy, markets=markets)
    assert report.ok, "\n".join(report.lines())
    assert report.states > 1_000 and report.deepest == depth and report.loops == 0
    assert set(report.terminal) == {"DONE", "ABORTED", "FAILED", "PARKED"}


@pytest.mark.parametrize("markets", sorted(MARKETS))
def test_explored_to_the_end_a_drive_has_a_proven_bound_and_a_path_that_reaches_it(
    markets: str,
) -> None:
    short = explore(TO_THE_END - 1, "market_once", markets=markets)
    assert short.ok and short.cut and short.bound is None
    assert "bound not proven up to depth 6" in short.lines()[1]
    report = explore(TO_THE_END, "market_once", markets=markets)
    assert report.exhaustive and report.bound is not None and report.first is not None
    assert "terminates" in report.lines()[1]
    # By hand: with one send per id and one lookup a drive, an order makes at most two calls
    # (left open, then settled; or timed out, then found), so leg A, leg B and the unwind
    # make 6. A restart after a crash before a create (nothing sent, so no send counted)
    # adds one: the lookup that finds it absent, before it is sent once and settled.
    assert (report.first, report.bound) == (6, 7), report.lines()
    witness = replay(report.longest, "market_once", markets=markets)
    assert witness.calls == report.first  # the bound is reached, not only claimed
    assert witness.resuming or witness.record.state.terminal


@pytest.mark.parametrize("markets", sorted(MARKETS))
def test_capped_at_restarts_each_of_the_first_drives_has_a_proven_bound(markets: str) -> None:
    first = explore(None, "market_once", markets=markets, restarts=0)
    assert first.exhaustive and first.capped, first.lines()
    assert "each of a trade's first 1 drive(s) (paths of up to 0 restart(s))" in first.lines()[1]
    # By hand, as at depth 7: the first drive is a new trade's, three orders of two calls
    # each at most (left open, then settled), so 6; a restart's adds the lookup of an order
    # whose create the crash came before, 7.
    assert (first.first, first.bound) == (6, 6), first.lines()
    report = explore(None, "market_once", markets=markets, restarts=1)
    assert report.exhaustive and report.capped, report.lines()
    assert (report.first, report.bound) == (6, 7), report.lines()
    assert "first 2 drive(s) (paths of up to 1 restart(s)) ends" in report.lines()[1]
    assert replay(report.longest, "market_once", markets=markets).calls == report.first
    # The bound's witness is a restart's drive: the way to it, then 7 calls within it.
    start = replay(report.worst[: report.worst_from], "market_once", markets=markets)
    worst = replay(report.worst, "market_once", markets=markets)
    assert start.resuming and worst.calls - start.calls == report.bound == 7


def test_with_no_drive_end_past_the_cap_the_whole_graph_was_explored() -> None:
    some_left = explore(None, "market_once", restarts=3)
    assert some_left.exhaustive and some_left.capped, some_left.lines()
    report = explore(None, "market_once", restarts=4)
    assert report.exhaustive and not report.capped and report.bound == 7, report.lines()
    assert "a restart after any number of them" in report.lines()[1]
    assert report.states == explore(TO_THE_END, "market_once").states  # the same 1,528


def resends_without_a_lookup(record: Any, config: Any, **kw: Any) -> Action | None:
    """The bug the design exists to prevent: after a restart, leg B's unknown order is sent
    again instead of looked up."""
    action = decide(record, config, **kw)
    blind = isinstance(action, Lookup) and action.order.leg is Leg.B
    if blind and record.state is TradeState.LEG_B_SENT:
        assert isinstance(action, Lookup)
        return Resend(Trigger.SEND_LEG_B, action.order, "planted: resent blind")
    return action


def over_hedges(record: Any, config: Any, **kw: Any) -> Action | None:
    action = decide(record, config, **kw)
    if isinstance(action, Submit) and action.leg is Leg.B:
        return replace(action, amount=action.amount * 1.5)
    return action


def requotes_forever(record: Any, config: Any, **kw: Any) -> Action | None:
    """A venue with no bid is asked again and again, where the policy parks the trade: a
    loop no crash is needed for."""
    action = decide(record, config, **kw)
    if isinstance(action, Move) and action.trigger is Trigger.PARK and "no bid" in action.cause:
        request = record.request
        return Quote(request.pair_y, request.venue_y, request.side_y)
    return action


def quotes_instead_of_a_lookup(record: Any, config: Any, **kw: Any) -> Action | None:
    """After a restart, an order whose create may have gone out (INTENT when the process
    died: no send counted) is never looked up: the book is asked for again and again. Only a
    restart's drive can go round it (a timeout within a drive has counted its send)."""
    action = decide(record, config, **kw)
    unsent = isinstance(action, Lookup) and action.order.sends == 0
    if unsent and record.state is TradeState.UNKNOWN:
        assert isinstance(action, Lookup)
        order = action.order
        return Quote(order.symbol, order.venue, order.side)
    return action


def test_a_loop_in_a_restarts_drive_is_found_under_the_cap() -> None:
    assert explore(None, "market_once", decide_fn=quotes_instead_of_a_lookup, restarts=0).ok
    report = explore(None, "market_once", decide_fn=quotes_instead_of_a_lookup, restarts=1)
    assert report.loops and report.bound is None, report.lines()
    what, path = report.violations[0]
    assert what.startswith("a loop without a crash"), what
    assert any("the process dies" in step for step in path), path  # past a restart
    lap = int(what.split("the last ")[1].split(" ")[0])
    ends = [replay(p, "market_once", quotes_instead_of_a_lookup) for p in (path[:-lap], path)]
    assert ends[0].key() == ends[1].key() and ends[1].calls > ends[0].calls


def hedges_the_gross_fill(record: Any, config: Any, **kw: Any) -> Action | None:
    """Leg B sized from leg A's fill, fees forgotten."""
    return decide(record, replace(config, hedge_basis="filled"), **kw)


def unwinds_the_gross_fill(record: Any, config: Any, **kw: Any) -> Action | None:
    """An unwind that sells back what leg A filled, not what it holds after its fee."""
    action = decide(record, config, **kw)
    if isinstance(action, Submit) and action.leg is Leg.UNWIND:
        request = record.request
        orders = record.orders
        hedged = filled(orders, Leg.B) / request.hedge_ratio
        gross = filled(orders, Leg.A) - hedged - filled(orders, Leg.UNWIND)
        return replace(action, amount=round(gross, 3))
    return action


def forgets_the_contract_size(record: Any, config: Any, **kw: Any) -> Action | None:
    """Leg B sized as if its perpetual traded in base units of 0.001, not in contracts."""
    markets = {
        name: MarketRules(amount_step=0.001, min_amount=0.001) if rules.is_contract else rules
        for name, rules in kw.pop("markets").items()
    }
    return decide(record, config, markets=markets, **kw)


def test_a_blind_resend_is_found_with_a_short_replayable_counterexample() -> None:
    report = explore(4, decide_fn=resends_without_a_lookup)
    assert not report.ok
    what, path = report.violations[0]
    assert "resent while INTENT, without a lookup" in what
    assert len(path) <= 4, path  # new trade, leg A's intent, its answer, a crash
    assert "the process dies" in path[-1]
    node = replay(path, decide_fn=resends_without_a_lookup)
    [leg_b] = [o for o in node.record.orders if o.leg is Leg.B]
    assert node.resuming and leg_b.status is OrderStatus.INTENT
    again = resends_without_a_lookup(node.record, CONFIGS["market"], resuming=True, age=0.0)
    assert isinstance(again, Resend)  # the path ends where the bug resends


def test_an_over_hedge_is_found() -> None:
    report = explore(3, decide_fn=over_hedges)
    assert any("over-hedge" in what for what, _ in report.violations), report.lines()


def test_a_loop_is_found_with_a_lap_that_replays_back_to_where_it_began() -> None:
    report = explore(4, "limit_ladder", decide_fn=requotes_forever)
    assert report.loops and report.bound is None, report.lines()
    what, path = report.violations[0]
    assert what.startswith("a loop without a crash"), what
    assert len(path) <= 6, path  # new trade, leg A's intent, its fill, then the quotes
    nodes = [replay(path[:i], "limit_ladder", decide_fn=requotes_forever) for i in (4, 5)]
    assert nodes[0].key() == nodes[1].key() and nodes[1].calls > nodes[0].calls
    assert not explore(4, "limit_ladder").loops  # decide() parks there instead


def test_fees_are_hedged_and_unwound_from_the_net_fill() -> None:
    gross = explore(3, decide_fn=hedges_the_gross_fill, markets="fees")
    assert any("would over-hedge 1.998" in what for what, _ in gross.violations), gross.lines()
    unwind = explore(3, decide_fn=unwinds_the_gross_fill, markets="fees")
    assert any("would sell more than leg A's 0.999" in w for w, _ in unwind.violations)
    for bug in (hedges_the_gross_fill, unwinds_the_gross_fill):  # without fees, no difference
        assert explore(3, decide_fn=bug, markets="spot").ok


def stops_after_one_leg_b_order(record: Any, config: Any, **kw: Any) -> Action | None:
    """A remainder of leg B taken for dust: the trade is called DONE half hedged."""
    action = decide(record, config, **kw)
    if isinstance(action, Submit) and action.leg is Leg.B and action.attempt > 1:
        return Move(Trigger.LEG_B_FILLED, "planted: the remainder left")
    return action


def test_done_is_hedged_to_a_step_of_the_contract_market() -> None:
    report = explore(3, decide_fn=stops_after_one_leg_b_order, markets="contract")
    what = report.violations[0][0] if report.violations else "none"
    assert "DONE with leg B 0.808 short of its hedge (a step is 0.01)" in what, what
    assert explore(3, markets="contract").ok


def test_a_contract_leg_is_sent_in_whole_contracts() -> None:
    report = explore(2, decide_fn=forgets_the_contract_size, markets="contract")
    what = report.violations[0][0] if report.violations else "none"
    assert "leg B #1 is sent as 1.998 ETH/USDT:USDT" in what and "get 1.99" in what, what
    assert explore(2, decide_fn=forgets_the_contract_size, markets="spot").ok


def test_the_prove_command_reports_and_exits_by_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["prove", "--depth", "3", "--policy", "market"]) == 0
    out = capsys.readouterr().out
    assert all(f"market/{markets}:" in out for markets in MARKETS), out
    assert "states" in out and "bound not proven up to depth 3" in out
    assert "no invariant violated" in out
    assert main.main(["prove", "--depth", "0"]) == 2
    assert main.main(["prove", "--policy", "market_once", "--restarts", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("each of a trade's first 2 drive(s)") == len(MARKETS), out
    assert "exchange calls unlimited" in out
    assert main.main(["prove", "--policy", "market_once", "--restarts", "4"]) == 2
    assert "--restarts: must be from 0 to 3, not 4" in capsys.readouterr().err
    # market legs without a depth would run until memory ran out: refused, before any state
    assert main.main(["prove", "--restarts", "0"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--restarts without --depth would explore market and limit_ladder" in line, line
    assert main.main(["prove", "--restarts", "0", "--depth", "2", "--policy", "market"]) == 0
