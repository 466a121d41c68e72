"""The config file: what it holds, how each mistake in it is named, what it never holds."""

from __future__ import annotations

from pathlib import Path

import pytest

import pairexec
from pairexec.fsm.paper import PaperExchange
from pairexec.fsm.settings import SettingsError, find_config, load_config

TWO_VENUES = """
database = "trades.db"

[engine]
lease_seconds = 12.5
hedge_basis = "filled"

[venues.spot]
exchange = "paper"

[venues.okx]
exchange = "okx"
sandbox = true
options = { defaultType = "swap", fetchCurrencies = false }
urls = { api = { rest = "http://127.0.0.1:9/okx" } }
api_key_env = "TEST_OKX_KEY"
secret_env = "TEST_OKX_SECRET"
password_env = "TEST_OKX_PASS"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pairexec.toml"
    path.write_text(text)
    return path


def test_a_file_with_two_venues_is_read_whole(tmp_path):
    settings = load_config(write(tmp_path, TWO_VENUES))

    assert settings.database_url == f"sqlite:///{tmp_path / 'trades.db'}"  # beside the file
    assert settings.engine.lease_seconds == 12.5 and settings.engine.hedge_basis == "filled"
    assert list(settings.venues) == ["spot", "okx"]
    okx = settings.venues["okx"]
    assert okx.exchange == "okx" and okx.sandbox
    assert okx.options == {"defaultType": "swap", "fetchCurrencies": False}
    assert okx.api_key_env == "TEST_OKX_KEY"


async def test_each_venue_opens_as_its_own_exchange_with_the_file_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OKX_KEY", "k-123")
    monkeypatch.setenv("TEST_OKX_SECRET", "s-456")
    monkeypatch.setenv("TEST_OKX_PASS", "p-789")
    settings = load_config(write(tmp_path, TWO_VENUES))

    opened = settings.open_exchanges()
    try:
        spot, okx = opened["spot"], opened["okx"]
        assert isinstance(spot, PaperExchange)
        assert okx.id == "okx" and okx.options["defaultType"] == "swap"
        assert okx.options["fetchCurrencies"] is False
        assert okx.urls["api"]["rest"] == "http://127.0.0.1:9/okx"  # kept over sandbox's urls
        assert okx.isSandboxModeEnabled
        assert (okx.apiKey, okx.secret, okx.password) == ("k-123", "s-456", "p-789")
        assert (tmp_path / "trades.spot.paper.db").exists()  # a state file per paper venue
    finally:
        await opened["okx"].close()


def test_the_secrets_themselves_are_never_in_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OKX_KEY", "k-123")
    settings = load_config(write(tmp_path, TWO_VENUES))

    assert "k-123" not in repr(settings)  # only the variables' names are kept


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("databse = 'x.db'", "databse: unknown key"),
        ("[engine]\nlease_secs = 3", "engine.lease_secs: unknown key"),
        ("[engine]\nlease_seconds = 'x'", "engine.lease_seconds: lease_seconds must be a number"),
        ("[venues.a]\nexchange = 'okxx'", "venues.a.exchange: unknown ccxt exchange 'okxx'"),
        ("[venues.a]\nexchange = 'okx'\napiKey = 'abc'", "venues.a.apiKey: a secret does not"),
        (
            "[venues.a]\nexchange = 'okx'\noptions = { secret = 'abc' }",
            "venues.a.options.secret: a secret does not",
        ),
        ("[venues.a]\nexchange = 'okx'\nsandbox = 'yes'", "venues.a.sandbox: must be true or"),
        ("[venues.a]\nexchange = 'okx'\nstate = 'x.db'", "venues.a.state: only a paper venue"),
        ("[venues.'a@b']\nexchange = 'paper'", "venues.a@b must be a venue name"),
        ("[venues.a]\nexchange = 'okx'\napi_key_env = 'no such'", "venues.a.api_key_env: must"),
        ("database = 'garbage'", "database 'garbage' is neither a database URL nor a file path"),
        ("[engine", "not valid TOML"),
        ("[engine.leg_b]\nkind = 'limit'", "engine.leg_b.kind: kind must be 'market' or"),
        ("[engine.leg_b]\nmax_slipage_bps = 3", "engine.leg_b.max_slipage_bps: unknown key"),
        ("[engine]\nleg_a = 'limit_ioc'", "engine.leg_a: must be a table"),
        (
            "[engine.unwind]\nkind = 'limit_ioc'\nmax_slippage_bps = 50\ncap_bps = 10",
            "engine.unwind.cap_bps: cap_bps must be at least",
        ),
    ],
)
def test_a_mistake_in_the_file_is_one_line_naming_the_file_and_key(tmp_path, text, error):
    path = write(tmp_path, text)

    with pytest.raises(SettingsError) as caught:
        load_config(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: {error}")
    assert "\n" not in message


def test_the_order_policies_are_tables_of_the_engine(tmp_path):
    path = write(
        tmp_path,
        "[engine.leg_b]\nkind = 'limit_ioc'\nmax_slippage_bps = 30\nwiden_bps = 20\n"
        "after_cap = 'park'\n[engine.unwind]\nkind = 'limit_ioc'\n",
    )

    engine = load_config(path).engine

    assert engine.leg_b == pairexec.OrderPolicy(
        "limit_ioc", max_slippage_bps=30, widen_bps=20, after_cap="park"
    )
    assert engine.unwind == pairexec.OrderPolicy("limit_ioc")
    assert engine.leg_a == pairexec.OrderPolicy()  # market, as by default


def test_a_credential_variable_that_is_not_set_is_named_when_the_venue_opens(tmp_path):
    settings = load_config(write(tmp_path, TWO_VENUES))  # parsing reads no variable

    with pytest.raises(SettingsError, match="environment variable TEST_OKX_KEY is not set"):
        settings.open_exchanges()


def test_which_file_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config(None, environ={}) is None  # none: the defaults
    write(tmp_path, "")
    assert find_config(None, environ={}) == Path("pairexec.toml")  # ./pairexec.toml
    other = tmp_path / "other.toml"
    other.write_text("")
    assert find_config(None, environ={"PAIREXEC_CONFIG": str(other)}) == other
    assert find_config(str(other), environ={"PAIREXEC_CONFIG": "nope.toml"}) == other
    with pytest.raises(SettingsError, match=r"--config missing\.toml: no such file"):
        find_config("missing.toml", environ={})


async def test_a_bot_gets_the_engine_of_the_file_from_pairexec_load_config(tmp_path):
    path = write(
        tmp_path,
        'database = "trades.db"\n[venues.a]\nexchange = "paper"\n[venues.b]\nexchange = "paper"',
    )

    async with pairexec.load_config(path).open_engine() as engine:
        outcome = await engine.execute_pair_trade(
            pairexec.PairTradeRequest(
                "BTC/USDT", "buy", 0.01, "BTC/USDT", "sell", venue_x="a", venue_y="b"
            )
        )
        orders = (await engine.store.load(outcome.trade_id)).orders

    assert outcome.state is pairexec.TradeState.DONE
    assert engine.venue_names == ("a", "b")
    assert [o.venue for o in orders] == ["a", "b"]
