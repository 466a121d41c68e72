"""Alembic migrations for the pairexec schema, usable from an installed package.

``alembic_config(url)`` builds an alembic Config pointing at this package, so code (the trade
store, the CLI, tests) can run ``alembic.command.upgrade(cfg, "head")`` without an alembic.ini.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

SCRIPT_LOCATION = str(Path(__file__).resolve().parent)


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts, read once a process: they ship inside the package and do not
    change under a running one, and reading them costs milliseconds each time."""
    return ScriptDirectory.from_config(alembic_config())


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this pairexec's migrations. A database stamped with one
    it does not know was written by a newer pairexec: there is nothing to upgrade it to, and
    running an older schema's code on it would misread it.

    Exact ids only: alembic's own lookup also accepts a unique prefix, which a stored
    revision never is."""
    return revision in {s.revision for s in scripts().walk_revisions()}
