"""Alerts: run an operator's command when a trade needs attention (``--on-parked``).

A trade that ends PARKED waits for a human; one left unresolved waits for ``recover``. Either
can sit unnoticed in a database nobody looks at, so the CLI and the config file
(``[alerts] on_parked``) take a shell command run for each such trade, with what happened in
its environment. It runs beside the trading, bounded in time; a command that fails or hangs
is logged and never holds up a trade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from pairexec.fsm.request import TradeOutcome

log = logging.getLogger("pairexec.alerts")

ALERT_TIMEOUT = 30.0
"""Seconds an alert command may run before it is killed (and the kill logged)."""


def command_alert(
    command: str, timeout: float = ALERT_TIMEOUT
) -> Callable[[TradeOutcome], Awaitable[None]]:
    """An ``ExecutionEngine(on_attention=...)`` hook running ``command`` (through the shell)
    with ``PAIREXEC_TRADE_ID``, ``PAIREXEC_STATE`` and ``PAIREXEC_REASON`` set."""

    async def run(outcome: TradeOutcome) -> None:
        env = {
            **os.environ,
            "PAIREXEC_TRADE_ID": outcome.trade_id,
            "PAIREXEC_STATE": outcome.state.value,
            "PAIREXEC_REASON": outcome.reason,
        }
        try:
            process = await asyncio.create_subprocess_shell(
                command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group: a kill takes its children
            )
        except OSError as exc:
            log.error("alert for trade %s could not start %r: %s", outcome.trade_id, command, exc)
            return
        try:
            _, err = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            log.error(
                "alert for trade %s: %r ran over %gs and was killed",
                outcome.trade_id,
                command,
                timeout,
            )
            return
        if process.returncode != 0:
            detail = err.decode("utf-8", "replace").strip().splitlines()
            log.error(
                "alert for trade %s: %r exited %s%s",
                outcome.trade_id,
                command,
                process.returncode,
                f": {detail[-1]}" if detail else "",
            )

    return run
