"""``pairexec status``: the newest trades, and how many are in each state; ``--watch`` redraws
them until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Mapping, Sequence

from rich.console import RenderableType

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK, CliError
from pairexec.fsm.model import EventRecord, TradeRecord
from pairexec.fsm.states import TradeState
from pairexec.persistence import TradeStore

SHORTEST_ID = 8
"""A shortened trade id keeps at least this many characters: shorter ones would soon clash
as trades accumulate, and an id that changes length as they do is harder to recognise."""


async def run(args: argparse.Namespace) -> int:
    if args.watch and args.json:
        raise CliError("--watch redraws a table: it does not go with --json")
    async with context.opened(args.db) as store:
        if args.watch:
            await watch(store, args)
            return EXIT_OK
        if args.json:
            trades = await store.list_trades(args.state, limit=args.limit)
            counts = await store.count_by_state()
            events = await rejected_events(store, trades)
            render.print_json(render.status_json(args.db, args.state, trades, counts, events))
            return EXIT_OK
        view = await status_view(store, args)
    render.status(view, wide=args.wide)
    return EXIT_OK


async def status_view(store: TradeStore, args: argparse.Namespace) -> RenderableType:
    trades = await store.list_trades(args.state, limit=args.limit)
    counts = await store.count_by_state()
    events = await rejected_events(store, trades)
    reasons = {
        t.id: render.reason_text(t.reason, t.state, events[t.id]) for t in trades if t.id in events
    }
    ids = {} if args.wide else await short_ids(store, [t.id for t in trades])
    return render.status_view(
        args.db, args.state, trades, counts, reasons=reasons, ids=ids, wide=args.wide
    )


async def rejected_events(
    store: TradeStore, trades: Sequence[TradeRecord]
) -> Mapping[str, list[EventRecord]]:
    """The journal of each trade that did not end DONE: a rejection's words are there only
    (``render.rejection_of``); a DONE trade's journal is not read at all."""
    return {t.id: await store.events(t.id) for t in trades if t.state is not TradeState.DONE}


async def short_ids(store: TradeStore, trade_ids: Sequence[str]) -> dict[str, str]:
    """Each id's shortest beginning (``SHORTEST_ID`` at least) that no other trade in the
    database shares, so that ``pairexec show`` takes it as printed."""
    short: dict[str, str] = {}
    for trade_id in trade_ids:
        length = SHORTEST_ID
        while length < len(trade_id):
            if len(await store.trade_ids_starting_with(trade_id[:length], limit=2)) < 2:
                break
            length += 1
        short[trade_id] = trade_id[:length]
    return short


async def watch(store: TradeStore, args: argparse.Namespace) -> None:
    """Redraw every ``--interval`` seconds until Ctrl-C, which ends the watch (exit 0), not
    the program's way (exit 130 and "interrupted": nothing was in flight here)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        handled = True
    except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C is main's, exit 130
        handled = False
    try:
        first = await status_view(store, args)
        render.watching(args.db, args.interval)  # once Ctrl-C is ours to take
        with render.live(first) as redraw:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.interval)
                if not stop.is_set():
                    redraw(await status_view(store, args))
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
