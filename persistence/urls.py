"""Database URLs: users write plain ``sqlite:///x.db`` or ``postgresql://``; we run async.

A URL may carry pairexec's own options besides the driver's (``?timeout=`` on SQLite is the
driver's; ``lock_timeout``, ``command_timeout`` and ``connect_timeout`` on PostgreSQL are
ours), and libpq's ``sslmode``, which asyncpg only knows as ``ssl``. ``driver_url`` is the URL
as a driver may see it: drivers refuse options they do not know, and a typo'd or dropped
``sslmode=require`` must never quietly become an unencrypted connection.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_url(url: str) -> str:
    """The async-driver form of ``url`` (already-async URLs pass through)."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(url)
    return is_sqlite(url) and parsed.database in (None, "", ":memory:")


def redacted(url: str) -> str:
    """For messages and logs: never print a password."""
    return make_url(url).render_as_string(hide_password=True)


LOCK_TIMEOUT = 30.0
"""Seconds a write waits for a lock another process holds before it fails (StoreError)."""

COMMAND_TIMEOUT = 60.0
"""Seconds PostgreSQL may take to answer one statement (a lock wait included) before the
store gives up on it (StoreError). Longer than ``LOCK_TIMEOUT``, so that a lock wait fails
with the error that names the lock."""

CONNECT_TIMEOUT = 10.0
"""Seconds to open one PostgreSQL connection (TCP, TLS, authentication)."""

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's ``sslmode`` values; asyncpg takes the same words as its ``ssl`` argument."""

_OURS = ("lock_timeout", "command_timeout", "connect_timeout")
"""PostgreSQL URL options pairexec reads and no driver may see."""


def _query_value(parsed: URL, key: str) -> str | None:
    raw = parsed.query.get(key)
    if raw is None:
        return None
    return raw if isinstance(raw, str) else raw[-1]


def _seconds(url: str, key: str, default: float, *, zero: bool) -> float:
    """The ``?key=SECONDS`` option of ``url`` (``default`` if absent), checked."""
    raw = _query_value(make_url(url), key)
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{key}={raw!r} in the database URL is not a number of seconds") from None
    if not (seconds >= 0 if zero else seconds > 0) or seconds == float("inf"):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{key}={raw!r} in the database URL must be {bound} seconds")
    return seconds


def lock_timeout(url: str) -> float:
    """How long a write on ``url`` waits for another process's lock: ``?timeout=SECONDS`` on
    SQLite (what its driver reads), ``?lock_timeout=SECONDS`` on PostgreSQL (its setting's
    name; ``driver_url`` takes it out before the driver sees it), else ``LOCK_TIMEOUT``. On
    PostgreSQL 0 means no limit, as it does there."""
    return _seconds(url, "timeout" if is_sqlite(url) else "lock_timeout", LOCK_TIMEOUT, zero=True)


def command_timeout(url: str) -> float:
    """``?command_timeout=SECONDS`` (PostgreSQL): how long one statement may go unanswered.
    Unlike ``lock_timeout`` it is measured by the client, so it also ends the wait on a
    server or network that stopped answering; 0 is refused (every statement is bounded)."""
    return _seconds(url, "command_timeout", COMMAND_TIMEOUT, zero=False)


def connect_timeout(url: str) -> float:
    """``?connect_timeout=SECONDS`` (PostgreSQL, libpq's name): opening one connection."""
    return _seconds(url, "connect_timeout", CONNECT_TIMEOUT, zero=False)


def ssl_mode(url: str) -> str | None:
    """The URL's ``sslmode`` (or asyncpg's own ``ssl``), checked; None if it has neither."""
    parsed = make_url(url)
    mode, ssl = _query_value(parsed, "sslmode"), _query_value(parsed, "ssl")
    if mode is not None and ssl is not None:
        raise ValueError("the database URL has both sslmode= and ssl=: give one")
    if mode is not None and mode not in SSL_MODES:
        raise ValueError(
            f"sslmode={mode!r} in the database URL is not one of {', '.join(SSL_MODES)}"
        )
    return mode if mode is not None else ssl


def driver_url(url: str) -> str:
    """``url`` as its driver may see it: pairexec's own options taken out, and on asyncpg
    ``sslmode=MODE`` given as ``ssl=MODE`` (asyncpg has no ``sslmode``; SQLAlchemy hands URL
    options to ``asyncpg.connect`` as they are). SQLite URLs pass through."""
    if is_sqlite(url):
        return url
    parsed = make_url(url)
    mode = ssl_mode(url)  # first: a bad or doubled sslmode fails before anything connects
    drop = [key for key in (*_OURS, "sslmode") if key in parsed.query]
    if not drop:
        return url
    parsed = parsed.difference_update_query(drop)
    if mode is not None and "sslmode" in drop:
        if parsed.get_driver_name() == "asyncpg":
            parsed = parsed.update_query_dict({"ssl": mode})
        else:  # libpq-based drivers (psycopg) take sslmode themselves
            parsed = parsed.update_query_dict({"sslmode": mode})
    return parsed.render_as_string(hide_password=False)


without_lock_timeout = driver_url
"""The former name of ``driver_url`` (``migrations/env.py`` uses it)."""
