"""The engine's only contact with the exchange: three calls, each answered as a plain result.

Every call is bounded by ``EngineConfig.call_timeout`` and every failure is sorted by what it
means for the order (``fsm.exchange_errors``), so the engine never inspects exceptions itself.
Exceptions that are not ``Exception`` (cancellation, interpreter exit) pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fsm.config import EngineConfig
from fsm.exchange_errors import ErrorMeaning, classify, describe
from fsm.markets import MarketRules, rules_from_ccxt
from fsm.orders import ExchangeReport, MalformedOrder, OrderFacts, parse_order


@dataclass(frozen=True)
class Answered:
    """The exchange answered with the order."""

    report: ExchangeReport


@dataclass(frozen=True)
class Failed:
    """The call failed; ``meaning`` says what that implies for the order."""

    meaning: ErrorMeaning
    error: str


CallResult = Answered | Failed


class ExchangeGateway:
    def __init__(self, exchange: Any, config: EngineConfig) -> None:
        self.exchange = exchange
        self.config = config

    async def market_rules(self) -> dict[str, MarketRules]:
        """Each market's amount step and minimum; empty for a venue without ``load_markets``."""
        load = getattr(self.exchange, "load_markets", None)
        if load is None:
            return {}
        markets = await asyncio.wait_for(load(), self.config.call_timeout)
        mode = getattr(self.exchange, "precisionMode", None)
        return {symbol: rules_from_ccxt(m, mode) for symbol, m in (markets or {}).items()}

    async def _call(self, order: OrderFacts, call: Callable[[], Awaitable[Any]]) -> CallResult:
        try:
            reply = await asyncio.wait_for(call(), self.config.call_timeout)
        except Exception as exc:
            return Failed(classify(exc), describe(exc))
        try:
            return Answered(parse_order(reply, order.amount))
        except MalformedOrder as exc:
            return Failed(ErrorMeaning.UNKNOWN, str(exc))

    async def create(self, order: OrderFacts) -> CallResult:
        return await self._call(
            order,
            lambda: self.exchange.create_order(
                order.symbol,
                self.config.order_type,
                order.side,
                order.amount,
                None,
                {"clientOrderId": order.client_order_id},
            ),
        )

    async def fetch(self, order: OrderFacts) -> CallResult:
        """Look the order up by its client order id (and exchange id, when known)."""
        return await self._call(
            order,
            lambda: self.exchange.fetch_order(
                order.exchange_order_id or order.client_order_id,
                order.symbol,
                {"clientOrderId": order.client_order_id},
            ),
        )

    async def cancel(self, order: OrderFacts) -> Failed | None:
        """Ask for the rest of the order to be cancelled; the fill is read by a fetch after."""
        try:
            await asyncio.wait_for(
                self.exchange.cancel_order(  # inside try: a sync raise is classified too
                    order.exchange_order_id or order.client_order_id,
                    order.symbol,
                    {"clientOrderId": order.client_order_id},
                ),
                self.config.call_timeout,
            )
        except Exception as exc:
            return Failed(classify(exc), describe(exc))
        return None
