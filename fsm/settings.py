"""The config file (``pairexec.toml``): the database, the engine's settings and the venues.

One reader for the bot and for the CLI: ``pairexec.load_config(path)`` and ``pairexec --config
FILE`` both parse the file here and open the venues with ``Settings.open_exchanges``, so a bot
and ``pairexec recover`` see identical exchanges (options, urls, sandbox, credentials).

The file holds the *names* of the environment variables that hold credentials, never the
secrets: a config file is copied, committed and pasted into issues. Parsing reads no
environment variable (``pairexec status`` needs no credentials); opening a venue does.

Every refusal is a ``SettingsError``: one line naming the file and the key. The module's own
imports are light (the CLI parses the file before it loads the engine); ccxt, the paper
exchange and the engine are imported where a venue or an engine is opened.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pairexec.fsm.config import EngineConfig
from pairexec.fsm.pricing import OrderPolicy
from pairexec.fsm.request import InvalidRequest, venue_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from pairexec.fsm.engine import ExecutionEngine

CONFIG_ENV = "PAIREXEC_CONFIG"
DEFAULT_CONFIG = "pairexec.toml"
DEFAULT_DB = "sqlite:///pairexec.db"
PAPER = "paper"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
BACKENDS = ("sqlite", "postgresql")

TOP_KEYS = ("database", "engine", "venues", "alerts")
ALERT_KEYS = ("on_parked",)
VENUE_KEYS = (
    "exchange",
    "options",
    "urls",
    "sandbox",
    "api_key_env",
    "secret_env",
    "password_env",
    "state",
)
SECRET_KEYS = {"apikey", "api_key", "secret", "password", "privatekey", "private_key", "token"}
"""Keys that would hold a credential itself (compared without case)."""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """The config file (or a value for it) is unusable: the message is one line naming the
    file and the key."""


# --- the database --------------------------------------------------------------------------


def check_text(value: str, what: str) -> None:
    """Text that is not valid UTF-8 (lone surrogates from argv or the environment) can be
    neither stored nor printed: refused before it reaches either."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            shown = os.fsencode(value)  # the bytes as they were given
        except UnicodeEncodeError:  # a surrogate no byte stands for: not from argv
            shown = value.encode("utf-8", "backslashreplace")
        raise SettingsError(f"{what} is not valid UTF-8 text: {shown!r}") from None


def database_url(value: str, source: str, base: Path | None = None) -> str:
    """The database URL that ``value`` (from ``source``: the option, the variable or the
    file's key) means; a relative file path is taken from ``base`` (the config file's folder)
    or the working directory.

    A value without ``://`` is a file path when it looks like one: a SQLite suffix or a path
    separator. Anything else is refused rather than guessed at: ``--db garbage`` would
    otherwise create a database file named ``garbage`` in whatever directory this runs in.
    """
    check_text(value, source)
    if not value.strip():
        raise SettingsError(f"{source} is empty: give a database URL or a file path ({DEFAULT_DB})")
    from sqlalchemy.engine import URL, make_url  # here: SQLAlchemy is 0.3 s of imports
    from sqlalchemy.exc import ArgumentError

    if "://" not in value:
        if _looks_like_path(value):
            path = Path(value).expanduser()
            path = (base / path if base is not None else path).absolute()
            # URL.create quotes what a URL would misread: "a?b.db" is not "a" with a query.
            return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)
        raise SettingsError(
            f"{source} {value!r} is neither a database URL nor a file path: give a URL "
            "(sqlite:///trades.db, postgresql://user@host/dbname) or a path ending in "
            f"{', '.join(SQLITE_SUFFIXES)} or containing a '/' (./{value}.db)"
        )
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise SettingsError(
            f"{source} {_without_password(value)!r} is not a valid database URL: "
            f"{_why_unparsable(value, exc)}"
        ) from None
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise SettingsError(
            f"{source} {url.render_as_string(hide_password=True)!r}: pairexec keeps trades in "
            f"SQLite or PostgreSQL, not {backend!r} (sqlite:///trades.db, "
            "postgresql://user@host/dbname)"
        )
    return value  # its options (?timeout=...) are checked by the store, which reads them


def _looks_like_path(value: str) -> bool:
    separators = [s for s in (os.sep, os.altsep, "/") if s]
    return value.lower().endswith(SQLITE_SUFFIXES) or any(s in value for s in separators)


def _without_password(value: str) -> str:
    """An unparsable URL cannot be redacted by SQLAlchemy; its password must not be shown."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)


def _why_unparsable(value: str, exc: Exception) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    try:
        _ = parts.port
    except ValueError:
        port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        return f"its port {port!r} is not a number"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def paper_state_path(db_url: str, venue: str | None = None) -> Path:
    """A paper exchange's own SQLite file: beside the trades database (x.db -> x.paper.db, or
    x.NAME.paper.db for the venue NAME of a config file)."""
    from sqlalchemy.engine import make_url

    from pairexec.persistence.urls import is_memory_sqlite, is_sqlite

    suffix = f".{venue}.paper.db" if venue else ".paper.db"
    if is_sqlite(db_url) and not is_memory_sqlite(db_url):
        db = Path(str(make_url(db_url).database))
        return db.with_name(f"{db.stem}{suffix}")
    return Path(f"pairexec{suffix}")


def open_paper(path: Path, db_url: str, *, chaos: str | None, seed: int, key: str) -> Any:
    """A paper exchange on its state file ``path`` (named by ``key``: the option or the
    file's key), refused in one line when the file cannot be its own: a missing folder, the
    trades database itself, another program's SQLite."""
    import sqlite3

    from pairexec.fsm.paper import ChaosConfig, PaperExchange

    try:
        config = ChaosConfig.parse(chaos, seed=seed) if chaos else None
    except ValueError as exc:
        raise SettingsError(f"bad --chaos: {exc}") from None
    if not path.parent.exists():
        raise SettingsError(f"paper exchange state directory {path.parent} does not exist")
    if _same_file(path, db_url):
        raise SettingsError(
            f"{key} {path} is the trades database itself: the paper exchange needs a file of "
            "its own (default: beside the database, x.paper.db)"
        )
    try:
        return PaperExchange(path, chaos=config, seed=seed)
    except (sqlite3.Error, ValueError) as exc:  # not SQLite, or another program's SQLite
        raise SettingsError(f"paper exchange state {path} is unusable: {exc}") from None


def _same_file(path: Path, db_url: str) -> bool:
    """Whether ``path`` is the SQLite trades database: the paper exchange would refuse it,
    but only after switching its journal mode, and a store sharing it would see the paper
    exchange's tables as its own."""
    from sqlalchemy.engine import make_url

    from pairexec.persistence.urls import is_memory_sqlite, is_sqlite

    if not is_sqlite(db_url) or is_memory_sqlite(db_url):
        return False
    db = Path(str(make_url(db_url).database))
    if path.exists() and db.exists():
        return os.path.samefile(path, db)
    return path.resolve() == db.resolve()


# --- the file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueSpec:
    """One ``[venues.NAME]`` table, checked."""

    name: str
    exchange: str
    """``paper`` or a ccxt exchange id."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """ccxt's ``options`` (``defaultType``, ``fetchCurrencies``...)."""
    urls: Mapping[str, Any] = field(default_factory=dict)
    """Merged into the ccxt exchange's ``urls`` (a proxy, a private deployment)."""
    sandbox: bool = False
    api_key_env: str | None = None
    secret_env: str | None = None
    password_env: str | None = None
    state: Path | None = None
    """The paper exchange's state file (paper only; default beside the trades database)."""

    def credentials(self, environ: Mapping[str, str]) -> dict[str, str]:
        """ccxt's credential keys, read from the named variables now (never stored)."""
        found = {}
        for ccxt_key, env in (
            ("apiKey", self.api_key_env),
            ("secret", self.secret_env),
            ("password", self.password_env),
        ):
            if env is None:
                continue
            if env not in environ:
                raise SettingsError(
                    f"venues.{self.name}: the environment variable {env} is not set "
                    f"(named by {_env_key(ccxt_key)})"
                )
            found[ccxt_key] = environ[env]
        return found

    def open(
        self,
        db_url: str,
        *,
        chaos: str | None = None,
        seed: int = 0,
        environ: Mapping[str, str] | None = None,
    ) -> Any:
        """The exchange object: each call a new one (a ccxt instance has its own throttler,
        and rate limits are per venue)."""
        if self.exchange == PAPER:
            path = self.state if self.state is not None else paper_state_path(db_url, self.name)
            return open_paper(path, db_url, chaos=chaos, seed=seed, key=f"venues.{self.name}.state")
        import ccxt.async_support as ccxt_async

        params: dict[str, Any] = {"enableRateLimit": True, "options": dict(self.options)}
        params.update(self.credentials(os.environ if environ is None else environ))
        exchange = getattr(ccxt_async, self.exchange)(params)
        if self.sandbox:  # first: ccxt's sandbox mode replaces urls["api"] with urls["test"]
            exchange.set_sandbox_mode(True)
        if self.urls:
            exchange.urls = _merged(exchange.urls, self.urls)
        return exchange


def _env_key(ccxt_key: str) -> str:
    return {"apiKey": "api_key_env", "secret": "secret_env", "password": "password_env"}[ccxt_key]


def _merged(base: Any, extra: Mapping[str, Any]) -> Any:
    """``extra`` over ``base``, dict by dict: ``urls.api.public`` leaves ``urls.api.private``."""
    if not isinstance(base, dict):
        return dict(extra)
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Settings:
    """What the config file says (or nothing, without one)."""

    database_url: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    venues: Mapping[str, VenueSpec] = field(default_factory=dict)
    source: Path | None = None
    on_parked: str | None = None
    """``[alerts] on_parked``: a shell command run for each trade that ends PARKED or
    unresolved (``pairexec.fsm.alerts``)."""

    def open_exchanges(
        self, db_url: str | None = None, *, chaos: str | None = None, seed: int = 0
    ) -> dict[str, Any]:
        """Every venue, opened: venue name -> exchange (``ExecutionEngine``'s mapping).
        ``db_url``: the trades database, beside which paper venues keep their state."""
        url = db_url or self.database_url or DEFAULT_DB
        where = f"{self.source}: " if self.source else ""
        opened: dict[str, Any] = {}
        try:
            for name, spec in self.venues.items():
                opened[name] = spec.open(url, chaos=chaos, seed=seed)
        except (SettingsError, ValueError) as exc:
            raise SettingsError(f"{where}{exc}") from None
        return opened

    @asynccontextmanager
    async def open_engine(self, store: Any = None) -> AsyncIterator[ExecutionEngine]:
        """The engine the CLI builds from this file, started: every venue (by name), the
        file's database (or ``store``) and engine settings. Closes the engine, then the
        exchanges."""
        from pairexec.fsm.alerts import command_alert
        from pairexec.fsm.engine import ExecutionEngine

        store = store if store is not None else self.database_url
        if store is None:
            raise SettingsError(f"{self.source or 'the settings'}: database: not set")
        if not self.venues:
            raise SettingsError(f"{self.source or 'the settings'}: venues: none defined")
        exchanges = self.open_exchanges(store if isinstance(store, str) else None)
        alert = None if self.on_parked is None else command_alert(self.on_parked)
        engine = ExecutionEngine(exchanges, store=store, config=self.engine, on_attention=alert)
        try:
            await engine.start()
            yield engine
        finally:
            await engine.close()
            for exchange in exchanges.values():
                close = getattr(exchange, "close", None)
                if close is not None:
                    await close()


def find_config(given: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: ``given`` (``--config``), else ``PAIREXEC_CONFIG``, else
    ``./pairexec.toml`` if it exists, else None. A file named but missing is an error: a
    typo must not quietly trade on the defaults."""
    environ = os.environ if environ is None else environ
    for value, source in ((given, "--config"), (environ.get(CONFIG_ENV), CONFIG_ENV)):
        if value is not None:
            check_text(value, source)
            path = Path(value).expanduser()
            if not path.is_file():
                raise SettingsError(f"{source} {value}: no such file")
            return path
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Settings:
    """The settings of ``path`` (None: ``PAIREXEC_CONFIG``, else ``./pairexec.toml``)."""
    found = find_config(None if path is None else os.fspath(path))
    if found is None:
        raise SettingsError(
            f"no config file: give a path, set {CONFIG_ENV} or create ./{DEFAULT_CONFIG}"
        )
    return read(found)


def read(path: Path) -> Settings:
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: unreadable: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(data, path)
    except SettingsError as exc:
        raise SettingsError(f"{path}: {exc}") from None


def parse(data: Mapping[str, Any], source: Path | None = None) -> Settings:
    """The settings a parsed TOML document holds; errors name the key (without the file)."""
    for key in data:
        if key not in TOP_KEYS:
            raise SettingsError(f"{key}: unknown key (known: {', '.join(TOP_KEYS)})")
    base = source.parent if source is not None else None
    db = data.get("database")
    if db is not None and not isinstance(db, str):
        raise SettingsError(f"database: must be a URL or a file path, got {db!r}")
    url = None if db is None else database_url(db, "database", base)
    engine = _engine(_table(data, "engine"))
    venues_table = _table(data, "venues")
    venues = {name: _venue(name, value, base) for name, value in venues_table.items()}
    alerts = _table(data, "alerts")
    for key in alerts:
        if key not in ALERT_KEYS:
            raise SettingsError(f"alerts.{key}: unknown key (known: {', '.join(ALERT_KEYS)})")
    on_parked = alerts.get("on_parked")
    if on_parked is not None and (not isinstance(on_parked, str) or not on_parked.strip()):
        raise SettingsError(f"alerts.on_parked: must be a shell command, got {on_parked!r}")
    return Settings(url, engine, venues, source, on_parked)


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SettingsError(f"{key}: must be a table ([{key}]), got {value!r}")
    return value


def _engine(table: Mapping[str, Any]) -> EngineConfig:
    known = [f.name for f in fields(EngineConfig)]
    for key in table:
        if key not in known:
            raise SettingsError(f"engine.{key}: unknown key (known: {', '.join(known)})")
    values = dict(table)
    for leg in POLICIES:  # [engine.leg_b]: kind = "limit_ioc", max_slippage_bps = 30, ...
        if leg in values:
            values[leg] = _policy(leg, values[leg])
    try:
        return EngineConfig(**values)
    except ValueError as exc:
        message = str(exc)
        raise SettingsError(f"engine.{_first_named(message, table)}: {message}") from None


def _first_named(message: str, table: Mapping[str, Any]) -> str:
    """The key of ``table`` an error message is about: the first it names (else the table's
    first key)."""
    named = sorted((k for k in table if k in message), key=message.index)
    return (named or list(table) or ["?"])[0]


POLICIES = ("leg_a", "leg_b", "unwind")
"""The engine's order policies: a table each in the file."""


def _policy(leg: str, table: Any) -> OrderPolicy:
    if not isinstance(table, dict):
        raise SettingsError(f"engine.{leg}: must be a table ([engine.{leg}]), got {table!r}")
    known = [f.name for f in fields(OrderPolicy)]
    for key in table:
        if key not in known:
            raise SettingsError(f"engine.{leg}.{key}: unknown key (known: {', '.join(known)})")
    try:
        return OrderPolicy(**table)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise SettingsError(f"engine.{leg}.{_first_named(message, table)}: {message}") from None


def _venue(name: str, table: Any, base: Path | None) -> VenueSpec:
    where = f"venues.{name}"
    try:
        venue_name(where, name)
    except InvalidRequest as exc:
        raise SettingsError(str(exc)) from None
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: must be a table ([{where}]), got {table!r}")
    _refuse_secrets(table, where)
    for key in table:
        if key not in VENUE_KEYS:
            raise SettingsError(f"{where}.{key}: unknown key (known: {', '.join(VENUE_KEYS)})")
    exchange = table.get("exchange")
    if not isinstance(exchange, str):
        raise SettingsError(f"{where}.exchange: give 'paper' or a ccxt exchange id")
    if exchange != PAPER:
        import ccxt  # here: only a file naming a ccxt venue pays for the import

        if exchange not in ccxt.exchanges:
            raise SettingsError(f"{where}.exchange: unknown ccxt exchange {exchange!r}")
        if "state" in table:
            raise SettingsError(f"{where}.state: only a paper venue has a state file")
    for key in ("options", "urls"):
        if not isinstance(table.get(key, {}), dict):
            raise SettingsError(f"{where}.{key}: must be a table, got {table[key]!r}")
    sandbox = table.get("sandbox", False)
    if not isinstance(sandbox, bool):
        raise SettingsError(f"{where}.sandbox: must be true or false, got {sandbox!r}")
    envs: dict[str, str | None] = {}
    for key in ("api_key_env", "secret_env", "password_env"):
        value = table.get(key)
        if value is not None and not (isinstance(value, str) and ENV_NAME.fullmatch(value)):
            raise SettingsError(
                f"{where}.{key}: must be the name of an environment variable, got {value!r}"
            )
        envs[key] = value
    state = table.get("state")
    if state is not None and not isinstance(state, str):
        raise SettingsError(f"{where}.state: must be a file path, got {state!r}")
    state_path = None
    if state is not None:
        state_path = Path(state).expanduser()
        state_path = base / state_path if base is not None else state_path
    return VenueSpec(
        name,
        exchange,
        dict(table.get("options", {})),
        dict(table.get("urls", {})),
        sandbox,
        envs["api_key_env"],
        envs["secret_env"],
        envs["password_env"],
        state_path,
    )


def _refuse_secrets(table: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        if key.lower() in SECRET_KEYS:
            raise SettingsError(
                f"{where}.{key}: a secret does not belong in the file: put the name of the "
                "environment variable in api_key_env / secret_env / password_env"
            )
        if isinstance(value, dict):
            _refuse_secrets(value, f"{where}.{key}")
