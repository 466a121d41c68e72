"""The README is what a newcomer pastes: keep its commands and example true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    commands = [
        line
        for block in _blocks("bash")
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_library_example_compiles_and_uses_the_public_api():
    [example] = [b for b in _blocks("python") if "execute_pair_trade" in b]
    compile(example, "README example", "exec")
    for name in ("ExecutionEngine", "PairTradeRequest", "TradeStore", "EngineConfig"):
        assert name in example


def test_every_command_the_readme_shows_exists():
    from pairexec.fsm.cli.main import COMMANDS

    shown = {
        line.split()[1]
        for block in _blocks("text") + _blocks("bash")
        for line in block.splitlines()
        if line.strip().startswith("pairexec ")
    } | set(re.findall(r"&& pairexec (\w+)", README))
    assert {"trade", "recover", "status", "show", "db", "demo"} <= shown
    assert shown <= set(COMMANDS)
