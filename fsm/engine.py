"""The execution engine: drives each trade, one step at a time, from persisted facts.

A step is: ``decide`` (pure) picks an action from the trade as stored; the engine persists the
intent, does the exchange I/O, and persists what it learned. What ``decide`` then makes of that
without I/O (leg A classified, the trade done, the next order's intent) goes into the same
commit. Nothing is held only in memory between steps, so ``recover()`` after a crash is the
same loop started from the database.

Exactly one driver runs per trade in a process (``_drivers``); a second request to drive the
same trade joins the first instead of racing it. Across processes, the store's compare-and-set
on the trade state makes a second driver fail with StaleTrade before it can send anything.
A bot cancelling ``execute_pair_trade`` (e.g. ``asyncio.wait_for``) does not interrupt the
trade: the driver is shielded and finishes; ``close()`` waits for it. ``submit`` returns as
soon as the trade is stored (its id is the bot's handle), ``wait`` follows it to its end,
here or in another process, and ``events()`` streams every committed step.

Venues: the engine is given one exchange, or a mapping of venue names to exchanges for trades
whose legs go to two (``PairTradeRequest.venue_x`` / ``venue_y``). Each venue has its own
gateway (its client-id rules, markets, position flags, errors) and every order is sent, looked
up and cancelled on its own venue only (``OrderFacts.venue``). Markets and prices are keyed
``symbol@venue`` then (``market_key``): the same symbol may trade under other rules there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from pairexec.fsm import crashpoints, steps
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.decide import (
    Action,
    GiveUp,
    Lookup,
    Move,
    Quote,
    Resend,
    Settle,
    Submit,
    decide,
)
from pairexec.fsm.events import DEFAULT_QUEUE, EventHub, EventsLost, EventStream, Subscription
from pairexec.fsm.exits import check_exit, exit_request
from pairexec.fsm.machine import is_terminal
from pairexec.fsm.markets import ANY_AMOUNT, MarketRules
from pairexec.fsm.metrics import Metrics
from pairexec.fsm.model import (
    Change,
    Duplicate,
    EventRecord,
    Lease,
    OrderFacts,
    OrderStatus,
    TradeEvent,
    TradeRecord,
    after,
    average_price,
    creation_journal,
    fee_totals,
    journal,
    net,
    same_facts,
    trade_events,
    utc_now,
)
from pairexec.fsm.owners import is_dead_locally, new_owner_id
from pairexec.fsm.ports import StaleTrade, Store, StoreError
from pairexec.fsm.request import (
    InvalidRequest,
    PairTradeRequest,
    TradeOutcome,
    market_key,
    split_market,
    venue_name,
)
from pairexec.fsm.states import TradeState
from pairexec.fsm.venues.ccxt_ids import UnsupportedExchange
from pairexec.fsm.venues.errors import ErrorMeaning, describe
from pairexec.fsm.venues.gateway import (
    Answered,
    CallResult,
    ExchangeGateway,
    Failed,
    NotBelieved,
)
from pairexec.fsm.venues.prices import PriceBook

log = logging.getLogger("pairexec.engine")


class EngineError(RuntimeError):
    """The engine cannot start or go on (exchange unreachable at start-up...)."""


class TradeInterrupted(StoreError):
    """The database failed while a stored trade was being driven: orders of it may be on the
    exchange (unlike a StoreError before the trade was stored, when nothing was sent). No more
    is sent for it here; ``recover()`` finishes it once the database answers again. The
    driver's exception stays the cause, as for any StoreError."""

    def __init__(self, trade_id: str, failure: StoreError) -> None:
        super().__init__(f"trade {trade_id} interrupted, orders may be on the exchange: {failure}")
        self.trade_id = trade_id


class _StopDriving(Exception):
    """The trade cannot safely advance now; it stays non-terminal for ``recover()``."""


class ExecutionEngine:
    def __init__(
        self,
        exchange: Any | Mapping[str, Any],
        store: Store | str | None = None,
        config: EngineConfig | None = None,
        *,
        on_attention: Callable[[TradeOutcome], Any] | None = None,
    ) -> None:
        """``exchange``: one ccxt-style exchange, or a mapping of venue names to exchanges
        (``{"binance": bn, "okx": ok}``), whose names requests then give per leg.

        ``on_attention(outcome)`` is called when a drive ends with the trade PARKED (for a
        human) or unresolved (for ``recover``): an alert. It runs on the event loop and must
        not block (a coroutine function is run as a task, which ``close()`` awaits); what it
        raises is logged, never the trade's problem."""
        self.config = config or EngineConfig()
        self.metrics = Metrics()
        """Counters and timings since this engine was made (``fsm.metrics``)."""
        self._on_attention = on_attention
        self._alerts: set[asyncio.Task[Any]] = set()
        self._answered_a: dict[str, float] = {}
        """Per trade: when leg A's last answer came (``time.monotonic``), for the unhedged
        window metric; dropped at leg B's first send or when the drive ends."""
        self.gateways: dict[str | None, ExchangeGateway] = {}
        """Each venue's gateway by name; with a single exchange, its one gateway under None."""
        if isinstance(exchange, Mapping):
            if not exchange:
                raise EngineError("no venues: give one exchange or a mapping of one or more")
            for name, venue in exchange.items():
                try:
                    self.gateways[venue_name("venue", name)] = ExchangeGateway(venue, self.config)
                except InvalidRequest as exc:
                    raise EngineError(f"exchange mapping: {exc}") from None
        else:
            self.gateways[None] = ExchangeGateway(exchange, self.config)
        self.store: Store = (
            _sql_store(store or "sqlite+aiosqlite:///:memory:")
            if store is None or isinstance(store, str)
            else store
        )
        self._owns_store = False
        self._drivers: dict[str, asyncio.Task[TradeOutcome]] = {}
        self._executions: set[asyncio.Task[TradeOutcome]] = set()
        self._markets: dict[str, MarketRules] = {}
        """Every venue's market rules, keyed as ``decide`` reads them (``market_key``)."""
        self._listed: set[str | None] = set()
        """The venues whose markets were listed: a symbol missing there is not a market."""
        self._started = False
        self.owner = new_owner_id()
        """This engine's name in trade leases (host:pid:nonce)."""
        self._held: set[str] = set()
        """Trades this engine has created or claimed and not yet let go: their leases are
        renewed by the heartbeat, even while they wait for a driver."""
        self._heartbeat: asyncio.Task[None] | None = None
        self._events = EventHub()
        self._ended: OrderedDict[str, TradeOutcome] = OrderedDict()
        """The outcomes of the last ``_ENDED_KEPT`` drives that ended here, for ``wait``: a
        drive that stopped unresolved says why only in its outcome."""
        self._prices = PriceBook(self._price)
        self._quotes: dict[str, dict[tuple[str, str], float | None]] = {}
        """Per trade: the quotes fetched for its next limit order (``decide``'s ``quotes``),
        dropped once an order is sent: each limit is priced from a quote of its own."""
        """Recent prices of markets with a minimum order value (fetched while leg A runs),
        keyed like ``_markets``."""

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def venue_names(self) -> tuple[str, ...]:
        """The venues requests may name; empty with a single exchange."""
        return tuple(name for name in self.gateways if name is not None)

    async def start(self) -> None:
        if self._events.closed:  # started again after a close: subscribe anew
            self._events = EventHub()
        venues = list(self.gateways)
        loaded = await asyncio.gather(
            *(self.gateways[v].market_rules() for v in venues), return_exceptions=True
        )
        markets: dict[str, MarketRules] = {}
        for venue, rules in zip(venues, loaded, strict=True):
            where = "" if venue is None else f"venue {venue!r}: "
            if isinstance(rules, UnsupportedExchange):
                raise EngineError(f"{where}{rules}") from rules
            if isinstance(rules, BaseException):
                raise EngineError(
                    f"{where}cannot load the exchange's markets: {describe(rules)}"
                ) from rules
            if rules:
                self._listed.add(venue)
            markets.update((market_key(symbol, venue), r) for symbol, r in rules.items())
        self._markets = markets
        if not self.store.is_open:
            await self.store.open()
            self._owns_store = True
        self._started = True
        if self.config.freeze_startup_heap:
            _freeze_startup_heap()
        self._heartbeat = asyncio.create_task(self._renew_leases(), name="pairexec-leases")
        if not self.store.crash_safe:
            log.warning("in-memory trade store: trades will not survive a crash or restart")

    async def close(self) -> None:
        """Let running trades finish their current drive, then release the store if ours."""
        while self._executions or self._drivers:
            await asyncio.gather(*self._executions, *self._drivers.values(), return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._alerts:  # an alert still running: give it its time, not forever
            await asyncio.wait(self._alerts, timeout=ALERT_GRACE)
        await self._events.close()
        await self._prices.close()
        try:
            if self.store.is_open:
                await self.store.release(self.owner)  # what we leave unfinished, others may take
        except StoreError as exc:  # the leases then run out by themselves: closing goes on
            log.warning("could not release this engine's leases: %s", exc)
        finally:
            if self._owns_store:
                self._owns_store = False
                await self.store.close()
            self._started = False

    async def __aenter__(self) -> ExecutionEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- public API ----------------------------------------------------------------------

    async def execute_pair_trade(self, request: PairTradeRequest) -> TradeOutcome:
        """Execute one pair trade; returns when it is terminal or cannot safely go on
        (``submit`` then ``wait``)."""
        submitted = await self.submit(request)
        if submitted.duplicate:
            return submitted
        return await self.wait(submitted.trade_id)

    async def submit(self, request: PairTradeRequest) -> TradeOutcome:
        """Store the trade and return at once, its ``trade_id`` set and its state not yet
        terminal (or the duplicate it was refused as, nothing sent); the engine drives it in
        the background (``wait`` for its end, ``events()`` for its steps). InvalidRequest
        before anything is stored. A bot that stops waiting for ``submit`` itself (a
        cancellation) does not stop the trade: find it by its signal id
        (``TradeStore.find_by_signal``)."""
        if not self._started:
            await self.start()
        request = self._validated(request)  # InvalidRequest before anything is stored or sent
        if request.closes is not None:
            check_exit(request, await self._trade(request.closes))
        for venue, symbol in ((request.venue_x, request.pair_x), (request.venue_y, request.pair_y)):
            mismatch = await self.gateways[venue].position_mode_mismatch((symbol,))
            if mismatch is not None:  # contract orders would carry the wrong position flags
                raise InvalidRequest(mismatch if venue is None else f"venue {venue!r}: {mismatch}")
        # Shielded from the caller's cancellation from the first write on: a trade that is
        # stored is always driven, even if the bot stopped waiting for it.
        stored: asyncio.Future[TradeOutcome] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._execute(request, stored))
        self._executions.add(task)
        task.add_done_callback(self._executions.discard)
        task.add_done_callback(_retrieve)
        return await asyncio.shield(stored)

    async def close_pair_trade(self, trade_id: str) -> TradeOutcome:
        """Close a DONE trade: an exit trade on its markets with both sides reversed, sized
        from what its legs hold now (``exits.exit_request``), executed like any trade and
        linked to it (``TradeOutcome.closes``). At most one exit per trade: a second close is
        a duplicate (``DuplicateReason.ALREADY_CLOSED``), nothing sent, unless the first
        ended ABORTED or FAILED. InvalidRequest for an unknown trade, one that is not DONE,
        or an exit."""
        if not self._started:
            await self.start()
        entry = await self._trade(trade_id)
        rules = self._markets.get(entry.request.market_x, ANY_AMOUNT)
        request = exit_request(entry, rules, self._markets.get(entry.request.market_y, ANY_AMOUNT))
        return await self.execute_pair_trade(request)

    async def _trade(self, trade_id: str) -> TradeRecord:
        """The stored trade; InvalidRequest if there is none (a bot's id, not a lost row)."""
        try:
            return await self.store.load(trade_id)
        except KeyError:
            raise InvalidRequest(f"no trade {trade_id!r} in the store") from None

    async def wait(self, trade_id: str, *, poll_interval: float = 0.5) -> TradeOutcome:
        """The trade's outcome once it is terminal, or once it stopped unresolved (its drive
        ended without a terminal state and no live process holds it: ``recover`` will take
        it). A trade another process drives is followed in the database every
        ``poll_interval`` seconds. InvalidRequest for a trade id the store does not have."""
        if not self._started:
            await self.start()
        while True:
            driver = self._drivers.get(trade_id)
            if driver is not None:
                return await asyncio.shield(driver)
            record = await self._trade(trade_id)
            ended = self._ended.get(trade_id)
            if ended is not None and ended.state is record.state:
                return ended
            if is_terminal(record.state):
                return _outcome(record, record.reason)
            if not await self._held_elsewhere(trade_id):
                # Read again: its driver may have finished it (and let go of its lease)
                # between the two reads; only a trade still not terminal is unresolved.
                record = await self._trade(trade_id)
                return _outcome(record, record.reason)
            await asyncio.sleep(poll_interval)

    async def _held_elsewhere(self, trade_id: str) -> bool:
        """Whether another live driver holds the trade's lease (its drive goes on there)."""
        if trade_id in self._drivers:
            return True
        for holder in await self.store.lease_holders(trade_id):
            if holder.owner == self.owner or is_dead_locally(holder.owner):
                continue
            if holder.until is None or holder.until > utc_now():
                return True
        return False

    def events(self, maxsize: int = DEFAULT_QUEUE) -> EventStream:
        """Every committed step of every trade this engine drives from now on (no history),
        each trade's in order: ``async for event in engine.events(): ...``. Trading never
        waits for the stream: one that falls ``maxsize`` events behind raises ``EventsLost``
        (after the events it was given) and ends; so does every stream, cleanly, when the
        engine closes."""
        return self._events.stream(maxsize)

    def subscribe(
        self,
        callback: Callable[[TradeEvent], Any],
        *,
        maxsize: int = DEFAULT_QUEUE,
        on_lost: Callable[[EventsLost], Any] | None = None,
    ) -> Subscription:
        """Call ``callback`` (a function, run in a thread of its own, or a coroutine
        function) with each event, in order, from now until the engine closes or the
        subscription's ``close()``; see ``events``. Call it from the event loop."""
        return self._events.subscribe(callback, maxsize, on_lost)

    def _validated(self, request: PairTradeRequest) -> PairTradeRequest:
        """The request's own checks, then the venues': known venues and symbols, tradable
        amounts."""
        request = request.validated()
        self._check_venues(request)
        legs = (
            ("pair_x", request.venue_x, request.pair_x, request.market_x),
            ("pair_y", request.venue_y, request.pair_y, request.market_y),
        )
        for field, venue, symbol, market in legs:
            if venue not in self._listed:
                continue
            if market not in self._markets:
                where = "this exchange" if venue is None else f"venue {venue!r}"
                raise InvalidRequest(f"{field} {symbol!r} is not a market on {where}")
            unsupported = self._markets[market].unsupported()
            if unsupported is not None:  # an inverse contract: never a silent mis-size
                raise InvalidRequest(f"{field} {market!r}: {unsupported}")
        self._check_market_buys(request)
        rules_x = self._markets.get(request.market_x, ANY_AMOUNT)
        rules_y = self._markets.get(request.market_y, ANY_AMOUNT)
        if rules_x.sendable(request.amount_x) is None:
            raise InvalidRequest(
                f"amount_x {request.amount_x:g} is below {request.pair_x}'s minimum order "
                f"({rules_x.min_amount:g}, step {rules_x.amount_step or 0:g})"
            )
        hedge = request.amount_x * request.hedge_ratio
        if rules_y.sendable(hedge) is None:
            raise InvalidRequest(
                f"hedge_ratio {request.hedge_ratio:g} gives a leg B of {hedge:g} "
                f"{request.market_y}, below its minimum order ({rules_y.min_amount:g})"
            )
        # The venue would refuse such a leg B only after leg A was bought: an unwind would then
        # pay the fees and the spread twice for nothing. Judged at a price fetched recently
        # (by an earlier trade); without one the venue has the last word, as before.
        price = self._prices.recent(request.market_y)
        if price is not None and rules_y.sendable(hedge, price) is None:
            raise InvalidRequest(
                f"hedge_ratio {request.hedge_ratio:g} gives a leg B of {hedge:g} {request.market_y}"
                f", worth {hedge * price:g} at its recent price {price:g}: below the minimum "
                f"order value ({rules_y.min_cost:g}); nothing sent"
            )
        return request

    def _check_venues(self, request: PairTradeRequest) -> None:
        """With one exchange a request names no venue; with a mapping, one of its names per
        leg (a missing one is never guessed: it decides where money goes)."""
        named = self.venue_names
        for field, venue in (("venue_x", request.venue_x), ("venue_y", request.venue_y)):
            if not named and venue is not None:
                raise InvalidRequest(
                    f"{field} {venue!r} given, but the engine has a single exchange (no venue "
                    "names): leave it None, or give the engine a mapping of venues"
                )
            if named and venue is None:
                raise InvalidRequest(
                    f"{field} missing: the engine has named venues ({', '.join(named)}); "
                    "name one per leg"
                )
            if named and venue not in self.gateways:
                raise InvalidRequest(
                    f"{field} {venue!r} is not one of the engine's venues ({', '.join(named)})"
                )

    def _check_market_buys(self, request: PairTradeRequest) -> None:
        """Refuse a request whose legs would need a market buy where the venue cannot buy an
        amount at market (``ExchangeGateway.market_buy_problem``): a limit IOC leg is sized
        in the base currency everywhere."""
        config, x, y = self.config, request.venue_x, request.venue_y
        market_buys = (  # (the policy's field, venue, symbol) of each leg that buys at market
            ("leg_a", x, request.pair_x, request.side_x == "buy" and request.price_x is None),
            ("leg_b", y, request.pair_y, request.side_y == "buy"),
            ("unwind", x, request.pair_x, request.side_x == "sell"),
        )
        for leg, venue, symbol, buys in market_buys:
            policy = getattr(config, leg)
            at_market = not policy.limited or (leg == "leg_b" and policy.after_cap == "market")
            problem = self.gateways[venue].market_buy_problem(symbol) if buys else None
            if at_market and problem is not None:
                where = "the exchange" if venue is None else f"venue {venue!r}"
                raise InvalidRequest(
                    f"{where} {problem}; this request's {leg} would buy at market: give "
                    f"EngineConfig.{leg} an OrderPolicy('limit_ioc', ...) (and no after_cap "
                    "'market'), whose limit order is sized in the base currency"
                )

    def _missing_venue(self, record: TradeRecord) -> str | None:
        """Why the trade cannot be driven here (a venue of it that this engine was not given),
        or None. Nothing may be sent for it, nor looked up elsewhere: its orders exist on
        their own venue only."""
        for venue in record.venues:
            if venue in self.gateways:
                continue
            if venue is None:
                return (
                    f"not resumed: trade {record.id} was made with a single exchange (no venue "
                    f"names), and this engine has venues ({', '.join(self.venue_names)}); "
                    "recover it with an engine given its one exchange"
                )
            given = ", ".join(self.venue_names) or "a single exchange without names"
            return (
                f"not resumed: venue {venue!r} of trade {record.id} was not given to this "
                f"engine ({given}); recover it with an engine that has {venue!r}"
            )
        return None

    async def _price(self, market: str) -> float | None:
        """A recent price of ``market`` (``symbol@venue``) from its own venue."""
        symbol, venue = split_market(market) if self.venue_names else (market, None)
        return await self.gateways[venue].price(symbol)

    async def _execute(
        self, request: PairTradeRequest, stored: asyncio.Future[TradeOutcome]
    ) -> TradeOutcome:
        """Store the trade, tell ``submit`` (``stored``), then drive it."""
        first: list[Change | None] = []

        def first_step(pending: TradeRecord) -> Change | None:
            first.append(self._first_step(pending))
            return first[-1]

        try:
            started = time.perf_counter()
            created = await self.store.create_trade(request, self._lease(), first=first_step)
            self.metrics.store_commit.observe(time.perf_counter() - started)
        except BaseException as exc:
            if not stored.done():
                stored.set_exception(exc)
            raise
        if isinstance(created, Duplicate):
            log.info("duplicate signal rejected: %s", created.why)
            existing = created.existing
            outcome = TradeOutcome(
                trade_id=existing.id if existing else "",
                state=existing.state if existing else TradeState.FAILED,
                reason=f"duplicate: {created.why}; nothing sent",
                duplicate=True,
                duplicate_reason=created.reason,
                closes=request.closes,
            )
            stored.set_result(outcome)
            return outcome
        self._held.add(created.id)
        self.metrics.trades_started += 1
        self._committed(creation_journal(created, first[-1] if first else None), created)
        # This task (shielded by submit) is the new trade's driver: a recover() or a wait()
        # meanwhile joins it instead of starting a second one.
        this = asyncio.current_task()
        assert this is not None  # submit runs _execute as a task of its own
        self._drives(created.id, this)
        stored.set_result(_outcome(created, created.reason))
        return await self._run(created.id, False, created)

    def _first_step(self, pending: TradeRecord) -> Change | None:
        """A new trade's first step, written with the trade: leg A's intent, when ``decide``
        needs no price for it (a market order, the request's own limit). A leg A priced from a
        quote is decided once the trade is stored: None, the trade stays PENDING till then."""
        action = decide(pending, self.config, markets=self._markets)
        return steps.intent(pending, action) if isinstance(action, Submit) else None

    async def recover(
        self, progress: Callable[[int, int], None] | None = None
    ) -> list[TradeOutcome]:
        """Claim every non-terminal trade no live process holds, and drive each to a terminal
        state (if it safely can). Trades leased by live processes are left to them; a trade
        whose owner died on this host is taken over at once, elsewhere when its lease expires.

        ``progress(finished, claimed)`` is called once the trades are claimed and again as
        each one's drive ends (a recovery of thousands of trades takes a while).
        """
        if not self._started:
            await self.start()
        dead = {h.owner for h in await self.store.lease_holders() if is_dead_locally(h.owner)}
        trade_ids = await self.store.claim(self._lease(), dead_owners=sorted(dead))
        self._held.update(trade_ids)
        limit = asyncio.Semaphore(self.config.recover_concurrency)
        finished = 0
        if progress is not None:
            progress(finished, len(trade_ids))

        async def one(trade_id: str) -> TradeOutcome:
            nonlocal finished
            async with limit:
                outcome = await self._drive(trade_id, resuming=True)
            finished += 1
            if progress is not None:
                progress(finished, len(trade_ids))
            return outcome

        return list(await asyncio.gather(*(one(t) for t in trade_ids)))

    # --- leases --------------------------------------------------------------------------

    def _lease(self) -> Lease:
        """A lease counted by the database's clock from when it is written: this machine's
        clock, however wrong, cannot make another worker's lease look expired."""
        return Lease(self.owner, seconds=self.config.lease_seconds)

    def _lease_lapsing(self, trade_id: str) -> bool:
        """True once this engine's lease on the trade may have run out, or was taken: then
        another process may be driving it, and nothing may be sent for it from here. The
        store knows when the lease was last written (its transaction's start, by the event
        loop's monotonic clock); the last third of the lease is kept as a margin, for the send
        to reach the exchange and for clocks that tick at slightly different rates."""
        margin = self.config.lease_seconds / 3
        now = asyncio.get_running_loop().time()
        return now >= self.store.lease_deadline(self.owner, trade_id) - margin

    async def _renew_leases(self) -> None:
        """Keep our trades' leases alive between steps (long lookups, backoffs, queues).

        A renewal that fails is only logged here: the leases' deadlines then stop moving, and
        ``_send`` refuses to send once one has passed. A trade the renewal no longer matches
        (another owner took it) is lost at once."""
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            held = sorted(self._held)
            try:
                kept = await self.store.renew(self._lease(), held)
            except Exception:
                log.warning("lease renewal failed", exc_info=True)
                continue
            for trade_id in held:
                if trade_id not in kept and trade_id in self._held:
                    log.warning("trade %s: its lease was taken by another owner", trade_id)

    # --- driving -------------------------------------------------------------------------

    async def _drive(self, trade_id: str, *, resuming: bool) -> TradeOutcome:
        task = self._drivers.get(trade_id)
        if task is None:
            task = asyncio.create_task(self._run(trade_id, resuming), name=f"trade-{trade_id}")
            self._drives(trade_id, task)
        return await asyncio.shield(task)

    def _drives(self, trade_id: str, task: asyncio.Task[TradeOutcome]) -> None:
        """Make ``task`` the one driver of ``trade_id`` in this process until it ends."""
        self._drivers[trade_id] = task
        task.add_done_callback(lambda t: self._drive_ended(trade_id, t))

    def _drive_ended(self, trade_id: str, task: asyncio.Task[TradeOutcome]) -> None:
        self._drivers.pop(trade_id, None)
        self._answered_a.pop(trade_id, None)
        if task.cancelled() or task.exception() is not None:
            self._ended.pop(trade_id, None)
            return
        outcome = task.result()
        self.metrics.trades_ended[outcome.state] += 1
        if outcome.state is TradeState.PARKED or not is_terminal(outcome.state):
            self._alert(outcome)
        self._ended[trade_id] = outcome
        self._ended.move_to_end(trade_id)
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    async def _run(
        self, trade_id: str, resuming: bool, created: TradeRecord | None = None
    ) -> TradeOutcome:
        try:
            return await self._run_held(trade_id, resuming, created)
        except TradeInterrupted:
            raise
        except StoreError as exc:
            raise TradeInterrupted(trade_id, exc) from (exc.__cause__ or exc)
        finally:
            self._held.discard(trade_id)
            self._quotes.pop(trade_id, None)

    async def _run_held(
        self, trade_id: str, resuming: bool, created: TradeRecord | None
    ) -> TradeOutcome:
        """Drive the trade to a terminal state; ``created``: a trade just stored with its leg
        A intent, which is sent first (the only intent ``decide`` would not send: it cannot
        tell it from one a crash left unsent, and those are only looked up)."""
        record = created or await self.store.load(trade_id)
        missing = self._missing_venue(record)
        if missing is not None:  # left as it is (non-terminal, nothing sent) for an engine that can
            if record.reason != missing:  # said once, for `pairexec status`, not every recover
                change = Change(missing)
                updated = await self.store.apply(record, change, self._lease())
                self._committed(
                    journal(record.id, record.state, change, updated.updated_at), updated
                )
            await self.store.release(self.owner, trade_id)
            return _outcome(await self.store.load(trade_id), missing)
        markets = self._markets_to_price(record)
        if record.filled(Leg.A) <= 0:  # leg A's own fill will price its market
            markets = [m for m in markets if m != record.request.market_x]
        self._prices.refresh(markets)  # while leg A is on its way
        try:
            if created is not None and created.orders:  # leg A's intent, written with it
                record = await self._send(record, record.orders[-1])
            while not is_terminal(record.state):
                action = await self._decide(record, resuming=resuming)
                if action is None:  # pragma: no cover - decide returns None only when terminal
                    break
                record = await self._step(record, action)
        except _StopDriving as stop:
            await self.store.release(self.owner, trade_id)  # recover() may take it at once
            record = await self.store.load(trade_id)
            return _outcome(record, str(stop))
        except StaleTrade as stale:
            record = await self.store.load(trade_id)
            log.warning("trade %s moved by another driver: %s", trade_id, stale)
            return _outcome(record, f"another driver moved this trade ({stale})")
        return _outcome(record, record.reason)

    async def _step(self, record: TradeRecord, action: object) -> TradeRecord:
        if isinstance(action, Submit):
            fact = steps.submitted(record, action)
            record = await self._apply(record, fact)
            assert fact.new_order is not None
            return await self._send(record, _order(record, fact.new_order.client_order_id))
        if isinstance(action, Resend):
            self.metrics.resends += 1
            record = await self._apply(record, steps.resent(action))
            return await self._send(record, _order(record, action.order.client_order_id))
        if isinstance(action, Lookup):
            return await self._lookup(record, action.order)
        if isinstance(action, Quote):
            await self._quote(record, action)
            return record
        if isinstance(action, Settle):
            return await self._settle(record, action.order)
        if isinstance(action, Move):
            return await self._apply(record, steps.moved(action))
        if isinstance(action, GiveUp):
            return await self._apply(record, steps.given_up(action))
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    async def _apply(self, record: TradeRecord, fact: steps.Fact) -> TradeRecord:
        """Write one fact with the moves that follow from it; if the last of them submits an
        order, that order is sent next (its intent is committed with the fact)."""
        prices = await self._prices_for(after(record, fact.change(record.state)))
        quotes = self._quotes.get(record.id)
        change = steps.folded(
            record,
            fact,
            lambda r: decide(r, self.config, markets=self._markets, prices=prices, quotes=quotes),
            keep_parked_pair=self.config.block_pair_while_parked,
        )
        started = time.perf_counter()
        try:
            updated = await self.store.apply(record, change, self._lease())
        except StaleTrade:
            raise
        except StoreError as failed:  # did it commit? only the database can say
            updated = await self._landed(record, change, failed)
        self.metrics.store_commit.observe(time.perf_counter() - started)
        self._committed(journal(record.id, record.state, change, updated.updated_at), updated)
        submitted = change.then[-1].new_order if change.then else None
        if submitted is not None:
            return await self._send(updated, _order(updated, submitted.client_order_id))
        return updated

    async def _landed(self, record: TradeRecord, change: Change, failed: StoreError) -> TradeRecord:
        """The trade as stored after a write that reported a failure, if the database shows
        the write committed (its reply was lost: a dropped connection, a timeout after the
        commit) and our lease on the trade is confirmed again; else ``failed`` is raised and
        the drive stops, for ``recover``, as for any failed write.

        Why: a lost reply is most often a commit that went through, and stopping there would
        leave leg A unhedged until ``recover`` runs. Nothing is sent on a guess: the write is
        taken as done only when a re-read holds exactly its facts (``same_facts``), and a
        send after it still needs the lease, which the renewal here confirms."""
        expected = after(record, change, record.updated_at)
        for attempt in range(1, REREAD_ATTEMPTS + 1):
            try:
                stored = await self.store.load(record.id)
                if not same_facts(stored, expected):
                    break  # not written (or moved by another driver): nothing to go on with
                if record.id not in await self.store.renew(self._lease(), [record.id]):
                    break  # committed, but the trade is another process's now
            except StoreError:
                if attempt < REREAD_ATTEMPTS:  # (no wait after the last: the drive stops)
                    await asyncio.sleep(self.config.backoff(attempt))
                continue
            log.warning(
                "trade %s: a write reported %s, but it committed (read back); going on",
                record.id,
                failed,
            )
            return stored
        raise failed

    def _alert(self, outcome: TradeOutcome) -> None:
        """Tell ``on_attention`` of a trade that needs a human or a recover."""
        if self._on_attention is None:
            return
        try:
            called = self._on_attention(outcome)
            if asyncio.iscoroutine(called):
                task: asyncio.Task[Any] = asyncio.ensure_future(called)
                self._alerts.add(task)
                task.add_done_callback(functools.partial(self._alert_done, outcome.trade_id))
        except Exception:
            log.exception("on_attention failed for trade %s", outcome.trade_id)

    def _alert_done(self, trade_id: str, task: asyncio.Task[Any]) -> None:
        """An async hook's end: its failure is logged naming the trade, as a sync one's is
        (an operator reading "on_attention failed" must know which trade went unannounced)."""
        self._alerts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("on_attention failed for trade %s: %s", trade_id, task.exception())

    def _committed(self, rows: list[EventRecord], updated: TradeRecord) -> None:
        """A write's journal rows, committed: log the states it took the trade through (and
        let crash tests stop there), and publish them to the subscribers."""
        for row in rows:
            if row.from_state is not None and row.to_state is not row.from_state:
                if log.isEnabledFor(logging.INFO):  # the fields for structured logs, too
                    fields = {
                        "trade_id": row.trade_id,
                        "from_state": row.from_state.value,
                        "state": row.to_state.value,
                        "cause": row.cause,
                    }
                    log.info(
                        "trade %(trade_id)s %(from_state)s -> %(state)s: %(cause)s",
                        fields,
                        extra=fields,
                    )
                crashpoints.reached(f"state:{row.to_state.value}")
        if self._events.active:
            self._events.publish(trade_events(rows, updated))

    async def _decide(self, record: TradeRecord, *, resuming: bool = False) -> Action | None:
        """``decide`` on ``record``; once leg A has filled, with the prices its fills do not
        give (waiting for a fetch still under way: sizing leg B or an unwind may need one).
        Before that nothing waits for a price: leg A's send must not."""
        prices = await self._prices_for(record)
        age = (utc_now() - record.created_at).total_seconds() if resuming else None
        return decide(
            record,
            self.config,
            markets=self._markets,
            prices=prices,
            quotes=self._quotes.get(record.id),
            resuming=resuming,
            age=age,
        )

    async def _prices_for(self, record: TradeRecord) -> Mapping[str, float]:
        """The prices ``decide`` needs for ``record``: once leg A has filled, of the markets
        its fills do not price (waiting for a fetch still under way). Before that nothing
        waits for a price: leg A's send must not."""
        if record.filled(Leg.A) <= 0:
            return {}
        markets = self._markets_to_price(record)
        self._prices.refresh(markets)  # a second try if the first fetch got no price
        return await self._prices.ready(markets)

    async def _quote(self, record: TradeRecord, ask: Quote) -> None:
        """Fetch the best price for ``ask`` from its own venue, a few times with back-off
        (``lookup_attempts``); None if it cannot be had, which ``decide`` acts on."""
        gateway = self.gateways[ask.venue]
        reference = None
        for attempt in range(1, self.config.lookup_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.config.backoff(attempt - 1))
            reference = await gateway.quote(ask.symbol, ask.side)
            if reference is not None:
                break
        self._quotes.setdefault(record.id, {})[ask.key] = reference

    def _markets_to_price(self, record: TradeRecord) -> list[str]:
        """The trade's markets with a minimum order value that its own fills do not price (as
        ``decide`` values them): leg B's until it fills, leg A's if its fill came unpriced."""
        r = record.request
        return [
            m
            for m in (r.market_x, r.market_y)
            if self._markets.get(m, ANY_AMOUNT).min_cost > 0
            and not any(o.market == m and o.filled > 0 and o.average for o in record.orders)
        ]

    async def _send(self, record: TradeRecord, order: OrderFacts) -> TradeRecord:
        """create_order for an order whose intent is already committed."""
        self._quotes.pop(record.id, None)  # the next limit order is priced from a new quote
        crashpoints.reached(f"intent:{order.leg.value}")
        for attempt in range(1, self.config.rate_limit_attempts + 1):
            if self._lease_lapsing(record.id):  # another process may be driving it by now
                raise _StopDriving(
                    f"{steps.leg_name(order)} {order.client_order_id} not sent: this process's "
                    "lease on the trade may have run out or been taken (renewals failed?); "
                    "run recover"
                )
            if order.leg is Leg.B and order.attempt == 1 and attempt == 1:
                answered = self._answered_a.pop(record.id, None)
                if answered is not None:  # leg A's answer came in this process
                    self.metrics.unhedged_window.observe(time.monotonic() - answered)
            result = await self.gateways[order.venue].create(order)
            crashpoints.reached(f"sent:{order.leg.value}")
            if (
                not isinstance(result, Answered)
                and result.meaning is ErrorMeaning.RETRY_LATER
                and attempt < self.config.rate_limit_attempts
            ):
                self.metrics.rate_limit_waits += 1
                await asyncio.sleep(self.config.backoff(attempt))
                continue
            return await self._learned(record, order, steps.create_answered(order, result, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _lookup(self, record: TradeRecord, order: OrderFacts) -> TradeRecord:
        """Find out whether an order whose outcome is unknown exists; never resend here.

        A lookup that fails proves nothing and leaves the trade to ``recover()``; a venue
        whose every answer cannot be this order parks it (``steps.lookups_failed``)."""
        if record.state is not TradeState.UNKNOWN:
            record = await self._apply(record, steps.resuming(order))
        last_error = ""
        not_believed = 0
        for attempt in range(1, self.config.lookup_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.config.backoff(attempt - 1))
            self.metrics.lookups += 1
            result = await self.gateways[order.venue].fetch(order)
            not_believed += isinstance(result, NotBelieved)
            found = steps.lookup_answered(order, result)
            if found is not None:
                return await self._learned(record, order, found)
            assert not isinstance(result, Answered)
            last_error = result.error
        fact = steps.lookups_failed(order, self.config.lookup_attempts, not_believed, last_error)
        updated = await self._apply(record, fact)
        if fact.trigger is None:
            raise _StopDriving(fact.cause)
        return updated

    async def _settle(self, record: TradeRecord, order: OrderFacts) -> TradeRecord:
        """Give an open order time to fill, then cancel the rest and record the final fill.

        Polls that are not believed are ignored like failed ones. After the cancel, a report
        not believed is asked for again, as a lookup would be, and parks the trade if every
        answer is like it: the final fill, which sizes what follows, is then unknown."""
        gateway = self.gateways[order.venue]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.settle_timeout
        result: CallResult | None = None
        how, cancel_error = "filled while open", None
        while loop.time() < deadline and not _final(result):
            await asyncio.sleep(self.config.settle_poll_interval)
            result = await gateway.fetch(order)
        if not _final(result):
            how = "remainder cancelled"
            cancel_error = await gateway.cancel(order)
            result = await gateway.fetch(order)
            for attempt in range(1, self.config.lookup_attempts):  # not believed: ask again
                if not isinstance(result, NotBelieved):
                    break
                await asyncio.sleep(self.config.backoff(attempt))
                result = await gateway.fetch(order)
        if _final(result):
            learned = f"{order.client_order_id} {how}"
            fact = steps.report_fact(order, result.report, learned, of_amount=True)
            return await self._learned(record, order, fact)
        assert result is not None  # fetched after the cancel at least
        detail = result.error if isinstance(result, Failed) else "still open"
        if cancel_error is not None:
            detail += f"; cancel: {cancel_error.error}"
        fact = steps.settle_failed(order, result, detail, self.config.lookup_attempts)
        updated = await self._apply(record, fact)
        if fact.trigger is None:
            raise _StopDriving(fact.cause)
        return updated

    async def _learned(
        self, record: TradeRecord, order: OrderFacts, fact: steps.Fact
    ) -> TradeRecord:
        """Write what the venue said of ``order``; a fill of leg A starts the unhedged window
        (the metric)."""
        update = fact.order_update
        if order.leg is Leg.A and update is not None and update.filled:
            self._answered_a[record.id] = time.monotonic()
        return await self._apply(record, fact)


REREAD_ATTEMPTS = 3
"""Reads after a failed write to learn whether it committed (``_landed``), a backoff apart."""
_ENDED_KEPT = 10_000
ALERT_GRACE = 30.0
"""Seconds ``close()`` gives alerts (``on_attention`` coroutines) still running."""


def _retrieve(task: asyncio.Task[TradeOutcome]) -> None:
    """Log a submitted trade's drive that failed (a database that failed it: ``recover``
    finishes it): its bot may never ``wait`` for it. A BaseException (the process going
    down) is not this trade's to report."""
    if task.cancelled():
        return
    failure = task.exception()
    if isinstance(failure, Exception):
        log.warning("a submitted trade's drive stopped: %s", failure)


def _sql_store(url: str) -> Store:
    """The SQL store for a database URL: the one place the engine names an adapter, imported
    here so that the engine's module (and the domain below it) never loads SQLAlchemy for a
    bot that hands in a store of its own."""
    from pairexec.persistence.store import TradeStore

    return TradeStore(url)


def _final(result: CallResult | None) -> TypeGuard[Answered]:
    """Whether ``result`` reports the order no longer open (filled, cancelled, rejected)."""
    return isinstance(result, Answered) and result.report.status is not OrderStatus.OPEN


def _order(record: TradeRecord, cid: str) -> OrderFacts:
    return next(o for o in record.orders if o.client_order_id == cid)


def _outcome(record: TradeRecord, reason: str) -> TradeOutcome:
    return TradeOutcome(
        trade_id=record.id,
        state=record.state,
        filled_x=record.filled(Leg.A),
        filled_y=record.filled(Leg.B),
        unwound_x=record.filled(Leg.UNWIND),
        reason=reason,
        net_x=net(record.orders, Leg.A),
        net_y=net(record.orders, Leg.B),
        average_x=average_price(record.orders, Leg.A),
        average_y=average_price(record.orders, Leg.B),
        fees=fee_totals(record.orders),
        closes=record.request.closes,
    )


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """``EngineConfig.freeze_startup_heap``: once per process, whatever the engines."""
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()  # what is garbage now is freed, not frozen
    gc.freeze()
