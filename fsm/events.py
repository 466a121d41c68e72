"""Committed trade events for bots: ``ExecutionEngine.events()`` and ``subscribe()``.

The engine publishes a write's journal rows (``model.trade_events``) only once the store has
committed it, so a subscriber never hears of a step that did not happen. Publishing never
waits: each subscriber has a bounded queue of its own, and one that falls behind it is cut
off with an explicit ``EventsLost`` (after the events it was already given) rather than
slowing the trades or skipping events silently, after which it knows to re-read the store.

Only this engine's commits are published: another process's engine on the same database
publishes to its own subscribers (``ExecutionEngine.wait`` follows a trade wherever it is
driven).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pairexec.fsm.model import TradeEvent

log = logging.getLogger("pairexec.events")

DEFAULT_QUEUE = 10_000
"""Events a subscriber may have waiting before it is cut off (``EventsLost``)."""


class EventsLost(RuntimeError):
    """A subscriber fell ``maxsize`` events behind: the ``lost`` events committed after the
    ones it was given, until it read this, were dropped, and its stream ends. Subscribe
    again and read the store (``status``, ``TradeStore.load``) for what happened meanwhile."""

    def __init__(self, lost: int, maxsize: int) -> None:
        super().__init__(
            f"{lost} trade event(s) dropped: this subscriber fell {maxsize} events behind; "
            "subscribe again and read the trades from the store"
        )
        self.lost = lost
        self.maxsize = maxsize


class EventStream:
    """One subscriber's events, in the order they were committed: an async iterator that ends
    when the engine closes (or ``close()``), or raises ``EventsLost`` once it has fallen
    behind. Also an async context manager that closes it."""

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._hub = hub
        self._maxsize = maxsize
        self._queue: deque[TradeEvent] = deque()
        self._lost = 0
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def _offer(self, events: Iterable[TradeEvent]) -> None:
        """Queue ``events`` without waiting; past ``maxsize`` the stream is cut off."""
        for event in events:
            if self._lost or len(self._queue) >= self._maxsize:
                self._lost += 1  # nothing after a gap is queued: the gap ends the stream
            else:
                self._queue.append(event)
        self._wake()

    def _end(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Stop receiving; what is queued is still delivered, then the iteration ends."""
        self._hub.discard(self)
        self._end()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> TradeEvent:
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._lost:  # counted until now: what the subscriber missed, all told
                self.close()
                raise EventsLost(self._lost, self._maxsize)
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


Callback = Callable[[TradeEvent], Any]
"""A subscriber's callback: a plain function or a coroutine function, given each event."""


class Subscription:
    """A callback fed every event in order, from a task of its own: a coroutine callback is
    awaited there, a plain one runs in a thread of its own (so a slow or blocking one never
    holds up the event loop the trades run on). A callback that raises is logged and given
    the next event. Falling behind (``EventsLost``) is logged, or given to ``on_lost``, and
    the subscription carries on from the next event committed."""

    def __init__(
        self,
        hub: EventHub,
        callback: Callback,
        maxsize: int,
        on_lost: Callable[[EventsLost], Any] | None,
    ) -> None:
        self._hub = hub
        self._callback = callback
        self._maxsize = maxsize
        self._on_lost = on_lost
        self._closing = False
        self._is_async = inspect.iscoroutinefunction(callback)
        self._thread = None if self._is_async else ThreadPoolExecutor(1, "pairexec-events")
        self._stream = hub.stream(maxsize)
        self._task = asyncio.create_task(self._feed(), name="pairexec-subscription")

    async def _feed(self) -> None:
        try:
            while True:
                try:
                    async for event in self._stream:
                        await self._deliver(event)
                    return
                except EventsLost as lost:
                    self._report(lost)
                    if self._closing:
                        return
                    self._stream = self._hub.stream(self._maxsize)
        finally:
            if self._thread is not None:
                self._thread.shutdown(wait=False)

    async def _deliver(self, event: TradeEvent) -> None:
        try:
            if self._thread is None:
                await self._callback(event)
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._thread, self._callback, event)
        except Exception:
            log.exception("event subscriber %r failed on %s", self._callback, event)

    def _report(self, lost: EventsLost) -> None:
        if self._on_lost is None:
            log.warning("event subscriber %r: %s", self._callback, lost)
            return
        try:
            self._on_lost(lost)
        except Exception:
            log.exception("on_lost of event subscriber %r failed", self._callback)

    def close(self) -> None:
        """Stop after the events already queued are delivered."""
        self._closing = True
        self._stream.close()

    async def wait_closed(self) -> None:
        """Until every event queued for it has been delivered and it stopped."""
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)


class EventHub:
    """Hands each committed write's events to every subscriber, never waiting for one."""

    def __init__(self) -> None:
        self._streams: list[EventStream] = []
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def active(self) -> bool:
        """Whether anyone listens: events are built only then (they cost the hot path)."""
        return bool(self._streams)

    def stream(self, maxsize: int = DEFAULT_QUEUE) -> EventStream:
        stream = EventStream(self, maxsize)
        if self._closed:  # the engine closed: nothing more will come
            stream._end()
        else:
            self._streams.append(stream)
        return stream

    def subscribe(
        self,
        callback: Callback,
        maxsize: int = DEFAULT_QUEUE,
        on_lost: Callable[[EventsLost], Any] | None = None,
    ) -> Subscription:
        subscription = Subscription(self, callback, maxsize, on_lost)
        self._subscriptions.append(subscription)
        return subscription

    def discard(self, stream: EventStream) -> None:
        with contextlib.suppress(ValueError):
            self._streams.remove(stream)

    def publish(self, events: list[TradeEvent]) -> None:
        for stream in list(self._streams):
            stream._offer(events)

    async def close(self) -> None:
        """End every stream (after what it has queued) and let the callbacks catch up."""
        self._closed = True
        streams, self._streams = self._streams, []
        for stream in streams:
            stream._end()
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.wait_closed() for s in subscriptions))
