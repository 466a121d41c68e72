"""API credentials never reach the logs or the trade database, even at DEBUG with real ccxt.

ccxt logs every request with its headers at DEBUG, and Binance's key travels in a header
(``X-MBX-APIKEY``), so without ``pairexec.fsm.venues.ccxt_secrets`` a bot logging at DEBUG writes
its key to its log. Signed query strings (``signature=...``) also end up in error texts that the
engine journals; those are redacted too.
"""

from __future__ import annotations

import gc
import logging
import re
from dataclasses import replace
from pathlib import Path

from pairexec import ExecutionEngine, TradeState
from pairexec.fsm.cli.recorder import CallRecorder
from pairexec.fsm.client_ids import Leg
from pairexec.fsm.model import OrderFacts, OrderStatus
from pairexec.fsm.venues.ccxt_secrets import CredentialGuard
from pairexec.fsm.venues.errors import ErrorMeaning
from pairexec.fsm.venues.gateway import ExchangeGateway, Failed
from tests.conftest import FAST, btc_eth
from tests.support import fake_binance
from tests.support.fake_binance import API_KEY, SECRET, FakeBinance, binance_client
from tests.support.stores import sql_store

# the fake server's fixtures, used by name
fake, trades_db = fake_binance.fake, fake_binance.trades_db

SIGNATURE = re.compile(rb"signature=[0-9a-f]{64}")


async def test_keys_never_reach_logs_or_the_trade_db(
    fake: FakeBinance, trades_db: str, tmp_path: Path, caplog
):
    caplog.set_level(logging.DEBUG)
    config = replace(FAST, lookup_attempts=2)
    # errors whose texts get journaled: a lost create reply, then failed signed GET lookups
    fake.fail("create", "ETH/USDT", "drop_after_accept")
    fake.fail("fetch", "ETH/USDT", "maintenance", "http_500")  # the last error is journaled
    exchange = CallRecorder(binance_client(fake.url))  # as the CLI wraps it
    try:
        async with ExecutionEngine(exchange, store=trades_db, config=config) as engine:
            outcome = await engine.execute_pair_trade(btc_eth())
            assert outcome.state is TradeState.UNKNOWN  # the failed lookups are journaled
            [recovered] = await engine.recover()
            assert recovered.state is TradeState.DONE
            causes = " ".join(e.cause for e in await sql_store(engine).events(outcome.trade_id))
    finally:
        await exchange.close()

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "X-MBX-APIKEY" in logged  # ccxt did log its request headers: a key would show
    assert API_KEY not in logged and SECRET not in logged
    assert SIGNATURE.search(logged.encode()) is None and "signature=<redacted>" in logged
    assert "signature=<redacted>" in causes  # a signed GET's URL is in the journal, redacted

    files = sorted(tmp_path.glob("trades.db*"))
    assert files, "no database files"
    for file in files:
        data = file.read_bytes()
        assert API_KEY.encode() not in data and SECRET.encode() not in data, file.name
        assert SIGNATURE.search(data) is None, file.name


def test_a_guard_redacts_its_exchange_credentials_and_only_while_it_lives(caplog):
    class Venue:
        apiKey = "key-0123456789"
        secret = "secret-0123456789"
        uid = ""  # too short to redact: ordinary text stays readable
        logger = logging.getLogger("tests.ccxt_secrets.venue")

    caplog.set_level(logging.DEBUG, logger=Venue.logger.name)
    guard = CredentialGuard(Venue())
    assert guard.redact("k=key-0123456789 s=secret-0123456789") == "k=<redacted> s=<redacted>"
    Venue.logger.debug("headers %s", {"X-MBX-APIKEY": "key-0123456789"})
    assert "key-0123456789" not in caplog.text and "<redacted>" in caplog.text

    del guard
    gc.collect()
    Venue.logger.debug("after key-0123456789")
    assert "after key-0123456789" in caplog.text  # a dropped guard no longer rewrites


async def test_a_key_echoed_in_an_exchange_error_is_redacted_before_it_is_journaled():
    exchange = binance_client("http://127.0.0.1:9")  # never contacted

    async def echoing_create(*args: object) -> None:
        raise RuntimeError(f"adapter bug echoing {API_KEY} and {SECRET}")

    exchange.create_order = echoing_create
    order = OrderFacts(Leg.A, 1, "c" * 32, "BTC/USDT", "buy", 1.0, OrderStatus.INTENT)
    try:
        result = await ExchangeGateway(exchange, FAST).create(order)
    finally:
        await exchange.close()
    assert isinstance(result, Failed) and result.meaning is ErrorMeaning.UNKNOWN
    assert API_KEY not in result.error and SECRET not in result.error
    assert result.error.count("<redacted>") == 2
