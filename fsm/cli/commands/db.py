"""``pairexec db upgrade|current``: the database schema, migrated or reported."""

from __future__ import annotations

import argparse

from pairexec.fsm.cli import context, render
from pairexec.fsm.cli.errors import EXIT_OK, CliError
from pairexec.migrations import known_revision
from pairexec.persistence import head_revision, schema_revision
from pairexec.persistence.urls import redacted


async def run(args: argparse.Namespace) -> int:
    if args.db_command == "current":
        context.require_existing(args.db)
    # Read before anything may write: a database from a newer pairexec is left untouched.
    current = await schema_revision(args.db) if context.may_exist(args.db) else None
    if current is not None and not known_revision(current):
        raise CliError(
            f"{redacted(args.db)} was written by a newer pairexec (revision {current}; this "
            f"one knows up to {head_revision()}): upgrade pairexec"
        )
    if args.db_command == "upgrade":
        async with context.opened(args.db, must_exist=False):  # opening migrates
            current = head_revision()
    render.schema(args.db, current, head_revision())
    return EXIT_OK
