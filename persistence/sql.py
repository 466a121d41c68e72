"""The trade store's SQL: every statement and how its rows map onto the domain records.

Pure functions of a ``Db`` (``pairexec.persistence.db``), run inside a transaction the store
opened; written once for SQLite and PostgreSQL, with the few dialect differences (the lease
clock) spelled out where they arise.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import (
    Change,
    EventRecord,
    Fee,
    Lease,
    OrderFacts,
    OrderStatus,
    OrderUpdate,
    TradeRecord,
    journal,
    utc_now,
)
from pairexec.fsm.ports import StaleTrade, StoreError
from pairexec.fsm.request import PairTradeRequest
from pairexec.fsm.states import TERMINAL_STATES, TradeState
from pairexec.persistence.db import Db, Params, Row, as_utc, in_list

IDS_PER_QUERY = 500
"""Ids per ``IN (...)`` list: well under the drivers' limits on bound parameters (asyncpg
32,767; SQLite 32,766 in the default build)."""

TERMINAL_SQL = "(" + ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATES)) + ")"
"""The terminal states as a SQL list (constants from our own enum, not user input)."""

LIVE_EXIT = "closes IS NOT NULL AND state NOT IN ('ABORTED', 'FAILED')"
"""An exit that counts: the unique index ``uq_trades_closes`` allows one per entry."""

TRADE_COLUMNS = (
    "id, pair_x, side_x, amount_x, pair_y, side_y, hedge_ratio, signal_id, state, reason,"
    " created_at, updated_at, version, venue_x, venue_y, price_x, closes"
)
ORDER_COLUMNS = (
    "trade_id, leg, attempt, client_order_id, symbol, side, amount, status, filled, sends,"
    " exchange_order_id, average, fees, venue, reference_price, limit_price"
)


JOURNAL_SQL = (
    "INSERT INTO trade_events (trade_id, from_state, to_state, cause, client_order_id, at)"
    " VALUES (:trade_id, :from_state, :to_state, :cause, :cid, :at)"
)


def event_params(
    trade_id: str,
    from_state: TradeState | None,
    to_state: TradeState,
    cause: str,
    cid: str | None,
    at: datetime,
) -> Params:
    return {
        "trade_id": trade_id,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value,
        "cause": cause,
        "cid": cid,
        "at": at,
    }


def write_change(
    db: Db,
    record: TradeRecord,
    change: Change,
    updated: TradeRecord,
    lease: Lease | None,
    now: datetime,
) -> None:
    """Write ``change`` to the trade ``record`` shows, as compare-and-set (see ``apply``)."""
    expected = record.state
    sets = "state = :state, reason = :reason, updated_at = :now, version = :version"
    params: Params = {
        "id": record.id,
        "expected": expected.value,
        "seen": record.version,
        "state": updated.state.value,
        "reason": updated.reason,
        "now": now,
        "version": updated.version,
    }
    where = "id = :id AND state = :expected AND version = :seen"
    if updated.state in TERMINAL_STATES and not (
        updated.state is TradeState.PARKED and change.keep_parked_pair
    ):
        sets += ", inflight_key = NULL"
    if lease is not None:
        expiry, expiry_params = lease_expiry(db, lease)
        sets += f", lease_expires_at = {expiry}"
        where += " AND owner = :owner"
        params.update(owner=lease.owner, **expiry_params)
    trade = f"UPDATE trades SET {sets} WHERE {where}"
    if db.alone:
        written = write_in_one(db, trade, params, expected, change, now)
    else:
        written = db.execute(trade, params) == 1
        if written:
            write_facts(db, record.id, expected, change, now)
    if not written:
        raise StaleTrade(
            f"trade {record.id} is no longer {expected.value} as last seen"
            + (f" under {lease.owner}" if lease else "")
        )


def in_one_statement(change: Change | None) -> bool:
    """Whether ``write_in_one`` can write ``change``: not if it updates an order it inserts
    (the parts of one statement do not see each other's rows)."""
    if change is None or change.order_update is None:
        return True
    cid = change.order_update.client_order_id
    new = [change.new_order, *(move.new_order for move in change.then)]
    return all(o is None or o.client_order_id != cid for o in new)


def write_in_one(
    db: Db,
    trade: str,
    params: Params,
    expected: TradeState,
    change: Change | None,
    now: datetime,
    *journal_first: EventRecord,
) -> bool:
    """``trade`` (the INSERT, or the compare-and-set UPDATE when ``change`` updates an order,
    of the trade row ``params["id"]``)
    and what ``write_facts`` writes after it, as one statement: PostgreSQL runs the parts of
    a data-modifying WITH on one snapshot, all or nothing, and commits it by itself.

    The orders and the journal rows are written only if the trade row was (``FROM t``), each
    kind by one INSERT in the order given (``WITH ORDINALITY``: their ids keep the order a
    read-back returns them in). An order update is made only if the trade row was, and the
    trade row only if the order is there: a missing order is the same ``StoreError`` as in
    ``update_order``, with nothing written. Whether the trade row was written (False: the
    UPDATE matched no row; nothing was written)."""
    assert in_one_statement(change), "an order the change inserts cannot be updated by it"
    trade_id = params["id"]
    p: Params = dict(params)
    upd = None if change is None else change.order_update
    guard = "" if upd is None else f" AND {_ORDER_THERE}"  # (an UPDATE's WHERE goes on)
    parts = [f"t AS ({trade}{guard} RETURNING id)"]
    new = [] if change is None else [change.new_order, *(m.new_order for m in change.then)]
    orders = [o for o in new if o is not None]
    if orders:
        parts.append(
            "o AS (INSERT INTO orders (trade_id, leg, attempt, client_order_id,"
            " exchange_order_id, symbol, venue, side, amount, status, filled, average, sends,"
            " last_error, reference_price, limit_price, created_at, updated_at)"
            " SELECT t.id, v.leg, v.attempt, v.cid, NULL, v.symbol, v.venue, v.side, v.amount,"
            " :o_status, 0.0, NULL, 0, '', v.reference, v.limit_, :now, :now FROM t,"
            " unnest(CAST(:o_leg AS text[]), CAST(:o_attempt AS integer[]),"
            " CAST(:o_cid AS text[]), CAST(:o_symbol AS text[]), CAST(:o_venue AS text[]),"
            " CAST(:o_side AS text[]), CAST(:o_amount AS float8[]),"
            " CAST(:o_reference AS float8[]), CAST(:o_limit AS float8[])) WITH ORDINALITY"
            " AS v(leg, attempt, cid, symbol, venue, side, amount, reference, limit_, n)"
            " ORDER BY v.n)"
        )
        p.update(
            o_status=OrderStatus.INTENT.value,
            o_leg=[o.leg.value for o in orders],
            o_attempt=[o.attempt for o in orders],
            o_cid=[o.client_order_id for o in orders],
            o_symbol=[o.symbol for o in orders],
            o_venue=[o.venue for o in orders],
            o_side=[o.side for o in orders],
            o_amount=[o.amount for o in orders],
            o_reference=[o.reference_price for o in orders],
            o_limit=[o.limit_price for o in orders],
            now=now,
        )
    found = "TRUE"
    if upd is not None:
        sets, update = _order_update(trade_id, upd, now)
        parts.append(
            f"u AS (UPDATE orders SET {sets} WHERE {_ORDER_MATCHES} AND EXISTS (SELECT 1 FROM t))"
        )
        p.update(update)
        found = _ORDER_THERE
    rows = [*journal_first, *(journal(trade_id, expected, change, now) if change else ())]
    parts.append(
        "j AS (INSERT INTO trade_events (trade_id, from_state, to_state, cause,"
        " client_order_id, at) SELECT t.id, e.from_state, e.to_state, e.cause, e.cid, e.at"
        " FROM t, unnest(CAST(:j_from AS text[]), CAST(:j_to AS text[]),"
        " CAST(:j_cause AS text[]), CAST(:j_cid AS text[]), CAST(:j_at AS timestamptz[]))"
        " WITH ORDINALITY AS e(from_state, to_state, cause, cid, at, n) ORDER BY e.n)"
    )
    p.update(
        j_from=[r.from_state.value if r.from_state else None for r in rows],
        j_to=[r.to_state.value for r in rows],
        j_cause=[r.cause for r in rows],
        j_cid=[r.client_order_id for r in rows],
        j_at=[r.at for r in rows],
    )
    [(written, order_there)] = db.fetch_all(
        f"WITH {', '.join(parts)} SELECT (SELECT count(*) FROM t), {found}", p
    )
    if not order_there:
        assert upd is not None
        raise StoreError(f"order {upd.client_order_id} of trade {trade_id} not found")
    return bool(written == 1)


def write_facts(
    db: Db,
    trade_id: str,
    expected: TradeState,
    change: Change,
    now: datetime,
    *journal_first: EventRecord,
) -> None:
    """The orders ``change`` adds or updates, and its journal (after ``journal_first``)."""
    if change.new_order is not None:
        insert_order(db, trade_id, change.new_order, now)
    if change.order_update is not None:
        update_order(db, trade_id, change.order_update, now)
    for move in change.then:
        if move.new_order is not None:
            insert_order(db, trade_id, move.new_order, now)
    rows = [*journal_first, *journal(trade_id, expected, change, now)]
    db.execute_many(JOURNAL_SQL, [journal_row(r) for r in rows])  # one statement for them all


def journal_row(row: EventRecord) -> Params:
    return event_params(
        row.trade_id, row.from_state, row.to_state, row.cause, row.client_order_id, row.at
    )


def lease_expiry(db: Db, lease: Lease | None) -> tuple[str, Params]:
    """SQL for when ``lease`` runs out, as written now, with its parameters. On PostgreSQL a
    lease of N seconds is the server's ``now()`` + N: every worker's lease is on one clock,
    whatever its own says. SQLite runs on this machine: its clock is the database's."""
    if lease is None:
        return "NULL", {}
    if lease.seconds is None:
        return ":lease_until", {"lease_until": lease.until}
    if db.dialect == "postgresql":
        return "now() + make_interval(secs => :lease_seconds)", {"lease_seconds": lease.seconds}
    return ":lease_until", {"lease_until": utc_now() + timedelta(seconds=lease.seconds)}


def db_now(db: Db) -> tuple[str, Params]:
    """SQL for the database's current time (see ``lease_expiry``)."""
    if db.dialect == "postgresql":
        return "now()", {}
    return ":db_now", {"db_now": utc_now()}


def insert_order(db: Db, trade_id: str, order: OrderFacts, now: datetime) -> None:
    db.execute(
        "INSERT INTO orders (trade_id, leg, attempt, client_order_id, exchange_order_id, symbol,"
        " venue, side, amount, status, filled, average, sends, last_error, reference_price,"
        " limit_price, created_at, updated_at) VALUES (:trade_id, :leg, :attempt, :cid, NULL,"
        " :symbol, :venue, :side, :amount, :status, 0.0, NULL, 0, '', :reference_price,"
        " :limit_price, :now, :now)",
        {
            "trade_id": trade_id,
            "leg": order.leg.value,
            "attempt": order.attempt,
            "cid": order.client_order_id,
            "symbol": order.symbol,
            "venue": order.venue,
            "side": order.side,
            "amount": order.amount,
            "reference_price": order.reference_price,
            "limit_price": order.limit_price,
            "status": OrderStatus.INTENT.value,
            "now": now,
        },
    )


_ORDER_MATCHES = "client_order_id = :cid AND trade_id = :trade_id"
_ORDER_THERE = f"EXISTS (SELECT 1 FROM orders WHERE {_ORDER_MATCHES})"


def update_order(db: Db, trade_id: str, upd: OrderUpdate, now: datetime) -> None:
    sets, params = _order_update(trade_id, upd, now)
    changed = db.execute(f"UPDATE orders SET {sets} WHERE {_ORDER_MATCHES}", params)
    if changed != 1:
        raise StoreError(f"order {upd.client_order_id} of trade {trade_id} not found")


def _order_update(trade_id: str, upd: OrderUpdate, now: datetime) -> tuple[str, Params]:
    """The SET list of an order's update, and its parameters (the order's: ``:cid``,
    ``:trade_id``)."""
    sets = ["status = :status", "updated_at = :now"]
    params: Params = {"cid": upd.client_order_id, "trade_id": trade_id}
    params.update(status=upd.status.value, now=now)
    for column, value in (
        ("filled", upd.filled),
        ("exchange_order_id", upd.exchange_order_id),
        ("average", upd.average),
        ("last_error", upd.error),
        ("fees", None if upd.fees is None else fees_json(upd.fees)),
    ):
        if value is not None:
            sets.append(f"{column} = :{column}")
            params[column] = value
    if upd.add_sends:
        sets.append("sends = sends + :add_sends")
        params["add_sends"] = upd.add_sends
    return ", ".join(sets), params


def load(db: Db, where: str, params: Params) -> TradeRecord | None:
    found = load_many(db, f"{where} LIMIT 1", params)
    return found[0] if found else None


def load_many(db: Db, where_and_order: str, params: Params) -> list[TradeRecord]:
    """Trades matching ``where_and_order`` (a WHERE clause, then ORDER BY / LIMIT), with
    their orders: two statements whatever the number of trades."""
    trades = db.fetch_all(f"SELECT {TRADE_COLUMNS} FROM trades WHERE {where_and_order}", params)
    if not trades:
        return []
    orders: dict[str, list[OrderFacts]] = {t[0]: [] for t in trades}
    trade_ids = list(orders)
    rows: list[Row] = []
    for start in range(0, len(trade_ids), IDS_PER_QUERY):  # drivers bound the parameters
        ids_sql, ids = in_list("t", trade_ids[start : start + IDS_PER_QUERY])
        rows += db.fetch_all(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE trade_id IN {ids_sql} ORDER BY id", ids
        )
    for trade_id, leg, attempt, cid, symbol, side, amount, status, *rest in rows:
        # rest: filled, sends, exchange_order_id, average, fees, venue, reference_price,
        # limit_price (ORDER_COLUMNS' order)
        filled, sends, exchange_order_id, average, fees, venue, reference, limit = rest
        orders[trade_id].append(
            OrderFacts(
                Leg(leg),
                attempt,
                cid,
                symbol,
                side,
                amount,
                OrderStatus(status),
                filled,
                sends,
                exchange_order_id,
                average,
                fees_from_json(fees),
                venue,
                reference,
                limit,
            )
        )
    return [
        TradeRecord(
            id_,
            PairTradeRequest(
                pair_x,
                side_x,
                amount_x,
                pair_y,
                side_y,
                ratio,
                signal_id,
                venue_x,
                venue_y,
                price_x,
                closes,
            ),
            TradeState(state),
            reason,
            aware(created_at),
            aware(updated_at),
            tuple(orders[id_]),
            version,
        )
        for (
            id_,
            pair_x,
            side_x,
            amount_x,
            pair_y,
            side_y,
            ratio,
            signal_id,
            state,
            reason,
            created_at,
            updated_at,
            version,
            venue_x,
            venue_y,
            price_x,
            closes,
        ) in trades
    ]


def fees_json(fees: tuple[Fee, ...]) -> str:
    """An order's fees as stored: JSON ``{"currency": cost, ...}``."""
    return json.dumps({fee.currency: fee.cost for fee in fees})


def fees_from_json(text: str | None) -> tuple[Fee, ...]:
    if not text:
        return ()
    try:
        stored = json.loads(text)
        return tuple(Fee(str(currency), float(cost)) for currency, cost in stored.items())
    except (ValueError, TypeError, AttributeError) as exc:
        raise StoreError(f"an order's stored fees are not readable: {text!r:.100}") from exc


def aware(value: Any) -> datetime:
    stamp = as_utc(value)
    if stamp is None:  # pragma: no cover - NOT NULL columns
        raise StoreError("a required time is missing in the database")
    return stamp
