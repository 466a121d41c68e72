"""``pairexec resolve``: a PARKED trade blocks its pair until a human says it is settled."""

from __future__ import annotations

from pathlib import Path

from tests.system.test_cli import TRADE, assert_one_line_error, run

PARKING = "ETH/USDT:reject_funds=1;BTC/USDT@sell:reject_invalid=9"
"""Leg B refused, and every unwind of leg A too: the trade parks with leg A naked."""


def test_a_parked_pair_refuses_trades_until_resolved(tmp_path: Path):
    parked = run(*TRADE, "--hedge-ratio", "10", "--chaos", PARKING, cwd=tmp_path)
    assert parked.returncode == 3 and "PARKED" in parked.stdout, parked.stdout + parked.stderr
    trade_id = parked.stdout.split()[1].rstrip(":")

    refused = run(*TRADE, "--hedge-ratio", "10", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "duplicate" in refused.stdout and "PARKED" in refused.stdout

    resolved = run("resolve", trade_id[:8], "--note", "sold the BTC by hand", cwd=tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    assert "RESOLVED" in resolved.stdout and "sold the BTC by hand" in resolved.stdout
    assert_one_line_error(
        run("resolve", trade_id[:8], "--note", "again", cwd=tmp_path), "not PARKED"
    )

    traded = run(*TRADE, "--hedge-ratio", "10", cwd=tmp_path)
    assert traded.returncode == 0 and "DONE" in traded.stdout, traded.stdout + traded.stderr
    show = run("show", trade_id[:8], cwd=tmp_path)
    assert "resolved by hand: sold the BTC by hand" in show.stdout
