"""``EngineConfig.freeze_startup_heap``: the first engine of a process to start leaves what is
alive then out of the garbage collector's full scans (which stopped the event loop 90-160 ms,
inside unhedged windows: bench/unhedged.py), once per process, and not if told not to."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

import pairexec.fsm.engine as engine_module
from pairexec.fsm.engine import ExecutionEngine
from tests.conftest import FAST
from tests.support.fake_exchange import FakeExchange


@pytest.fixture
def first_engine_of_the_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if no engine had started in this process (another test's may have)."""
    gc.unfreeze()
    monkeypatch.setattr(engine_module, "_heap_frozen", False)
    yield
    gc.unfreeze()


async def test_the_first_start_freezes_what_is_alive_then_and_later_ones_do_not(
    first_engine_of_the_process: None, tmp_path: Path
) -> None:
    assert gc.get_freeze_count() == 0
    async with ExecutionEngine(FakeExchange(), store=f"sqlite:///{tmp_path / 'a.db'}", config=FAST):
        assert gc.get_freeze_count() > 10_000  # the modules, ccxt's classes...
    gc.unfreeze()
    async with ExecutionEngine(FakeExchange(), store=f"sqlite:///{tmp_path / 'b.db'}", config=FAST):
        assert gc.get_freeze_count() == 0  # once per process


async def test_an_engine_told_not_to_freezes_nothing(
    first_engine_of_the_process: None, tmp_path: Path
) -> None:
    config = dataclasses.replace(FAST, freeze_startup_heap=False)
    async with ExecutionEngine(
        FakeExchange(), store=f"sqlite:///{tmp_path / 'a.db'}", config=config
    ):
        assert gc.get_freeze_count() == 0
