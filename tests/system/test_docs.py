"""The README and docs/ are what a newcomer pastes: every code example in them is executed.

Each fenced block of README.md and docs/*.md is one of:

- ``python``: executed as written, in an empty folder. The README's bot (it builds
  ``ccxt.binance``) runs against the fake Binance over HTTP; the others use the paper exchange.
- ``bash``: every line a ``pairexec`` command (or ``VAR=$(pairexec …)``, ``VAR=x pairexec …``,
  ``timeout … pairexec …``, or a file the commands read: ``cat > NAME <<'EOF'`` … ``EOF``):
  run by bash in an empty folder, so on the default SQLite database
  and the paper exchange there, each line's exit code checked: 0, or N where the line ends in
  ``# exit N``.
- ``mermaid``: exactly the diagram ``pairexec.fsm.diagram`` generates.
- ``toml``: a config file (or part of one) that ``pairexec.load_config`` reads without error.
- anything else must be in ``NOT_RUN`` with the reason; a block that is neither fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from pairexec import TradeState, TradeStore
from pairexec.fsm.diagram import mermaid
from tests.support.fake_binance import API_KEY, SECRET, FakeBinance, binance_client
from tests.support.paths import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    path: str
    """Relative to the repository root."""
    line: int
    """Of the opening fence."""
    language: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, flags=re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(str(path.relative_to(ROOT)), line, match[1], match[2]))
    return found


BLOCKS = _blocks()

NOT_RUN: dict[tuple[str, str], str] = {
    # (file, a text that only that block holds): why it is not run here
    (
        "README.md",
        "python -m pip install -e . && pairexec demo",
    ): "the set-up: it installs pairexec; .ci/run runs the test command verbatim "
    "(test_ci_runs_the_readme_test_command) and tests/system/test_demo.py runs `pairexec demo`",
    (
        "docs/operations.md",
        "pip install -e '.[postgres]'",
    ): "it installs a driver and needs a PostgreSQL server at db-host; "
    "tests/system/test_scale_out.py runs workers on PostgreSQL",
    (
        "docs/cli.md",
        "pairexec trade BTC/USDT buy 1.0 ETH/USDT sell --hedge-ratio 1.0 [--signal-id ID]",
    ): "a synopsis with placeholders; test_every_command_the_docs_show_exists checks it, and "
    "the blocks after it run each command",
}

_EXIT = re.compile(r"\s+#\s*exit (\d+)\s*$")
_PAIREXEC = r"pairexec\s"
_RUNNABLE = [
    re.compile(rf"^(?:[A-Z_]+=\S+\s+)*{_PAIREXEC}"),  # pairexec …, PAIREXEC_DB=x pairexec …
    re.compile(rf"^timeout(?:\s+--[\w-]+)*\s+\d+\s+{_PAIREXEC}"),  # a worker, for a while
    re.compile(rf"^[a-z_]+=\"?\$\({_PAIREXEC}.*\)\"?$"),  # trade_id=$(pairexec trade … | awk …)
    re.compile(r"^cat > [\w.-]+ <<'EOF'\n(?:.*\n)*EOF$"),  # a file written for the commands
]
_HEREDOC = re.compile(r"^cat > [\w.-]+ <<'EOF'$")


def _commands(block: Block) -> list[tuple[str, int]]:
    """The block's command lines and the exit code each must end with."""
    commands = []
    lines = iter(block.text.splitlines())
    for line in lines:
        if _HEREDOC.match(line):  # the file's lines, through EOF, are one command
            body = list(itertools.takewhile(lambda text: text != "EOF", lines))
            commands.append(("\n".join([line, *body, "EOF"]), 0))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expected = _EXIT.search(line)
        command = line[: expected.start()] if expected else line
        commands.append((command, int(expected[1]) if expected else 0))
    return commands


def _how(block: Block) -> str | None:
    """How the block is executed, or None if it cannot be."""
    if block.language == "mermaid":
        return "diagram"
    if block.language == "toml":
        return "config"
    if block.language == "python":
        return "bot" if "ccxt.binance(" in block.text else "python"
    if block.language == "bash":
        commands = _commands(block)
        if commands and all(any(r.match(c) for r in _RUNNABLE) for c, _ in commands):
            return "shell"
    return None


def _listed(block: Block) -> str | None:
    for (path, text), reason in NOT_RUN.items():
        if path == block.path and text in block.text:
            return reason
    return None


def _of(how: str) -> list[Any]:
    return [pytest.param(b, id=str(b)) for b in BLOCKS if _how(b) == how and not _listed(b)]


def test_every_block_is_run_or_listed_as_not_run():
    for block in BLOCKS:
        assert _how(block) or _listed(block), (
            f"{block}: a {block.language or 'plain'} block that is neither run nor in NOT_RUN "
            f"(write it as pairexec commands, or list it with the reason):\n{block.text}"
        )
        assert not (_how(block) == "shell" and _listed(block)), f"{block}: runnable, run it"
    for (path, text), _reason in NOT_RUN.items():
        matching = [b for b in BLOCKS if b.path == path and text in b.text]
        assert len(matching) == 1, f"NOT_RUN entry {path}: {text!r} matches {len(matching)}"


def test_the_docs_hold_examples_of_each_kind():
    kinds = {_how(b) for b in BLOCKS}
    assert {"bot", "python", "shell", "diagram"} <= kinds
    assert [str(b) for b in BLOCKS if _how(b) == "diagram"] == [
        str(b) for b in BLOCKS if b.path == "docs/state-machine.md" and b.language == "mermaid"
    ]


@pytest.mark.parametrize("block", _of("diagram"))
def test_diagram_is_the_generated_one(block: Block):
    assert block.text == mermaid() + "\n", (
        f"{block}: run python -m pairexec.fsm.diagram and paste its output there"
    )


def test_ci_runs_the_readme_test_command():
    [setup] = [b for b in BLOCKS if b.path == "README.md" and _listed(b)]
    [test_command] = [c for c, _ in _commands(setup) if "pytest" in c]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_every_command_the_docs_show_exists():
    from pairexec.fsm.cli.main import COMMANDS

    shown = {
        match
        for block in BLOCKS
        if block.language in ("bash", "text")
        for match in re.findall(r"(?:^|[\s($])pairexec (?:-\S+ \S+ )*([a-z]+)", block.text, re.M)
    }
    assert set(COMMANDS) <= shown, f"not shown: {set(COMMANDS) - shown}"
    assert shown <= set(COMMANDS), f"shown but no such command: {shown - set(COMMANDS)}"


def _script(block: Block) -> str:
    """The block as a bash script that stops at the first line with the wrong exit code."""
    lines = ["set -u -o pipefail"]
    for number, (command, expected) in enumerate(_commands(block), 1):
        lines += [
            f"echo {shlex.quote(f'$ {command}')}",
            command,
            "rc=$?",
            f'if [ "$rc" -ne {expected} ]; then echo "{block}: command {number} exited $rc, '
            f'expected {expected}" >&2; exit 99; fi',
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("block", _of("shell"))
def test_shell_example_runs(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIREXEC_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", _script(block)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{block}:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("block", _of("config"))
def test_config_example_is_a_valid_config_file(block: Block, tmp_path: Path) -> None:
    from pairexec.fsm.settings import load_config

    path = tmp_path / "pairexec.toml"
    path.write_text(block.text)
    load_config(path)  # a SettingsError names the key that is wrong


@pytest.mark.parametrize("block", _of("python"))
def test_python_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.text, str(block), "exec"), {"__name__": "__main__"})


@pytest.fixture
def binance_over_http() -> Iterator[FakeBinance]:
    """The fake Binance REST server on an event loop of its own (the example runs its own
    ``asyncio.run`` in this thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = asyncio.run_coroutine_threadsafe(FakeBinance().start(), loop).result(timeout=30)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def test_library_example_runs_as_written_against_binance_over_http(
    binance_over_http: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's bot, executed verbatim: only ccxt's binance class is pointed at the local
    fake server (the real class, its signing and its HTTP), and the keys come from the
    environment as the example says."""
    [example] = [b for b in BLOCKS if _how(b) == "bot"]
    assert example.path == "README.md"
    fake = binance_over_http

    real_binance = ccxt_async.binance

    def binance(config: dict[str, Any]) -> ccxt_async.binance:
        with monkeypatch.context() as inside:  # binance_client builds the real class
            inside.setattr(ccxt_async, "binance", real_binance)
            return binance_client(fake.url, api_key=config["apiKey"], secret=config["secret"])

    monkeypatch.setattr(ccxt_async, "binance", binance)
    monkeypatch.setenv("PAIREXEC_API_KEY", API_KEY)
    monkeypatch.setenv("PAIREXEC_API_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)  # the example's store is sqlite:///trades.db
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(example.text, str(example), "exec"), {"__name__": "__main__"})

    assert "DONE" in printed.getvalue()
    creates = [r for r in fake.requests if r.kind == "create"]
    assert [(r.symbol, r.params["side"]) for r in creates] == [
        ("BTC/USDT", "BUY"),
        ("ETH/USDT", "SELL"),
    ]

    async def stored() -> list[Any]:
        async with TradeStore(f"sqlite:///{tmp_path / 'trades.db'}") as store:
            return await store.list_trades()

    [trade] = asyncio.run(stored())
    assert trade.state is TradeState.DONE
    assert trade.request.signal_id == "strategy-7:2026-11-25T10:00"
    assert [o.filled for o in trade.orders] == [0.01, 0.15]


def test_every_state_is_described_in_the_state_machine_doc():
    text = (ROOT / "docs" / "state-machine.md").read_text()
    for state in TradeState:
        assert f"| `{state.value}` |" in text, f"docs/state-machine.md does not describe {state}"
