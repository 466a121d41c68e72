"""Per-venue client-order-id rules: how to pass our id on create, how to find an order by it.

The engine's safety rests on two things a venue must do with a client order id: carry it on
``create_order``, and find the order by it when the create's outcome is unknown. ccxt unifies
the first for the venues below (``params={"clientOrderId": cid}`` is renamed to the venue's own
field) but not the second, so this table records, per ccxt exchange family, what was verified
in ccxt's source (ccxt 4.5, ``ccxt/async_support/<id>.py``):

- binance (+ binanceus, binanceusdm, binancecoinm, which subclass it): ``create_order_request``
  sends ``clientOrderId`` as ``newClientOrderId``; ``fetch_order`` and ``cancel_order`` send it
  as ``origClientOrderId``. A missing order is -2013 -> ``OrderNotFound``. Lookup: fetch_order.
- okx (+ myokx, okxus): ``create_order_request``, ``fetch_order`` and ``cancel_order`` send it as
  ``clOrdId`` (the venue takes 1-32 alphanumerics). Missing: 51603 -> ``OrderNotFound``.
- bybit (+ bybiteu, bybitid): create sends ``orderLinkId``, but ``fetch_order`` takes only an
  exchange order id (and needs ``acknowledged``), so the order is looked up with
  ``fetch_open_orders`` and ``fetch_canceled_and_closed_orders`` filtered by ``orderLinkId``.
  ``cancel_order_request`` sends a given id as ``orderId`` and passes other params raw, so a
  cancel by client id is ``cancel_order(None, symbol, {"orderLinkId": cid})``.
- kraken: create sends ``cl_ord_id``, but ``fetch_order`` turns ``clientOrderId`` into
  ``userref`` (an integer tag, not our id), so the lookup scans ``fetch_open_orders`` and
  ``fetch_closed_orders`` with ``clientOrderId`` (sent as ``cl_ord_id``); Kraken's closed orders
  include cancelled and expired ones. ``cancel_order`` sends ``clientOrderId`` as ``cl_ord_id``.
- any other ccxt exchange: the unified ``clientOrderId`` on create, and a scan of its open and
  closed orders for the id (never ``fetch_order(cid)``: a venue that ignores the client-id
  parameter would read the id as an exchange order id and answer "not found" for an order that
  exists).
- objects without ``.has`` (the paper exchange, test doubles): ``fetch_order`` by client id.

One ccxt setting is refused for every venue: ``maxRetriesOnFailure``. ccxt's ``fetch2``
(``async_support/base/exchange.py``) resends a request that failed with ``OperationFailed``,
``RequestTimeout`` included, that many times, so a create whose reply timed out would be sent
again behind the engine's back; the engine looks such an order up by client id instead.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Lookup(str, enum.Enum):
    FETCH_ORDER = "fetch_order"
    """``fetch_order(id, symbol, {id_param: cid})`` finds the order by client id."""
    SCAN = "scan"
    """List the venue's open, then closed orders and pick the one with our client id."""


class UnsupportedExchange(ValueError):
    """The exchange cannot place and look orders up by client order id: trading on it could
    leave an order whose existence the engine can never establish."""


@dataclass(frozen=True)
class ClientIdRules:
    """What one venue does with client order ids. Frozen data; ``venues.gateway`` acts on it."""

    name: str
    lookup: Lookup
    id_pattern: re.Pattern[str]
    """Client ids the venue accepts (ours are 32 lowercase hex characters)."""
    id_param: str = "clientOrderId"
    """The ``params`` key ccxt reads our client id from on fetch/cancel/list calls."""
    filter_scans: bool = False
    """Scan venues: pass ``{id_param: cid}`` to the list calls, so the venue filters by it."""
    closed_methods: tuple[str, ...] = ()
    """Scan venues: the ccxt methods listing the orders that are no longer open, as verified."""
    fetch_by_exchange_id: bool = True
    """``fetch_order(exchange_order_id, symbol)`` works once the exchange's id is known."""
    by_exchange_id_alone: bool = False
    """Once the exchange's id is known, fetch and cancel by it *without* the client-id param:
    ccxt would send that param raw or map it to something else (Kraken's ``userref``)."""
    cancel_takes_no_id: bool = False
    """Cancelling by client id needs ``id=None`` (ccxt would send our id as the venue's)."""
    verified: bool = True
    """False for the generic fallback: nothing venue-specific was checked."""

    def accepts(self, client_order_id: str) -> bool:
        return self.id_pattern.fullmatch(client_order_id) is not None

    def cancel_args(
        self, client_order_id: str, exchange_order_id: str | None
    ) -> tuple[str | None, dict[str, Any]]:
        """``(id, params)`` for ``cancel_order``."""
        if exchange_order_id and self.by_exchange_id_alone:
            return exchange_order_id, {}
        if exchange_order_id is None and self.cancel_takes_no_id:
            return None, {self.id_param: client_order_id}
        return exchange_order_id or client_order_id, {self.id_param: client_order_id}


_ANY_ID = re.compile(r".{1,64}", re.DOTALL)

UNIFIED = ClientIdRules("unified", Lookup.FETCH_ORDER, _ANY_ID)
"""The paper exchange and test doubles: ``fetch_order`` honours ``clientOrderId``."""

BINANCE = ClientIdRules("binance", Lookup.FETCH_ORDER, re.compile(r"[.A-Z:/a-z0-9_-]{1,36}"))
OKX = ClientIdRules("okx", Lookup.FETCH_ORDER, re.compile(r"[A-Za-z0-9]{1,32}"))
BYBIT = ClientIdRules(
    "bybit",
    Lookup.SCAN,
    re.compile(r"[A-Za-z0-9_-]{1,36}"),
    id_param="orderLinkId",  # cancel_order sends params.clientOrderId raw, orderLinkId as is
    filter_scans=True,
    closed_methods=("fetch_canceled_and_closed_orders",),
    fetch_by_exchange_id=False,  # fetch_order: last 500 orders only, and "acknowledged"
    by_exchange_id_alone=True,
    cancel_takes_no_id=True,  # cancel_order_request sends a non-None id as orderId
)
KRAKEN = ClientIdRules(
    "kraken",
    Lookup.SCAN,
    # a UUID (36 chars, or 32 hex without dashes) or up to 18 characters of free text
    re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F-]{36}|[ -~]{1,18}"),
    filter_scans=True,  # fetch_open_orders/fetch_closed_orders send clientOrderId as cl_ord_id
    closed_methods=("fetch_closed_orders",),  # Kraken's closed orders include cancelled ones
    by_exchange_id_alone=True,  # fetch_order would send our id as userref
)
GENERIC = ClientIdRules("generic", Lookup.SCAN, _ANY_ID, by_exchange_id_alone=True, verified=False)

_BY_CCXT_ID: Mapping[str, ClientIdRules] = {
    **dict.fromkeys(("binance", "binanceus", "binanceusdm", "binancecoinm"), BINANCE),
    **dict.fromkeys(("okx", "myokx", "okxus"), OKX),
    **dict.fromkeys(("bybit", "bybiteu", "bybitid"), BYBIT),
    "kraken": KRAKEN,
    "paper": UNIFIED,
}

_GENERIC_CLOSED = ("fetch_canceled_and_closed_orders", "fetch_closed_orders")


def unified_client_id(params: dict[str, Any] | None) -> str | None:
    """The client order id a ccxt call carries in its unified ``clientOrderId`` param."""
    cid = (params or {}).get("clientOrderId")
    return None if cid is None else str(cid)


def _has_name(method: str) -> str:
    """ccxt's ``has`` key for a method: ``fetch_open_orders`` -> ``fetchOpenOrders``."""
    head, *rest = method.split("_")
    return head + "".join(word.capitalize() for word in rest)


def rules_for(exchange: Any) -> ClientIdRules:
    """The rules for ``exchange``: by its ccxt id; UNIFIED for objects that are not ccxt
    exchanges (no ``has``), GENERIC for a ccxt exchange this table does not know."""
    has = getattr(exchange, "has", None)
    venue = _BY_CCXT_ID.get(str(getattr(exchange, "id", "")))
    if venue is not None:
        return venue
    return UNIFIED if not isinstance(has, Mapping) else GENERIC


def supports(exchange: Any, method: str) -> bool:
    """ccxt's ``has`` flag for a snake_case method (True or "emulated"); objects without
    ``has`` are asked whether they have the method at all."""
    has = getattr(exchange, "has", None)
    if isinstance(has, Mapping):
        return bool(has.get(_has_name(method)))
    return callable(getattr(exchange, method, None))


def scan_methods(exchange: Any, rules: ClientIdRules) -> tuple[str, ...]:
    """The list calls a scan makes, in order: open orders first, then the rest.

    Open first matters: an order that closes between the two calls is then still seen by the
    second one; the other way round it could be missed by both. A venue with ``fetchOrders``
    (every status in one call) and no verified rules is scanned with that one call instead.
    """
    if rules.closed_methods:
        return ("fetch_open_orders", *rules.closed_methods)
    if supports(exchange, "fetch_orders"):
        return ("fetch_orders",)
    for closed in _GENERIC_CLOSED:
        if supports(exchange, closed):
            # ccxt's fetchClosedOrders often keeps only status "closed": add the cancelled ones
            # (a cancelled order may carry a partial fill), where the venue lists them apart.
            canceled = closed == "fetch_closed_orders" and supports(
                exchange, "fetch_canceled_orders"
            )
            return ("fetch_open_orders", closed, *(["fetch_canceled_orders"] if canceled else []))
    return ()


def check_support(exchange: Any, rules: ClientIdRules, sample_client_id: str) -> None:
    """Raise UnsupportedExchange unless orders can be placed and found again by client id, and
    ccxt will not resend an order request on its own."""
    name = str(getattr(exchange, "id", None) or type(exchange).__name__)
    resends = ccxt_resends(exchange)
    if resends:
        raise UnsupportedExchange(
            f"{name}: {', '.join(resends)}: ccxt resends a request that failed or timed out "
            "when maxRetriesOnFailure > 0, so a create_order could be placed twice; remove it "
            "or set it to 0 (exchange.options['maxRetriesOnFailure'] = 0): pairexec looks an "
            "order of unknown outcome up by client id instead of resending it"
        )
    if not supports(exchange, "create_order"):
        raise UnsupportedExchange(f"{name} has no createOrder")
    if not rules.accepts(sample_client_id):
        raise UnsupportedExchange(
            f"{name} does not accept client order ids like {sample_client_id!r}"
        )
    if rules.lookup is Lookup.FETCH_ORDER:
        if not supports(exchange, "fetch_order"):
            raise UnsupportedExchange(f"{name} has no fetchOrder to look orders up by client id")
        return
    methods = scan_methods(exchange, rules)
    missing = [_has_name(m) for m in methods if not supports(exchange, m)]
    if not methods or missing:
        raise UnsupportedExchange(
            f"{name} cannot look orders up by client order id: it needs fetchOpenOrders and "
            "fetchClosedOrders (or fetchOrders)"
            + (f"; missing {', '.join(missing)}" if missing else "")
        )


_RETRY_OPTIONS = ("maxRetriesOnFailure", "defaultMaxRetriesOnFailure")
"""The names ``fetch2`` reads through ``handle_option_and_params``: ``options[name]``, or
``options[method][name]`` for one endpoint, each also with a ``default`` prefix."""


def ccxt_resends(exchange: Any) -> list[str]:
    """Each setting that lets ccxt resend failed requests, e.g.
    ``["options['maxRetriesOnFailure']=1"]``, so the refusal names exactly what to change."""
    found: list[str] = []
    if not _never(getattr(exchange, "maxRetriesOnFailure", None)):
        # not read by ccxt 4.5 (the constructor sets unknown config keys as attributes), but
        # whoever set it meant retries; refuse it rather than rely on ccxt ignoring it
        found.append(f"maxRetriesOnFailure={exchange.maxRetriesOnFailure!r}")
    options = getattr(exchange, "options", None)
    if not isinstance(options, Mapping):
        return found
    for option in _RETRY_OPTIONS:
        if not _never(options.get(option)):
            found.append(f"options[{option!r}]={options[option]!r}")
    for method, method_options in options.items():
        if isinstance(method_options, Mapping):
            for option in _RETRY_OPTIONS:
                if not _never(method_options.get(option)):
                    found.append(f"options[{method!r}][{option!r}]={method_options[option]!r}")
    return found


def _never(retries: Any) -> bool:
    """None or 0: ``fetch2`` sends the request once (its loop runs ``retries + 1`` times)."""
    return retries is None or (isinstance(retries, int) and retries == 0)
