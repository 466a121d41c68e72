"""The explorer: every path of a trade up to a depth, the real decide() and projection, and
invariants that catch a planted bug with a short, replayable counterexample."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from pairexec.fsm.cli import main
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import Action, Lookup, Resend, Submit, decide
from pairexec.fsm.model import OrderStatus
from pairexec.fsm.sim.explore import CONFIGS, explore, replay
from pairexec.fsm.states import TradeState, Trigger

DEPTH = 6
"""Exchange calls a trade may make here: about 3 s; each more is about 3x."""


@pytest.mark.parametrize("policy", sorted(CONFIGS))
def test_no_path_breaks_an_invariant(policy: str) -> None:
    report = explore(DEPTH, policy)
    assert report.ok, "\n".join(report.lines())
    assert report.states > 1_000 and report.deepest == DEPTH
    assert set(report.terminal) == {"DONE", "ABORTED", "FAILED", "PARKED"}


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


def test_the_prove_command_reports_and_exits_by_the_verdict(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["prove", "--depth", "3", "--policy", "market"]) == 0
    out = capsys.readouterr().out
    assert "market:" in out and "states" in out and "no invariant violated" in out
    assert main.main(["prove", "--depth", "0"]) == 2
