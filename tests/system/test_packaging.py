"""pairexec installs one name: a bot's own ``migrations`` or ``persistence`` cannot collide.

The design keeps ``fsm/``, ``persistence/`` and ``migrations/`` at the repository root; they
install as ``pairexec.fsm``, ``pairexec.persistence`` and ``pairexec.migrations``. These tests
build the real wheel and run a bot from a directory that has packages of those names.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import pairexec
from tests.support.paths import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from this checkout (what ``pip install pairexec`` installs)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    [built] = out.glob("pairexec-*.whl")
    return built


def test_the_wheel_holds_only_pairexec_and_its_type_marker(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"pairexec"}
    assert "pairexec/py.typed" in names
    assert "pairexec/migrations/script.py.mako" in names
    assert any(n.startswith("pairexec/migrations/versions/0001") for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Version: {pairexec.__version__}" in text
    assert "License-Expression: MIT" in text


def test_the_wheel_holds_every_module_of_the_source_tree(wheel: Path) -> None:
    """A new subpackage left out of pyproject's list would install without its modules."""
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = {"fsm": "pairexec/fsm", "persistence": "pairexec/persistence"}
    folders |= {"migrations": "pairexec/migrations", "src/pairexec": "pairexec"}
    for folder, installed in folders.items():
        for path in (ROOT / folder).rglob("*.py"):
            assert f"{installed}/{path.relative_to(ROOT / folder).as_posix()}" in names


def test_pairexec_simulate_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """The simulator ships in the package: no checkout, no tests/ folder, on sys.path."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = (
        "import sys, pairexec; from pairexec.fsm.cli.main import main;"
        " print(pairexec.__file__, file=sys.stderr); sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "simulate", "--seed", "3", "--runs", "2", "--jobs", "1"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(unpacked) in result.stderr  # this pairexec, not the checkout's
    assert "2/2 0 failing" in result.stdout and "no invariant violated" in result.stdout


BOT = """
import asyncio

from pairexec import EngineConfig, ExecutionEngine, PairTradeRequest, TradeState
from pairexec.fsm.paper import PaperExchange

import migrations, persistence  # the bot's own packages, not pairexec's
assert migrations.MINE and persistence.MINE


async def main() -> None:
    async with ExecutionEngine(PaperExchange(), store="sqlite:///trades.db") as engine:
        outcome = await engine.execute_pair_trade(
            PairTradeRequest("BTC/USDT", "buy", 0.01, "ETH/USDT", "sell", hedge_ratio=10)
        )
    assert outcome.state is TradeState.DONE, outcome
    print("DONE", outcome.filled_x, outcome.filled_y)


asyncio.run(main())
"""


def test_a_bot_with_its_own_migrations_and_persistence_packages_runs_a_trade(
    tmp_path: Path,
) -> None:
    for own in ("migrations", "persistence"):  # as `alembic init migrations` would make
        (tmp_path / own).mkdir()
        (tmp_path / own / "__init__.py").write_text("MINE = True\n")
    (tmp_path / "bot.py").write_text(textwrap.dedent(BOT))
    result = subprocess.run(
        [sys.executable, "bot.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DONE", "0.01", "0.1"]


def test_python_dash_m_pairexec_is_the_cli_and_tells_its_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pairexec", "--version"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pairexec {pairexec.__version__}"
