"""The schema's revision and its migration to the newest one, as the store opens a database.

Alembic does the migrating (``pairexec.migrations``); this module decides when (once per
database at open, never twice at once) and refuses a database a newer pairexec wrote.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from pairexec.fsm.ports import StoreError
from pairexec.migrations import alembic_config, scripts
from pairexec.persistence.db import connect_args, describe_error
from pairexec.persistence.urls import async_url, driver_url, redacted


def head_revision() -> str:
    """The newest schema revision this pairexec knows."""
    head = scripts().get_current_head()
    assert head is not None
    return head


async def schema_revision(url: str) -> str | None:
    """The database's schema revision (None: empty database), without migrating it."""
    url = async_url(url)
    try:
        engine = create_async_engine(
            driver_url(url), poolclass=NullPool, connect_args=connect_args(url)
        )
    except Exception as exc:
        raise StoreError(f"cannot read database {redacted(url)}: {exc}") from exc
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    except Exception as exc:
        raise StoreError(f"cannot read database {redacted(url)}: {describe_error(exc)}") from exc
    finally:
        await engine.dispose()


MIGRATION_THREAD_LOCK = threading.Lock()


@asynccontextmanager
async def migrating() -> AsyncIterator[None]:
    """Let one store per process migrate at a time.

    Alembic's ``context`` is a process-wide global: two stores migrating at once in one process
    (even on different connections) run each other's migrations. A thread lock, polled so the
    event loop keeps running and a cancelled open never leaves it held, covers every loop and
    thread of the process; other processes are kept out by the database's own lock.
    """
    while not MIGRATION_THREAD_LOCK.acquire(blocking=False):
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        MIGRATION_THREAD_LOCK.release()


MIGRATION_LOCK = 0x70A1_2E8E
"""PostgreSQL advisory lock key held while migrating: processes starting together on an empty
database must not each create the schema (SQLite's BEGIN IMMEDIATE serialises them already)."""


MIGRATION_POLL = 0.05
"""Seconds between tries for the migration lock: another process's migration is waited for
without a limit, but in short statements, each within ``command_timeout``, so that a server
that stopped answering is still noticed."""


def migrate_to_head(connection: Connection) -> None:
    """Upgrade to the newest schema; refuse a database written by a newer pairexec."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL lock_timeout = 0")  # another's migration: wait
        try_lock = f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK})"
        while not connection.exec_driver_sql(try_lock).scalar():
            connection.exec_driver_sql(f"SELECT pg_sleep({MIGRATION_POLL})")
    script = scripts()
    current = MigrationContext.configure(connection).get_current_revision()
    if current == script.get_current_head():
        return  # nothing to upgrade; alembic's upgrade would reload env.py to find that out
    if current is not None:
        try:
            script.get_revision(current)
        except Exception as exc:
            raise StoreError(
                f"the database schema is at revision {current!r}, which this pairexec does not "
                f"know (newest known: {script.get_current_head()!r}): it was written by a newer "
                "pairexec; upgrade pairexec instead of using this database"
            ) from exc
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
