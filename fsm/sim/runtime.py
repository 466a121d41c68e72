"""A deterministic asyncio runtime: virtual time, and every "blocking" call run inline.

Why: the engine's concurrency is real (several trades interleave on one event loop), but on a
normal loop the interleaving depends on when worker threads finish (the SQLite store runs its
connection in a thread, the paper exchange uses ``asyncio.to_thread``) and on the wall clock
(latencies, back-offs, settle polls). Then one seed does not give one run, and a failing seed
printed by CI would not reproduce. Here:

- ``asyncio.to_thread`` / ``run_in_executor`` run the function at once in the loop's thread;
- so does the SQLite store's own database thread (``persistence.db.sqlite_executors``);
- the clock is virtual: when nothing is ready, the loop jumps to the next timer instead of
  sleeping, so a 2 s settle timeout costs nothing and always polls the same number of times;
- a loop with nothing ready and no timer is a hang in real life: here it raises ``Hang``, as
  does a run that goes past its virtual time limit (a livelock, e.g. polling forever).

Only the order of callbacks decides the run, and that order is a function of the seed.

A database on a server (PostgreSQL) cannot run inline: its answers come over a socket. Calls
to it go one at a time, in the order they are made (``awaiting_server``), as SQLite's inline
transactions do; while one is awaited, a loop with nothing ready waits for the socket for real
and the virtual clock stands still. So the server takes no virtual time, no timer (a settle
timeout, a lease) fires early because of it, and no answer overtakes another: the run is one
per seed on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import selectors
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from pairexec.persistence.db import sqlite_executors

T = TypeVar("T")

SERVER_WAIT = 30.0
"""Real seconds a database server may take to answer a call before the run is a hang."""


class Hang(RuntimeError):
    """The run cannot finish: every task waits on nothing, or the virtual time limit passed."""


class _Clock:
    def __init__(self, limit: float) -> None:
        self.now = 0.0
        self.limit = limit
        self.awaiting = 0
        """Calls to a server in flight (``awaiting_server``): the clock waits for them."""
        self.server_turns: asyncio.Lock | None = None
        """One server call at a time (made in the loop, on first use)."""


class _InstantSelector(selectors.DefaultSelector):
    """Polls without blocking; a wait for a timer advances the virtual clock instead."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if self._clock.awaiting:
            ready = super().select(SERVER_WAIT)
            if not ready:
                raise Hang(f"a database server gave no answer in {SERVER_WAIT:g} real seconds")
            return ready
        if timeout is None:
            raise Hang("deadlock: every task waits and no timer is pending")
        self._clock.now += timeout
        if self._clock.now > self._clock.limit:
            raise Hang(f"still running after {self._clock.limit:g} virtual seconds")
        return ready


class _VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, limit: float) -> None:
        self._virtual = _Clock(limit)
        super().__init__(_InstantSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """``asyncio.to_thread`` without the thread: the function runs now, in the caller's thread.

    (asyncio insists on a ThreadPoolExecutor instance; no thread is ever started.)"""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered to the awaiting task, as a thread would
            future.set_exception(exc)
        return future


@asynccontextmanager
async def awaiting_server() -> AsyncIterator[None]:
    """Around an await whose answer comes from a server outside the process: on the virtual
    loop, it waits for the calls made before it, and time stands still until its answer
    comes (elsewhere this does nothing)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, _VirtualTimeLoop):
        yield
        return
    clock = loop._virtual
    if clock.server_turns is None:
        clock.server_turns = asyncio.Lock()
    async with clock.server_turns:
        clock.awaiting += 1
        try:
            yield
        finally:
            clock.awaiting -= 1


def run_deterministic(main: Callable[[], Coroutine[Any, Any, T]], time_limit: float = 3600.0) -> T:
    """Run ``main()`` to completion on a fresh virtual-time loop with inline I/O; ``Hang`` if
    it has not finished after ``time_limit`` virtual seconds."""
    loop = _VirtualTimeLoop(time_limit)
    loop.set_default_executor(_InlineExecutor())
    with sqlite_executors(_InlineExecutor):
        try:
            return loop.run_until_complete(main())
        finally:
            loop._virtual.limit = math.inf  # let the clean-up run whatever stopped the run
            try:
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Hang:  # a task that ignores cancellation: nothing more to do for it
                pass
            finally:
                loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
