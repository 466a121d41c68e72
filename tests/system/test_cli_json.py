"""``--json`` and ``--log-format json``: each document's keys and value types are exactly the
ones docs/cli.md ("JSON output") lists, so renaming a key in the code or in the docs alone
fails here. The commands run in-process (``main.main``) but for the log lines, which need a
process whose logging pytest does not own."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pairexec.fsm.cli import main
from pairexec.fsm.model import TradeRecord
from pairexec.fsm.request import PairTradeRequest
from pairexec.persistence import TradeStore
from tests.support.paths import ROOT

TRADE = ["trade", "BTC/USDT", "buy", "1", "ETH/USDT", "sell"]

JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "list": list,
    "list of strings": list,
    "object": dict,
}


def documented() -> dict[str, dict[str, str]]:
    """docs/cli.md's JSON tables: heading (``pairexec trade --json``, ``a trade``...) -> key ->
    its type as written (``string or null``)."""
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, str]] = {}
    for part in section.split("\n#### ")[1:]:
        heading, body = part.split("\n", 1)
        rows = re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", body, flags=re.M)
        tables[heading.strip().strip("`")] = dict(rows)
    return tables


DOCS = documented()


def check(document: dict[str, Any], *tables: str) -> None:
    """``document`` has exactly the keys of ``tables`` together, each of a documented type."""
    keys: dict[str, str] = {}
    for table in tables:
        keys.update(DOCS[table])
    assert set(document) == set(keys), (
        f"undocumented: {set(document) - set(keys)}; missing: {set(keys) - set(document)}"
    )
    for key, value in document.items():
        types = keys[key].split(" or ")
        assert isinstance(value, tuple(JSON_TYPES[t] for t in types)), (key, value, keys[key])
        assert isinstance(value, bool) == ("boolean" in types), (key, value, keys[key])  # 1 ≠ true
        if "list of strings" in types:
            assert all(isinstance(item, str) for item in document[key]), (key, value)
    for key in ("created_at", "updated_at", "at"):
        if key in document:
            assert document[key].endswith("Z")
            at = datetime.fromisoformat(document[key].replace("Z", "+00:00"))
            assert at.utcoffset() == timezone.utc.utcoffset(None)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """The exit code and stdout, which must be one JSON document and nothing else."""
    code = main.main([*args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_the_docs_list_every_document():
    assert set(DOCS) == {
        "pairexec trade --json",
        "pairexec status --json",
        "a trade",
        "pairexec show --json",
        "an event",
        "an order",
        "pairexec recover --json",
        "a recovered trade",
    }
    assert all(DOCS.values())


def test_trade_status_show_recover_print_their_documented_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.chdir(tmp_path)
    code, rejected = run_json(capsys, *TRADE, "--chaos", "BTC/USDT:reject_funds=1")
    assert code == 1
    check(rejected, "pairexec trade --json")
    assert rejected["state"] == "FAILED" and rejected["path"][-1] == "FAILED"
    assert rejected["rejected_leg"] == "A" and "InsufficientFunds" in rejected["rejection"]

    code, done = run_json(capsys, *TRADE, "--hedge-ratio", "2", "--signal-id", "s1")
    assert code == 0
    check(done, "pairexec trade --json")
    assert done["ok"] and done["state"] == "DONE" and done["filled_y"] == 2.0
    assert done["path"] == ["PENDING", "LEG_A_SENT", "LEG_A_FILLED", "LEG_B_SENT", "DONE"]
    assert done["average_x"] == 60000 and done["rejection"] is None

    code, duplicate = run_json(capsys, *TRADE, "--signal-id", "s1")
    assert code == 1
    check(duplicate, "pairexec trade --json")
    assert duplicate["duplicate"] and duplicate["duplicate_reason"] == "signal_replayed"
    assert duplicate["trade_id"] == done["trade_id"] and duplicate["path"] == []
    # The text form says "duplicate" once: the engine's reason already starts with it.
    assert main.main([*TRADE, "--signal-id", "s1"]) == 1
    text = capsys.readouterr().out
    assert text.startswith("duplicate: signal 's1'") and "duplicate: duplicate" not in text

    code, status = run_json(capsys, "status")
    assert code == 0
    check(status, "pairexec status --json")
    assert [t["trade_id"] for t in status["trades"]] == [done["trade_id"], rejected["trade_id"]]
    assert status["counts"] == {"DONE": 1, "FAILED": 1} and status["total"] == 2
    for trade in status["trades"]:
        check(trade, "a trade")
    assert status["trades"][1]["rejection"] == rejected["rejection"]
    code, only_done = run_json(capsys, "status", "--state", "done", "--limit", "5")
    assert only_done["state"] == "DONE" and only_done["matching"] == 1

    code, show = run_json(capsys, "show", done["trade_id"][:8])
    assert code == 0
    check(show, "a trade", "pairexec show --json")
    assert show["fees"] == {} and show["hedge_ratio"] == 2
    assert [e["to_state"] for e in show["events"]][-1] == "DONE"
    for event in show["events"]:
        check(event, "an event")
    assert [o["leg"] for o in show["orders"]] == ["A", "B"]
    for order in show["orders"]:
        check(order, "an order")

    code, nothing = run_json(capsys, "recover")
    assert code == 0
    check(nothing, "pairexec recover --json")
    assert nothing["in_flight"] == 0 and nothing["trades"] == []

    async def leave_in_flight() -> str:  # PENDING: stored, never sent; recover fails it
        async with TradeStore(f"sqlite:///{tmp_path / 'pairexec.db'}") as store:
            made = await store.create_trade(PairTradeRequest("X/USDT", "buy", 1, "Y/USDT", "sell"))
        assert isinstance(made, TradeRecord)
        return made.id

    pending = asyncio.run(leave_in_flight())
    code, recovered = run_json(capsys, "recover")
    assert code == 0
    check(recovered, "pairexec recover --json")
    assert recovered["in_flight"] == recovered["recovered"] == 1
    [row] = recovered["trades"]
    check(row, "a recovered trade")
    assert row["trade_id"] == pending and (row["before"], row["after"]) == ("PENDING", "FAILED")


def test_a_refusal_prints_no_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.chdir(tmp_path)
    assert main.main(["status", "--json"]) == 2  # no database here
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("pairexec: error: no database")


def test_log_format_json_is_one_object_per_line_with_the_transitions(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "pairexec.fsm.cli", "--log-format", "json", *TRADE, "-v"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    trade_id = result.stdout.split()[1].rstrip(":")
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert lines and all({"at", "level", "logger", "message"} <= set(line) for line in lines)
    moves = [line for line in lines if "trade_id" in line]
    assert {line["trade_id"] for line in moves} == {trade_id}
    assert [line["state"] for line in moves][-1] == "DONE"
    assert moves[-1]["from_state"] == "LEG_B_SENT" and "hedging" in moves[-1]["cause"]
    assert moves[-1]["message"] == f"trade {trade_id} LEG_B_SENT -> DONE: {moves[-1]['cause']}"
