"""Alembic environment: runs on a connection handed in by the trade store, or on a URL.

The store passes its own (already transactional) connection in ``config.attributes``; the
alembic command line (``alembic -x db=URL upgrade head`` or PAIREXEC_DB) gets an engine here.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection, create_engine, make_url, pool
from sqlalchemy.ext.asyncio import create_async_engine

from pairexec.persistence.models import Base
from pairexec.persistence.urls import async_url, is_sqlite, without_lock_timeout

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_async_engine(without_lock_timeout(async_url(url)), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("db")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("PAIREXEC_DB")
    )
    if not url:
        raise SystemExit("no database: pass -x db=URL or set PAIREXEC_DB")
    return url


def _run_on_sqlite(url: str) -> None:
    """SQLite by hand needs no event loop: the stdlib driver does it synchronously."""
    engine = create_engine(make_url(url).set(drivername="sqlite"), poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            _configure_and_run(connection)
    finally:
        engine.dispose()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    _configure_and_run(connection)
elif is_sqlite(_url()):
    _run_on_sqlite(_url())
else:
    asyncio.run(_run_on_url(_url()))
