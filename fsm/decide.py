"""Pure decision logic: given a trade and what is known of its orders, what happens next.

No I/O here. The engine persists facts (order rows, trade state), calls ``decide`` and carries
out the one action it returns, over and over until the trade is terminal. Because the decision
reads only persisted facts, a process that restarts after a crash decides exactly what the
crashed one would have, and recovery needs no code of its own.

The rule that makes it safe: an order whose outcome is not known (INTENT after a crash, UNKNOWN
after a timeout) can only be looked up. A resend is decided only for an order that a lookup
confirmed ABSENT, and it reuses the order's client id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.config import EngineConfig
from pairexec.fsm.markets import ANY_AMOUNT, MarketRules
from pairexec.fsm.model import OrderFacts, OrderStatus, TradeRecord, filled, net
from pairexec.fsm.pricing import OrderPolicy, limit_price
from pairexec.fsm.request import PairTradeRequest, market_key
from pairexec.fsm.states import TERMINAL_STATES, TradeState, Trigger

# --- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """Persist a new order (intent, client id) with ``trigger``, then send it."""

    trigger: Trigger
    leg: Leg
    attempt: int
    symbol: str
    side: str
    amount: float
    cause: str
    reference_price: float | None = None
    limit_price: float | None = None
    """A limit IOC order's limit (None: a market order), stored with the intent."""


@dataclass(frozen=True)
class Quote:
    """A limit order is next: fetch the best price on ``side`` of the market (a buy's ask, a
    sell's bid), then decide again with it (``decide``'s ``quotes``)."""

    symbol: str
    venue: str | None
    side: str

    @property
    def key(self) -> tuple[str, str]:
        """How ``decide``'s ``quotes`` hold the answer: (market, side)."""
        return market_key(self.symbol, self.venue), self.side


@dataclass(frozen=True)
class Resend:
    """The order was confirmed absent: send it again under the same client order id."""

    trigger: Trigger
    order: OrderFacts
    cause: str


@dataclass(frozen=True)
class Lookup:
    """The order's outcome is unknown: fetch it by client order id (trade -> UNKNOWN first)."""

    order: OrderFacts


@dataclass(frozen=True)
class Settle:
    """The order is open: let it fill for a while, then cancel the rest and read the result."""

    order: OrderFacts


@dataclass(frozen=True)
class Move:
    """A pure state change (e.g. leg A classified, trade done)."""

    trigger: Trigger
    cause: str


@dataclass(frozen=True)
class GiveUp:
    """An order cannot be placed (sent too often while absent): record it as rejected."""

    order: OrderFacts
    cause: str


Action = Submit | Resend | Lookup | Settle | Move | GiveUp | Quote

# --- the decision --------------------------------------------------------------------------

_TRIGGER_FOR_LEG = {
    Leg.A: Trigger.SEND_LEG_A,
    Leg.B: Trigger.SEND_LEG_B,
    Leg.UNWIND: Trigger.UNWIND,
}


def opposite(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def hedge_target(
    trade: PairTradeRequest, orders: Sequence[OrderFacts], basis: str = "net"
) -> float:
    """Leg B's total amount: the hedge ratio times what leg A actually got, its net (the
    base amount that moved on the account after fees in it) or, ``basis="filled"``, its
    gross fill (``EngineConfig.hedge_basis``)."""
    return trade.hedge_ratio * (net(orders, Leg.A) if basis == "net" else filled(orders, Leg.A))


def unwind_target(
    trade: PairTradeRequest, orders: Sequence[OrderFacts], basis: str = "net"
) -> float:
    """The part of leg A that leg B does not hedge: what unwind orders must close. Never more
    than leg A's net (a buy that paid its fee in the coin holds less than it filled: selling
    the whole fill back would be refused)."""
    got = net(orders, Leg.A)
    basis_a = got if basis == "net" else filled(orders, Leg.A)
    return max(min(basis_a - filled(orders, Leg.B) / trade.hedge_ratio, got), 0.0)


def decide(
    record: TradeRecord,
    config: EngineConfig,
    *,
    markets: Mapping[str, MarketRules] | None = None,
    prices: Mapping[str, float] | None = None,
    quotes: Mapping[tuple[str, str], float | None] | None = None,
    resuming: bool = False,
    age: float | None = None,
) -> Action | None:
    """The next action for ``record`` (the trade and its orders as stored), or None if it is
    terminal.

    ``markets`` gives each market's amount step and minimums (absent: any amount), keyed as
    ``PairTradeRequest.market_x`` is (the symbol alone with a single exchange, ``symbol@venue``
    with several: the same symbol may trade under other rules on another venue). A minimum
    order value is checked at the price this trade's own fills on the market got, else at
    ``prices`` (a recent price per market, keyed alike), else not at all (the venue decides).
    ``quotes``: the best price fetched for the next limit order, by (market, side); None for
    one that could not be had (the order is then not sent: see ``_Plan.priced``).
    ``resuming`` is set by ``recover()``: a trade still PENDING then was never sent before the
    restart, and a stale signal must not open a position hours later, so it fails instead;
    ``age`` (seconds since the trade was created) lets it fail a leg A confirmed absent past
    ``config.max_resume_age`` for the same reason.
    """
    state, trade, orders = record.state, record.request, record.orders
    if state in TERMINAL_STATES:
        return None
    plan = _Plan(trade, orders, config, markets or {}, prices or {}, quotes or {})
    if state is TradeState.PENDING:
        if resuming:
            return Move(Trigger.NEVER_SENT, "not resumed: leg A was never sent before the restart")
        amount = plan.markets.get(trade.market_x, ANY_AMOUNT).floor(trade.amount_x)
        return plan.priced(
            Submit(Trigger.SEND_LEG_A, Leg.A, 1, trade.pair_x, trade.side_x, amount, "leg A intent")
        )
    if state in (TradeState.LEG_A_FILLED, TradeState.LEG_A_PARTIAL):
        return plan.first_leg_b()

    current = orders[-1]  # every other state has sent at least one order; the last is current
    if current.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        return Lookup(current)
    if current.status is OrderStatus.ABSENT:
        if current.sends >= config.max_sends_per_order:
            return GiveUp(current, f"absent after {current.sends} sends")
        if plan.refused(current):  # sized before a price was known: it would be refused
            return GiveUp(current, "not resent: below the market's minimum order value")
        limit = config.max_resume_age
        if current.leg is Leg.A and resuming and limit is not None and (age or 0.0) > limit:
            return Move(
                Trigger.LEG_A_FAILED,
                f"leg A confirmed absent {age:.0f} s after the signal (max_resume_age "
                f"{limit:g} s): not sent late; nothing executed",
            )
        return Resend(_TRIGGER_FOR_LEG[current.leg], current, "confirmed absent: resend same id")
    if current.status is OrderStatus.OPEN:
        return Settle(current)

    if current.leg is Leg.A:
        return plan.after_leg_a(current)
    if current.leg is Leg.B:
        return plan.after_leg_b(current)
    return plan.after_unwind(current)


@dataclass(frozen=True)
class _Plan:
    """The rules for one trade, with its facts at hand."""

    trade: PairTradeRequest
    orders: Sequence[OrderFacts]
    config: EngineConfig
    markets: Mapping[str, MarketRules]
    prices: Mapping[str, float]
    quotes: Mapping[tuple[str, str], float | None]

    def _policy(self, leg: Leg) -> OrderPolicy:
        config = self.config
        return config.leg_a if leg is Leg.A else config.leg_b if leg is Leg.B else config.unwind

    def priced(self, submit: Submit, *, market_order: bool = False) -> Action:
        """``submit`` as its leg's policy prices it: at market, at the request's own limit
        (leg A's ``price_x``), or as a limit IOC a band from a quote, which is fetched first
        (``Quote``). Without a quote to be had nothing is sent: leg A's trade fails, a hedge
        or unwind parks the trade (sent at market, it would be exactly the unbounded fill the
        policy forbids)."""
        trade = self.trade
        if submit.leg is Leg.A and trade.price_x is not None:
            return replace(
                submit,
                limit_price=trade.price_x,
                cause=f"{submit.cause}, limit IOC at {trade.price_x:g} (the request's)",
            )
        policy = self._policy(submit.leg)
        if market_order or not policy.limited:
            return submit
        ask = Quote(submit.symbol, trade.venue_of(submit.leg), submit.side)
        if ask.key not in self.quotes:
            return ask
        reference = self.quotes[ask.key]
        what = "leg A" if submit.leg is Leg.A else f"{submit.leg.value} order"
        if reference is None or reference <= 0:
            why = f"no {'ask' if submit.side == 'buy' else 'bid'} on {ask.key[0]} to price"
            if submit.leg is Leg.A:
                return Move(Trigger.NEVER_SENT, f"{why} leg A's limit: nothing sent")
            return Move(Trigger.PARK, f"{why} the {what}'s limit: not sent; {self._exposure()}")
        band = policy.band_bps(submit.attempt)
        rules = self.markets.get(ask.key[0], ANY_AMOUNT)
        limit = limit_price(submit.side, reference, band, rules.price_step)
        if submit.leg is not Leg.A and rules.sendable(submit.amount, limit) is None:
            # A venue values a limit order at its limit: a sell's is below the bid, so an
            # order worth the minimum at market may be refused at its limit. (Leg A's size is
            # the bot's: the venue judges it.)
            problem = (
                f"{what} {submit.amount:g} {ask.key[0]} at its limit {limit:g} is worth less "
                f"than the market's minimum order value {rules.min_cost:g}"
            )
            if submit.leg is Leg.B:
                return self._unwind_all_or_park(problem)
            return Move(Trigger.PARK, f"{problem}: not sent; {self._exposure()}")
        return replace(
            submit,
            reference_price=reference,
            limit_price=limit,
            cause=f"{submit.cause}, limit IOC at {limit:g} ({band:g} bps from {reference:g})",
        )

    def _exposure(self) -> str:
        """What is left unhedged, for a reason that parks the trade."""
        return f"leg A's unhedged {self._unwind_target():g} {self.trade.market_x} left open"

    def _sendable(self, market: str, amount: float, whole: float) -> float | None:
        """What may be sent of ``amount`` (a part of ``whole``), None if it is only dust."""
        if amount <= self.config.hedge_tolerance * max(whole, 1e-12):
            return None
        return self.markets.get(market, ANY_AMOUNT).sendable(amount, self._price(market))

    def refused(self, order: OrderFacts) -> bool:
        """Whether the market must refuse ``order`` as it stands (at the price known now)."""
        rules = self.markets.get(order.market, ANY_AMOUNT)
        return rules.sendable(order.amount, self._price(order.market)) is None

    def _price(self, market: str) -> float | None:
        """What an order on ``market`` is worth per unit: the average this trade's fills on it
        got, else the recent price the engine was given, else unknown."""
        fills = [(o.filled, o.average) for o in self.orders if o.market == market and o.average]
        quantity = sum(f for f, _ in fills)
        if quantity > 0:
            return sum(f * (a or 0.0) for f, a in fills) / quantity
        return self.prices.get(market)

    @property
    def filled_a(self) -> float:
        return filled(self.orders, Leg.A)

    def after_leg_a(self, leg_a: OrderFacts) -> Action:
        trade, config = self.trade, self.config
        ratio = leg_a.filled / trade.amount_x
        text = f"leg A filled {leg_a.filled:g} of {trade.amount_x:g} ({ratio:.0%})"
        if leg_a.filled <= 0:
            why = "rejected" if leg_a.status is OrderStatus.REJECTED else "nothing filled"
            return Move(Trigger.LEG_A_FAILED, f"leg A {why}; nothing executed")
        if ratio >= config.full_fill_ratio:
            return Move(Trigger.LEG_A_FILLED, text)
        if ratio >= config.abort_fill_ratio:
            return Move(Trigger.LEG_A_PARTIAL, text)
        abort = f"{text} < abort ratio {config.abort_fill_ratio:g}"
        if not config.unwind_on_abort:
            return Move(
                Trigger.LEG_A_TOO_SMALL, f"{abort}: leg A left open (unwind_on_abort=False)"
            )
        unhedged = self._unwind_target()  # leg A's net: all that is there to sell back
        amount = self._sendable(trade.market_x, unhedged, unhedged)
        if amount is None:
            return Move(
                Trigger.LEG_A_TOO_SMALL, f"{abort}: below {trade.market_x}'s minimum, left open"
            )
        return self._unwind(1, amount, f"{abort}: unwind leg A")

    def first_leg_b(self) -> Action:
        trade = self.trade
        target = self._hedge_target()
        amount = self._sendable(trade.market_y, target, target)
        if amount is None:
            return self._unwind_all_or_park(
                f"hedge {target:g} {trade.market_y} is below the market minimum"
                f"{self._value_note(trade.market_y, target)}"
            )
        return self.priced(
            Submit(
                Trigger.SEND_LEG_B,
                Leg.B,
                1,
                trade.pair_y,
                trade.side_y,
                amount,
                f"leg B {amount:g} = {trade.hedge_ratio:g} x leg A {self._basis_note()}",
            )
        )

    def _hedge_target(self) -> float:
        return hedge_target(self.trade, self.orders, self.config.hedge_basis)

    def _unwind_target(self) -> float:
        return unwind_target(self.trade, self.orders, self.config.hedge_basis)

    def _basis_note(self) -> str:
        """What leg B is sized from: ``filled X``, or ``net X (filled F)`` if fees differ."""
        gross, got = self.filled_a, net(self.orders, Leg.A)
        if self.config.hedge_basis == "filled" or got == gross:
            return f"filled {gross:g}"
        return f"net {got:g} (filled {gross:g})"

    def after_leg_b(self, leg_b: OrderFacts) -> Action:
        trade, config = self.trade, self.config
        target = self._hedge_target()
        done = filled(self.orders, Leg.B)
        remainder = self._sendable(trade.market_y, target - done, target)
        if remainder is None:
            dust = target - done
            note = f" (remainder {dust:g} below market minimum: dust)" if dust > 0 else ""
            return Move(
                Trigger.LEG_B_FILLED,
                f"leg B filled {done:g}, hedging leg A {self.filled_a:g}{note}",
            )
        rest = Submit(
            Trigger.SEND_LEG_B,
            Leg.B,
            leg_b.attempt + 1,
            trade.pair_y,
            trade.side_y,
            remainder,
            f"leg B remainder {remainder:g} of {target:g}",
        )
        if leg_b.status is not OrderStatus.REJECTED and leg_b.attempt < config.leg_attempts:
            return self.priced(rest)
        why = "rejected" if leg_b.status is OrderStatus.REJECTED else f"{leg_b.attempt} orders"
        problem = f"leg B filled {done:g} of {target:g} ({why})"
        policy = config.leg_b
        if leg_b.status is not OrderStatus.REJECTED and policy.limited:
            # the ladder's last rung is passed: the policy says what the remainder becomes
            if policy.after_cap == "market" and leg_b.limit_price is not None:
                return self.priced(
                    replace(rest, cause=f"{rest.cause} at market: the band's cap is reached"),
                    market_order=True,
                )
            if policy.after_cap == "park":
                return Move(Trigger.PARK, f"{problem}, the band's cap reached; {self._exposure()}")
        return self._unwind_all_or_park(problem)

    def _unwind_all_or_park(self, problem: str) -> Action:
        """Leg B cannot (fully) hedge: close leg A's unhedged part, or ask a human."""
        trade = self.trade
        unhedged = self._unwind_target()
        if not self.config.unwind_on_abort:
            return Move(
                Trigger.PARK, f"{problem}; leg A's {unhedged:g} unhedged (unwind_on_abort=False)"
            )
        amount = self._sendable(trade.market_x, unhedged, unhedged)
        if amount is None:
            return Move(
                Trigger.PARK,
                f"{problem}; leg A's unhedged {unhedged:g} is below the minimum"
                f"{self._value_note(trade.market_x, unhedged)}",
            )
        return self._unwind(1, amount, f"{problem}: unwind leg A's unhedged {amount:g}")

    def _value_note(self, market: str, amount: float) -> str:
        """Say so when it is the minimum order value (not the amount) that stops an order."""
        rules, price = self.markets.get(market, ANY_AMOUNT), self._price(market)
        if rules.sendable(amount) is None or rules.sendable(amount, price) is not None:
            return ""
        return f" (order value {amount * (price or 0.0):g} < minimum {rules.min_cost:g})"

    def _unwind(self, attempt: int, amount: float, cause: str) -> Action:
        trade = self.trade
        return self.priced(
            Submit(
                Trigger.UNWIND,
                Leg.UNWIND,
                attempt,
                trade.pair_x,
                opposite(trade.side_x),
                amount,
                cause,
            )
        )

    def after_unwind(self, unwind: OrderFacts) -> Action:
        trade, config = self.trade, self.config
        target = self._unwind_target()
        done = filled(self.orders, Leg.UNWIND)
        remainder = self._sendable(trade.market_x, target - done, target)
        if remainder is None:
            dust = target - done
            note = f" ({dust:g} below market minimum left: dust)" if dust > 0 else ""
            return Move(Trigger.UNWOUND, f"unwound {done:g} of leg A{note}")
        if unwind.status is OrderStatus.REJECTED or unwind.attempt >= config.leg_attempts:
            why = "rejected" if unwind.status is OrderStatus.REJECTED else "out of attempts"
            return Move(
                Trigger.PARK,
                f"unwind incomplete ({why}): {target - done:g} {trade.market_x} of leg A still "
                "open",
            )
        return self._unwind(unwind.attempt + 1, remainder, f"unwind remainder {remainder:g}")
