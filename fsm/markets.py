"""What a market allows: amount step, minimum amount and minimum order value (notional), and
whether its amounts are contracts. Pure data, read once from ccxt's markets.

Every amount the domain handles is in **base units** (BTC of BTC/USDT:USDT), on spot and
contract markets alike. A contract market (ccxt ``market["contract"]``) counts orders in
contracts of ``contractSize`` base units each, so its rules are kept in base units here (the
step is one contract step x ``contractSize``, the minimum likewise): ``decide``'s flooring then
yields whole contract steps, and only the venue boundary (``venues.gateway``) converts to
contracts and back (``to_contracts`` / ``to_base``). Inverse contracts (a contract worth a
fixed amount of the *quote* currency) have no fixed size in base units and are refused.

The engine rounds every amount down to the market's step before persisting the order (so the
stored amount is what is sent), and never decides to send an amount the exchange must reject:
a remainder below the minimum is dust, handled by an explicit decision in ``pairexec.fsm.decide``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

# ccxt precision modes (ccxt.DECIMAL_PLACES, ccxt.TICK_SIZE); copied as numbers to keep this
# module free of the ccxt import.
DECIMAL_PLACES = 2
TICK_SIZE = 4

_FLOAT_NOISE = 1e-9  # 0.6 * 1.5 = 0.8999999999999999 must floor to 0.9, not 0.8999


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _floor_to(amount: float, step: float) -> float:
    nudged = Decimal(repr(amount * (1 + _FLOAT_NOISE)))
    return float((nudged / _decimal(step)).to_integral_value(rounding=ROUND_FLOOR) * _decimal(step))


@dataclass(frozen=True)
class MarketRules:
    """A market's rules, every amount in base units (see the module's docstring)."""

    amount_step: float | None = None
    min_amount: float = 0.0
    min_cost: float = 0.0
    """Minimum order value in the quote currency (amount x price); 0: none."""
    contract_size: float | None = None
    """Base units per contract on a contract market (swap, future); None: amounts are base
    units on the venue too (spot)."""
    contract_step: float | None = None
    """A contract market's amount step in contracts, as the venue counts them."""
    inverse: bool = False
    """An inverse contract market: refused (``unsupported``)."""
    symbol: str = field(default="", compare=False)
    """The market's symbol, for messages."""
    price_step: float | None = None
    """The price grid (tick size) a limit must be on; None: any price."""

    @property
    def is_contract(self) -> bool:
        return self.contract_size is not None

    def unsupported(self) -> str | None:
        """Why pairexec will not trade this market, or None."""
        if self.inverse:
            return (
                f"{self.symbol or 'market'} is an inverse contract market (each contract is "
                "worth a fixed amount of the quote currency): its size in base units changes "
                "with the price, which pairexec does not support; use a linear market"
            )
        return None

    def to_contracts(self, amount: float) -> float:
        """``amount`` base units as the venue's number of contracts (floored to the contract
        step, float noise forgiven); ``amount`` itself on a market that is not a contract's."""
        if self.contract_size is None:
            return amount
        contracts = float(_decimal(amount) / _decimal(self.contract_size))
        return _floor_to(contracts, self.contract_step) if self.contract_step else contracts

    def to_base(self, contracts: float) -> float:
        """A venue's number of contracts as base units (exact decimal product)."""
        if self.contract_size is None:
            return contracts
        return float(_decimal(contracts) * _decimal(self.contract_size))

    def floor(self, amount: float) -> float:
        """``amount`` rounded down to the step (float noise forgiven)."""
        if not self.amount_step:
            return amount
        return _floor_to(amount, self.amount_step)

    def sendable(self, amount: float, price: float | None = None) -> float | None:
        """The amount an order may carry, or None if it rounds below what the market accepts:
        its minimum amount, or (given a reference ``price``) its minimum order value."""
        floored = self.floor(amount)
        if floored <= 0 or floored < self.min_amount * (1 - _FLOAT_NOISE):
            return None
        if self.min_cost and price and floored * price < self.min_cost * (1 - _FLOAT_NOISE):
            return None
        return floored


ANY_AMOUNT = MarketRules()


def rules_from_ccxt(
    market: Mapping[str, Any], precision_mode: int | None, symbol: str = ""
) -> MarketRules:
    """A ccxt market's rules (``load_markets()`` data only: ``precision``, ``limits``,
    ``contract``, ``contractSize``, ``inverse``), in base units."""
    step = _step((market.get("precision") or {}).get("amount"), precision_mode)
    tick = _step((market.get("precision") or {}).get("price"), precision_mode)
    limits = market.get("limits") or {}
    minimum = (limits.get("amount") or {}).get("min")
    min_cost = (limits.get("cost") or {}).get("min")
    symbol = symbol or str(market.get("symbol") or "")
    if not market.get("contract"):
        return MarketRules(
            amount_step=step,
            min_amount=float(minimum or 0.0),
            min_cost=float(min_cost or 0.0),
            symbol=symbol,
            price_step=tick,
        )
    size = _number(market.get("contractSize"))
    size = size if size is not None and size > 0 else 1.0  # ccxt: one contract, one base unit
    inverse = bool(market.get("inverse"))
    return MarketRules(
        amount_step=float(_decimal(step) * _decimal(size)) if step else None,
        min_amount=float(_decimal(float(minimum)) * _decimal(size)) if minimum else 0.0,
        min_cost=float(min_cost or 0.0),
        contract_size=size,
        contract_step=step,
        inverse=inverse,
        symbol=symbol,
        price_step=tick,
    )


def _step(precision: Any, precision_mode: int | None) -> float | None:
    """A ccxt precision (amount or price) as a step, in the exchange's precision mode."""
    if isinstance(precision, (int, float)) and not math.isnan(precision):
        if precision_mode == DECIMAL_PLACES:
            return float(10.0 ** -int(precision))
        if precision_mode == TICK_SIZE and precision > 0:
            return float(precision)
    return None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
