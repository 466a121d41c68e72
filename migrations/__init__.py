"""Alembic migrations for the pairexec schema, usable from an installed package.

``alembic_config(url)`` builds an alembic Config pointing at this package, so code (the trade
store, the CLI, tests) can run ``alembic.command.upgrade(cfg, "head")`` without an alembic.ini.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
