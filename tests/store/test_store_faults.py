"""The trade store when its database misbehaves: a PostgreSQL server that stops answering, a
burst larger than the connection pool, a SQLite file deleted under the engine, errors of
either driver. Each must end in a ``StoreError`` with nothing sent on it, and ``recover()``
must finish the trade afterwards with one order per leg."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

import pairexec.persistence.db
from pairexec import ExecutionEngine, PairTradeRequest, TradeOutcome, TradeState
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.engine import TradeInterrupted
from pairexec.fsm.paper import MarketSpec, PaperExchange
from pairexec.persistence import StoreError, TradeStore, head_revision, schema_revision
from pairexec.persistence.db import connect_args
from pairexec.persistence.urls import driver_url
from tests.conftest import FAST, PG_ADMIN, btc_eth
from tests.support.fake_exchange import Call, FakeExchange
from tests.support.stores import sql_store

needs_pg = pytest.mark.skipif(PG_ADMIN == "off", reason="PAIREXEC_TEST_PG=off")
PG_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, DBAPIError)
"""What PostgreSQL's driver raises: asyncpg's own on the store's hot path (SQLAlchemy's
wrapper where it migrates)."""


class Relay:
    """A TCP relay to PostgreSQL that can stop relaying: the server, as the client sees it,
    still holds the connection but never answers again (new connections are accepted too,
    and go nowhere)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = False
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        self._stop.set()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, direct: str, **options: str) -> str:
        parsed = make_url(direct).set(port=self.port).update_query_dict(options)
        return parsed.render_as_string(hide_password=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        if self.frozen:
            await self._stop.wait()  # accepted, never answered
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.append(up_writer)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if not self.frozen:
                        dst.write(data)
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def recover_once_free(engine: ExecutionEngine, within: float = 10) -> list[TradeOutcome]:
    """recover() as soon as it finds something: a lease the failed engine could not release
    runs out by itself."""
    deadline = time.monotonic() + within
    while not (outcomes := await engine.recover()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return outcomes


def orders_per_leg(exchange: FakeExchange, legs: dict[str, Leg]) -> Counter[Leg]:
    return Counter(legs[o["clientOrderId"]] for o in exchange.accepted())


@needs_pg
async def test_a_server_that_stops_answering_mid_trade_fails_the_call_within_its_bound(
    pg_db: str, exchange: FakeExchange
):
    """The relay stops relaying while leg A is on the exchange: recording its fill times out
    (?command_timeout), the call fails with a StoreError naming the option, leg B is not
    sent, and close() does not hang either. recover() on the direct URL finishes the trade."""
    async with Relay(make_url(pg_db).port or 5432) as relay:
        url = relay.url(pg_db, command_timeout="0.5", connect_timeout="0.5")

        def freeze(call: Call) -> None:
            relay.frozen = True

        engine = ExecutionEngine(exchange, url, replace(FAST, lease_seconds=1))
        await engine.start()
        exchange.on_create = freeze
        started = time.monotonic()
        with pytest.raises(
            TradeInterrupted, match=r"did not answer within 0\.5 s .*command_timeout="
        ):  # the trade was stored and leg A sent: a StoreError that says so
            await asyncio.wait_for(engine.execute_pair_trade(btc_eth()), 20)
        failed_after = time.monotonic() - started
        await asyncio.wait_for(engine.close(), 20)
        closed_after = time.monotonic() - started - failed_after
    # the statement, the wait for its cancel, the ROLLBACK (0.5 s each at most), and
    # SQLAlchemy's 2 s for closing the dead connection; measured: 1.0 s and 0.5 s
    assert failed_after < 3 * 0.5 + 2 + 1 and closed_after < 3 * 0.5 + 2 + 1
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT"]

    exchange.on_create = None
    async with ExecutionEngine(exchange, pg_db, FAST) as engine:
        [outcome] = await recover_once_free(engine)
        trade = await engine.store.load(outcome.trade_id)
    assert outcome.state is TradeState.DONE
    legs = orders_per_leg(exchange, {o.client_order_id: o.leg for o in trade.orders})
    assert legs == Counter({Leg.A: 1, Leg.B: 1})


@needs_pg
async def test_closing_a_store_whose_server_stopped_answering_is_bounded(pg_db: str):
    """engine.dispose() closes each pooled connection gracefully, waiting for the server's
    goodbye: with a silent server that is command_timeout per connection, one after another.
    The store gives the whole close one command_timeout (and a second), then drops them."""
    async with Relay(make_url(pg_db).port or 5432) as relay:
        store = TradeStore(relay.url(pg_db, command_timeout="0.5"))
        await store.open()
        # several connections in the pool: jobs that overlap
        await asyncio.gather(
            *(store._run(lambda db: db.fetch_all("SELECT pg_sleep(0.05)")) for _ in range(6))
        )
        relay.frozen = True
        started = time.monotonic()
        await asyncio.wait_for(store.close(), 20)
        assert time.monotonic() - started < 0.5 + 1 + 0.5


@needs_pg
async def test_a_server_that_never_answers_a_new_connection_fails_after_connect_timeout(
    pg_db: str,
):
    async with Relay(make_url(pg_db).port or 5432) as relay:
        relay.frozen = True  # accepts TCP connections, never speaks
        store = TradeStore(relay.url(pg_db, connect_timeout="0.3"))
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"no connection within 0\.3 s .*connect_timeout="):
            await asyncio.wait_for(store.open(), 20)
        assert time.monotonic() - started < 0.3 + 1
        assert not store.is_open


@needs_pg
@pytest.mark.parametrize(
    ("option", "bad", "why"),
    [
        ("command_timeout", "abc", "is not a number of seconds"),
        ("command_timeout", "0", "must be > 0 seconds"),
        ("connect_timeout", "-1", "must be > 0 seconds"),
        ("sslmode", "required", "is not one of disable, allow, prefer, require"),
    ],
)
async def test_a_bad_connection_option_is_refused_naming_it(
    pg_db: str, option: str, bad: str, why: str
):
    store = TradeStore(make_url(pg_db).update_query_dict({option: bad}).render_as_string(False))
    with pytest.raises(StoreError, match=f"{option}='{bad}' in the database URL {why}"):
        await store.open()
    assert not store.is_open


# --- a burst larger than the connection pool (PostgreSQL) ----------------------------------


BURST = 2_000


@needs_pg
async def test_a_burst_of_2000_trades_queues_for_connections_and_all_complete(
    pg_db: str, monkeypatch: pytest.MonkeyPatch
):
    """Thousands of trades at once on 15 connections: jobs wait for a turn, never for the
    pool. The pool's own wait is cut to 50 ms here, so any job that waited on it would fail
    (it did: "QueuePool limit ... reached", leg A filled and no hedge)."""
    monkeypatch.setattr(pairexec.persistence.db, "POOL_TIMEOUT", 0.05)
    markets = {f"C{i}/USDT": MarketSpec(f"C{i}/USDT", 1.0, 0.001, 0.001, 0.0) for i in range(24)}
    sides = [("buy", "sell"), ("sell", "buy"), ("buy", "buy"), ("sell", "sell")]
    keys = [(x, y, s) for x, y in itertools.permutations(markets, 2) for s in sides][:BURST]
    paper = PaperExchange(markets=markets)  # in memory
    try:
        async with ExecutionEngine(paper, pg_db, FAST) as engine:
            outcomes = await asyncio.gather(
                *(
                    engine.execute_pair_trade(PairTradeRequest(x, side_x, 1.0, y, side_y, 1.0))
                    for x, y, (side_x, side_y) in keys
                ),
                return_exceptions=True,
            )
        states = Counter(o.state if isinstance(o, TradeOutcome) else repr(o) for o in outcomes)
        assert states == {TradeState.DONE: BURST}, states.most_common(3)
        assert len(paper.all_orders()) == 2 * BURST
    finally:
        await paper.close()


# --- SQLite: a deleted database file -------------------------------------------------------


async def test_a_sqlite_file_deleted_while_trading_is_noticed_before_the_next_commit(
    exchange: FakeExchange, tmp_path: Path
):
    """trades.db is deleted while leg A is on the exchange. Committing its fill (and leg B's
    intent) into the unlinked file would look fine, and a restart would find no trades at all:
    instead the write fails, nothing else is sent, and so does every later one."""
    path = tmp_path / "trades.db"

    def delete_the_database(call: Call) -> None:
        if call.symbol == "BTC/USDT":
            path.unlink()

    exchange.on_create = delete_the_database
    async with ExecutionEngine(exchange, f"sqlite:///{path}", FAST) as engine:
        with pytest.raises(StoreError, match=r"trades\.db was deleted while the store had it"):
            await engine.execute_pair_trade(btc_eth())
        with pytest.raises(StoreError, match="was deleted"):
            await engine.execute_pair_trade(replace(btc_eth(), pair_y="SOL/USDT"))
    assert [c.symbol for c in exchange.create_calls()] == ["BTC/USDT"]


async def test_a_sqlite_file_replaced_while_open_is_noticed(tmp_path: Path):
    path = tmp_path / "trades.db"
    async with TradeStore(f"sqlite:///{path}") as store:
        await store.create_trade(btc_eth())
        path.rename(tmp_path / "moved.db")
        path.write_bytes(b"")  # another file under the same name
        with pytest.raises(StoreError, match="was replaced while the store had it open"):
            await store.create_trade(replace(btc_eth(), pair_y="SOL/USDT"))


# --- driver errors reach callers as StoreError ---------------------------------------------


async def test_a_dropped_table_is_a_store_error_and_nothing_is_sent(
    exchange: FakeExchange, db_url: str
):
    async with ExecutionEngine(exchange, db_url, FAST) as engine:
        await sql_store(engine)._run(lambda db: db.execute("DROP TABLE trade_events"))
        with pytest.raises(StoreError, match="trade_events") as failed:
            await engine.execute_pair_trade(btc_eth())
    cause = failed.value.__cause__
    assert isinstance(cause, (sqlite3.OperationalError, *PG_DRIVER_ERRORS)), repr(cause)
    assert exchange.create_calls() == []


async def test_a_full_sqlite_disk_is_a_store_error(exchange: FakeExchange, tmp_path: Path):
    """The database may not grow (as on a full disk): trades that cannot be stored fail with
    a StoreError before anything is sent for them; once there is room, the next trade and
    recover() go through, and every order on the exchange belongs to a stored trade."""
    url = f"sqlite:///{tmp_path / 'trades.db'}"
    async with ExecutionEngine(exchange, url, FAST) as engine:
        connection = sql_store(engine)._runner._connection  # type: ignore[union-attr]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")
        requests = [
            replace(btc_eth(), pair_y=f"Y{n}/USDT", signal_id=f"{n}-" + "x" * 190)
            for n in range(200)
        ]
        results = await asyncio.gather(
            *(engine.execute_pair_trade(r) for r in requests), return_exceptions=True
        )
        full = [r for r in results if isinstance(r, StoreError)]
        assert full and all("database or disk is full" in str(r) for r in full)
        assert all(isinstance(r, (StoreError, TradeOutcome)) for r in results), results
        connection.execute("PRAGMA max_page_count = 1073741823")
        outcome = await engine.execute_pair_trade(replace(btc_eth(), pair_y="BNB/USDT"))
        await engine.recover()  # whatever a failed write left in flight
        trades = await sql_store(engine).list_trades(limit=1000)
    assert outcome.state is TradeState.DONE
    assert {t.state for t in trades} == {TradeState.DONE}
    legs = orders_per_leg(exchange, {o.client_order_id: o.leg for t in trades for o in t.orders})
    assert legs == Counter({Leg.A: len(trades), Leg.B: len(trades)})  # nothing sent unstored


async def test_a_read_only_sqlite_database_is_a_store_error(exchange: FakeExchange, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'trades.db'}"
    async with ExecutionEngine(exchange, url, FAST) as engine:
        connection = sql_store(engine)._runner._connection  # type: ignore[union-attr]
        connection.execute("PRAGMA query_only = ON")
        with pytest.raises(StoreError, match="readonly database") as failed:
            await engine.execute_pair_trade(btc_eth())
        connection.execute("PRAGMA query_only = OFF")
    assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
    assert exchange.create_calls() == []


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@needs_pg
async def test_terminated_backends_are_a_store_error_when_no_new_connection_can_be_had(
    pg_db: str, exchange: FakeExchange
):
    """pg_terminate_backend of the store's connections while the database refuses new ones:
    the write is retried once on a new connection (the old one died before COMMIT: nothing
    of it was written), that fails too, and the caller gets a StoreError with asyncpg's error
    as its cause. Once connections are allowed again, the store works on."""
    name = make_url(pg_db).database
    async with ExecutionEngine(exchange, pg_db, FAST) as engine:
        await sql_store(engine).count_trades()  # a pooled connection
        await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            with pytest.raises(StoreError, match="not currently accepting connections") as failed:
                await engine.execute_pair_trade(btc_eth())
        finally:
            await admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert exchange.create_calls() == []
        assert not isinstance(failed.value, TradeInterrupted)  # nothing stored, nothing sent
        assert isinstance(failed.value.__cause__, PG_DRIVER_ERRORS)  # asyncpg's own
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE


@needs_pg
async def test_an_idle_connection_terminated_by_the_server_is_replaced_unnoticed(
    pg_db: str, exchange: FakeExchange
):
    """No ping before every job: a pooled connection the server closed fails its job's first
    statement, before anything is committed, and the job runs again on a new connection."""
    name = make_url(pg_db).database
    async with ExecutionEngine(exchange, pg_db, FAST) as engine:
        await sql_store(engine).count_trades()
        await admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        outcome = await engine.execute_pair_trade(btc_eth())
    assert outcome.state is TradeState.DONE


@needs_pg
async def test_a_backend_terminated_mid_statement_is_a_store_error(pg_db: str):
    """The store's statement waits on a lock; the server terminates its backend then, and
    again on the retry: a StoreError, not asyncpg's ConnectionDoesNotExistError."""
    name = make_url(pg_db).database
    async with TradeStore(pg_db) as store:
        holder = await asyncpg.connect(pg_db.replace("postgresql+asyncpg://", "postgresql://"))
        await holder.execute("BEGIN; LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")

        async def terminator() -> None:
            while True:
                await admin(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                    f" '{name}' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
                await asyncio.sleep(0.05)

        terminating = asyncio.create_task(terminator())
        try:
            with pytest.raises(StoreError, match="failed") as failed:
                await asyncio.wait_for(store.count_trades(), 20)
        finally:
            terminating.cancel()
            await holder.close()
        assert isinstance(failed.value.__cause__, PG_DRIVER_ERRORS)
        assert await store.count_trades() == 0


# --- sslmode -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-full"])
def test_sslmode_becomes_asyncpgs_ssl_argument(mode: str):
    url = f"postgresql+asyncpg://u:pw@db.example:5433/trades?sslmode={mode}&command_timeout=7"
    driver = make_url(driver_url(url))
    assert "sslmode" not in driver.query and "command_timeout" not in driver.query
    _, kwargs = create_async_engine(driver).dialect.create_connect_args(driver)
    assert kwargs["ssl"] == mode  # what asyncpg.connect is called with
    assert connect_args(url)["command_timeout"] == 7.0
    assert connect_args(url)["timeout"] == 10.0  # the default connect_timeout


def test_sslmode_and_ssl_together_are_refused():
    with pytest.raises(ValueError, match="both sslmode= and ssl="):
        driver_url("postgresql://u@h/db?sslmode=require&ssl=disable")


@needs_pg
@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_a_url_with_sslmode_connects(pg_db: str, mode: str):
    async with TradeStore(f"{pg_db}?sslmode={mode}") as store:
        assert await store.count_trades() == 0
    assert await schema_revision(f"{pg_db}?sslmode={mode}") == head_revision()


@needs_pg
async def test_sslmode_require_is_not_quietly_dropped(pg_db: str):
    """The test server has no TLS: with sslmode=require the connection must fail, not fall
    back to plain text (asyncpg's default is prefer)."""
    async with TradeStore(pg_db) as store:
        ssl_on = (await store._run(lambda db: db.fetch_all("SHOW ssl")))[0][0] == "on"
    if ssl_on:
        pytest.skip("this server offers TLS: require connects")
    with pytest.raises(StoreError, match="rejected SSL upgrade"):
        await TradeStore(f"{pg_db}?sslmode=require").open()
