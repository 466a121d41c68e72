"""What an operator watches: ``engine.metrics`` (scraped over HTTP as Prometheus text) and the
``on_attention`` alert (``[alerts] on_parked`` runs a command), against the paper exchange and
a real SQLite file.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pairexec import ExecutionEngine, TradeOutcome, TradeState
from pairexec.fsm.alerts import command_alert
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.settings import SettingsError, parse
from pairexec.persistence import TradeStore
from tests.conftest import FAST, btc_eth

PARK = "ETH/USDT:reject_funds=1;BTC/USDT@sell:reject_invalid=9"
"""Leg B refused, and every unwind of leg A: the trade parks."""


def scrape(port: int) -> dict[str, float]:
    """The endpoint's samples: name{labels} -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_the_metrics_endpoint_counts_trades_lookups_and_the_unhedged_window(
    tmp_path: Path,
) -> None:
    chaos = "ETH/USDT:timeout_after_accept=1;*:latency=0.005"  # leg B's reply lost once
    paper = PaperExchange(None, chaos=chaos)
    url = f"sqlite:///{tmp_path / 't.db'}"
    async with ExecutionEngine(paper, store=TradeStore(url), config=FAST) as engine:
        server = engine.metrics.serve(0)
        try:
            port = server.server_address[1]
            outcomes = [await engine.execute_pair_trade(btc_eth()) for _ in range(2)]
            samples = scrape(port)
        finally:
            server.shutdown()
    assert [o.state for o in outcomes] == [TradeState.DONE] * 2
    assert samples["pairexec_trades_started_total"] == 2
    assert samples['pairexec_trades_ended_total{state="DONE"}'] == 2
    assert samples["pairexec_lookups_total"] >= 1  # the lost leg B reply was looked up
    assert samples["pairexec_unhedged_window_seconds_count"] == 2
    assert 0 < samples["pairexec_unhedged_window_seconds_sum"] < 5
    assert samples['pairexec_unhedged_window_seconds_bucket{le="+Inf"}'] == 2
    assert samples["pairexec_store_commit_seconds_count"] >= 6  # at least three writes a trade
    snapshot = engine.metrics.snapshot()
    assert snapshot["trades_ended"] == {"DONE": 2} and snapshot["lookups"] >= 1


async def test_rate_limit_waits_and_resends_are_counted(tmp_path: Path) -> None:
    paper = PaperExchange(None, chaos="ETH/USDT:rate_limit=1;BTC/USDT:timeout_before_accept=1")
    async with ExecutionEngine(
        paper, store=TradeStore(f"sqlite:///{tmp_path / 't.db'}"), config=FAST
    ) as engine:
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE
    assert engine.metrics.rate_limit_waits == 1  # leg B throttled once, then sent
    assert engine.metrics.resends == 1  # leg A never reached the venue: found absent, resent


async def _park_one_then_trade(
    path: Path, hook: Callable[[TradeOutcome], Any]
) -> tuple[TradeOutcome, TradeOutcome]:
    """A trade that parks, then one on another pair, on an engine with ``hook``."""
    async with ExecutionEngine(
        PaperExchange(None, chaos=PARK),
        store=TradeStore(f"sqlite:///{path}"),
        config=FAST,
        on_attention=hook,
    ) as engine:
        parked = await engine.execute_pair_trade(btc_eth())
        done = await engine.execute_pair_trade(replace(btc_eth(), pair_y="SOL/USDT"))
    return parked, done


async def test_a_parked_trade_fires_its_alert_once_with_what_happened(tmp_path: Path) -> None:
    fired: list[TradeOutcome] = []

    async def alert(outcome: TradeOutcome) -> None:
        fired.append(outcome)

    parked, done = await _park_one_then_trade(tmp_path / "t.db", alert)
    assert parked.state is TradeState.PARKED and done.ok
    assert [o.trade_id for o in fired] == [parked.trade_id]
    assert fired[0].reason == parked.reason


async def test_a_hook_that_raises_is_logged_and_the_trade_and_the_next_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bot's own hook is its code: a sync one that raises, or an async one that fails
    later, is logged with the trade's id, and neither the parked outcome nor later trades
    are touched by it."""

    def sync_hook(outcome: TradeOutcome) -> None:
        raise RuntimeError("pager down")

    async def async_hook(outcome: TradeOutcome) -> None:
        raise RuntimeError("pager down later")

    for hook in (sync_hook, async_hook):
        caplog.clear()
        with caplog.at_level(logging.ERROR, "pairexec"):
            parked, done = await _park_one_then_trade(tmp_path / f"{hook.__name__}.db", hook)
        assert parked.state is TradeState.PARKED and done.ok, hook.__name__
        assert parked.trade_id in caplog.text and "pager down" in caplog.text, caplog.text


async def test_the_on_parked_command_runs_with_the_trade_in_its_environment(
    tmp_path: Path,
) -> None:
    out = tmp_path / "alerts.txt"
    script = f'echo "$PAIREXEC_TRADE_ID $PAIREXEC_STATE $PAIREXEC_REASON" >> {out}'
    async with ExecutionEngine(
        PaperExchange(None, chaos=PARK),
        store=TradeStore(f"sqlite:///{tmp_path / 't.db'}"),
        config=FAST,
        on_attention=command_alert(script),
    ) as engine:
        parked = await engine.execute_pair_trade(btc_eth())
    [line] = out.read_text().splitlines()  # close() waited for the command
    assert line.startswith(f"{parked.trade_id} PARKED ")
    assert parked.reason in line


async def test_an_alert_that_fails_or_hangs_is_logged_and_trading_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = command_alert(f"{sys.executable} -c 'import sys; sys.exit(\"no pager\")'")
    hanging = command_alert("sleep 5", timeout=0.2)
    outcome = TradeOutcome("t" * 32, TradeState.PARKED, reason="test")
    with caplog.at_level(logging.ERROR, "pairexec.alerts"):
        await asyncio.wait_for(asyncio.gather(failing(outcome), hanging(outcome)), 3)
    assert "exited 1: no pager" in caplog.text
    assert "ran over 0.2s and was killed" in caplog.text


def test_the_config_file_takes_the_alert_command() -> None:
    assert parse({"alerts": {"on_parked": "notify-send parked"}}).on_parked == "notify-send parked"
    with pytest.raises(SettingsError, match=r"alerts\.on_park: unknown key"):
        parse({"alerts": {"on_park": "x"}})
    with pytest.raises(SettingsError, match=r"alerts\.on_parked: must be a shell command"):
        parse({"alerts": {"on_parked": ""}})
