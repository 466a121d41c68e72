"""Finding an order by client order id on a ccxt venue, by the venue's rules (``ccxt_ids``).

The answer must never be a false "absent": the engine resends an order it was told is absent.
So a lookup ends in exactly one of three ways:

- the order (a ccxt order dict);
- ``ConfirmedAbsent``: the venue answered in full and the id is not there (ccxt's
  ``OrderNotFound`` from a direct lookup means the same and is passed through as is);
- anything else (``LookupInconclusive``, a ccxt error): proves nothing, the engine looks again.
"""

from __future__ import annotations

from typing import Any

from pairexec.fsm.model import OrderFacts
from pairexec.fsm.venues.ccxt_ids import ClientIdRules, Lookup, scan_methods, supports
from pairexec.fsm.venues.errors import ConfirmedAbsent, LookupInconclusive, describe


async def find_order(exchange: Any, rules: ClientIdRules, order: OrderFacts) -> Any:
    """The venue's current view of ``order``, found by its client order id."""
    cid = order.client_order_id
    if rules.lookup is Lookup.FETCH_ORDER:
        return await exchange.fetch_order(
            order.exchange_order_id or cid, order.symbol, {rules.id_param: cid}
        )
    if order.exchange_order_id and rules.fetch_by_exchange_id and supports(exchange, "fetch_order"):
        # Once the venue told us its id (the create answered), that is the cheap exact lookup.
        return await exchange.fetch_order(order.exchange_order_id, order.symbol, {})
    return await scan(exchange, rules, order.symbol, cid)


async def scan(exchange: Any, rules: ClientIdRules, symbol: str, cid: str) -> Any:
    """List the venue's open then closed orders on ``symbol`` and return the one with ``cid``."""
    methods = scan_methods(exchange, rules)
    if not methods:
        raise LookupInconclusive(f"no way to list orders on {getattr(exchange, 'id', exchange)}")
    params = {rules.id_param: cid} if rules.filter_scans else {}
    matches: dict[str, Any] = {}
    for method in methods:
        try:
            orders = await getattr(exchange, method)(symbol, None, None, dict(params))
        except Exception as exc:  # OrderNotFound included: a failed list call proves nothing
            raise LookupInconclusive(f"{method} failed: {describe(exc)}") from exc
        if not isinstance(orders, list):
            raise LookupInconclusive(f"{method} answered {type(orders).__name__}, not a list")
        for found in orders:
            if isinstance(found, dict) and found.get("clientOrderId") == cid:
                matches[str(found.get("id"))] = found
    if len(matches) > 1:
        # Two venue orders with one client id: something resent it. Never pick one silently;
        # the trade stays unresolved for a human (and recover) to see.
        ids = ", ".join(sorted(matches))
        raise LookupInconclusive(f"{len(matches)} orders carry client id {cid}: {ids}")
    if not matches:
        raise ConfirmedAbsent(f"no order with client id {cid} in {', '.join(methods)} on {symbol}")
    return next(iter(matches.values()))
