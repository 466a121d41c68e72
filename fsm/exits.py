"""Closing a pair trade: the exit that reverses what an entry actually holds.

An exit is an ordinary pair trade (all of the engine's crash safety applies) on the entry's
markets and venues with both sides reversed, sized from the entry's **net** positions, not
from its request: leg A sells (buys back) what leg A's orders left on the account, after fees
charged in its coin and any unwinds, and leg B, hedging what the exit's leg A fills, reverses
leg B's net position when leg A's fills whole. Pure: the engine checks the entry's state and
stores the exit.
"""

from __future__ import annotations

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.decide import opposite
from pairexec.fsm.markets import MarketRules
from pairexec.fsm.model import TradeRecord, net
from pairexec.fsm.request import InvalidRequest, PairTradeRequest
from pairexec.fsm.states import TradeState


def positions(entry: TradeRecord) -> tuple[float, float]:
    """The base amounts the entry's legs hold now: leg A's net fill less what its unwinds
    gave back, and leg B's net fill (in the direction of each leg's side)."""
    return net(entry.orders, Leg.A) - net(entry.orders, Leg.UNWIND), net(entry.orders, Leg.B)


def closable(entry: TradeRecord) -> None:
    """InvalidRequest unless ``entry`` is a DONE trade that is not itself an exit."""
    if entry.request.closes is not None:
        raise InvalidRequest(
            f"trade {entry.id} is itself an exit (it closes {entry.request.closes}): nothing "
            "to close"
        )
    if entry.state is not TradeState.DONE:
        raise InvalidRequest(
            f"trade {entry.id} is {entry.state.value}, not DONE: only a DONE trade is closed "
            "(its positions are known and hedged)"
        )


def check_exit(request: PairTradeRequest, entry: TradeRecord) -> None:
    """InvalidRequest unless ``request`` (its ``closes`` set, perhaps by a bot) can close
    ``entry``: a closable entry, the same markets and venues, both sides reversed."""
    closable(entry)
    e = entry.request
    same = (request.market_x, request.market_y) == (e.market_x, e.market_y)
    reversed_ = (request.side_x, request.side_y) == (opposite(e.side_x), opposite(e.side_y))
    if not (same and reversed_):
        raise InvalidRequest(
            f"an exit of trade {entry.id} trades {e.market_x} {opposite(e.side_x)} and "
            f"{e.market_y} {opposite(e.side_y)}; this request trades {request.market_x} "
            f"{request.side_x} and {request.market_y} {request.side_y}"
        )


def exit_request(
    entry: TradeRecord, rules_x: MarketRules, rules_y: MarketRules
) -> PairTradeRequest:
    """The request that closes ``entry``; InvalidRequest if it is not a DONE entry, or holds
    less than its markets' minimum orders (nothing to close)."""
    request = entry.request
    closable(entry)
    held_x, held_y = positions(entry)
    amount_x = rules_x.sendable(held_x)
    if amount_x is None:
        raise InvalidRequest(
            f"trade {entry.id} holds {held_x:g} {request.market_x} of leg A, below its minimum "
            f"order ({rules_x.min_amount:g}, step {rules_x.amount_step or 0:g}): nothing to close"
        )
    if rules_y.sendable(held_y) is None:
        raise InvalidRequest(
            f"trade {entry.id} holds {held_y:g} {request.market_y} of leg B, below its minimum "
            f"order ({rules_y.min_amount:g}): nothing to close"
        )
    return PairTradeRequest(
        pair_x=request.pair_x,
        side_x=opposite(request.side_x),
        amount_x=amount_x,
        pair_y=request.pair_y,
        side_y=opposite(request.side_y),
        hedge_ratio=held_y / amount_x,  # a whole leg A fill reverses leg B's position
        venue_x=request.venue_x,
        venue_y=request.venue_y,
        closes=entry.id,
    )
