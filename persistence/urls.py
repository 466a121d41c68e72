"""Database URLs: users write plain ``sqlite:///x.db`` or ``postgresql://``; we run async."""

from __future__ import annotations

from sqlalchemy.engine import make_url

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


def lock_timeout(url: str) -> float:
    """How long a write on ``url`` waits for another process's lock: ``?timeout=SECONDS`` on
    SQLite (what its driver reads), ``?lock_timeout=SECONDS`` on PostgreSQL (its setting's
    name; ``without_lock_timeout`` takes it out before the driver sees it), else
    ``LOCK_TIMEOUT``. On PostgreSQL 0 means no limit, as it does there."""
    key = "timeout" if is_sqlite(url) else "lock_timeout"
    raw = make_url(url).query.get(key, LOCK_TIMEOUT)
    try:
        seconds = float(raw if isinstance(raw, (str, float, int)) else raw[-1])
    except ValueError:
        raise ValueError(f"{key}={raw!r} in the database URL is not a number of seconds") from None
    if not seconds >= 0:
        raise ValueError(f"{key}={raw!r} in the database URL must be >= 0 seconds")
    return seconds


def without_lock_timeout(url: str) -> str:
    """``url`` without pairexec's own ``lock_timeout`` option (drivers refuse unknown ones)."""
    parsed = make_url(url)
    if "lock_timeout" not in parsed.query:
        return url
    return parsed.difference_update_query(["lock_timeout"]).render_as_string(hide_password=False)
