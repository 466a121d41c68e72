"""The README is what a newcomer pastes: keep its commands and example true."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from pairexec import TradeState, TradeStore
from tests.fake_binance import API_KEY, SECRET, FakeBinance, binance_client

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
    [example] = [b for b in _blocks("python") if "execute_pair_trade" in b]
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
        exec(compile(example, "README example", "exec"), {"__name__": "__main__"})

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
