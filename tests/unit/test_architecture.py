"""Who may import whom (docs/architecture.md), checked on the source: a layer that reaches up
or sideways fails here, not in review.

Every import counts, a deferred one inside a function too; the one deliberate exception is
listed with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT

SOURCES = {
    "fsm": "pairexec.fsm",
    "persistence": "pairexec.persistence",
    "migrations": "pairexec.migrations",
}

DOMAIN = {
    "states",
    "machine",
    "model",
    "request",
    "config",
    "markets",
    "pricing",
    "exits",
    "client_ids",
    "decide",
    "ports",
    "owners",
    "crashpoints",
    "diagram",
}
"""The modules of ``pairexec.fsm`` that make up the domain: pure, no I/O, no driver."""

MAY_USE: dict[str, set[str]] = {
    "domain": {"domain", "transitions"},
    "persistence": {"domain", "persistence", "sqlalchemy", "alembic", "asyncpg"},
    "venues": {"domain", "venues", "ccxt"},
    "paper": {"domain", "venues", "paper", "ccxt"},
    "engine": {"domain", "venues", "engine", "prometheus_client"},
    # sim: asyncpg to create, empty and read its scenarios' databases on a PostgreSQL server
    # (as it reads its SQLite ones with sqlite3), beside the store under test
    "sim": {
        *("domain", "venues", "paper", "engine", "persistence", "sim"),
        *("ccxt", "sqlalchemy", "asyncpg"),
    },
    "settings": {"domain", "paper", "engine", "persistence", "settings", "ccxt", "sqlalchemy"},
    "cli": {
        *("public", "domain", "venues", "paper", "engine", "persistence", "sim", "cli"),
        "settings",
        *("ccxt", "sqlalchemy", "alembic", "rich"),
    },
}
"""Each layer and what it may import: layers below it, and the libraries its job needs."""

EXCEPTIONS = {
    ("pairexec.fsm.engine", "pairexec.persistence.store"): (
        "ExecutionEngine(exchange, 'sqlite:///trades.db') builds the SQL store for a URL, in a "
        "function: the engine's module itself needs only the Store port"
    ),
}

LIBRARIES = {
    *("ccxt", "sqlalchemy", "alembic", "asyncpg", "transitions", "rich", "aiosqlite"),
    "prometheus_client",
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] in (["pairexec", "persistence"], ["pairexec", "migrations"]):
        return "persistence"
    if parts[:2] != ["pairexec", "fsm"] or len(parts) < 3:
        return None  # the public pairexec/__init__, or pairexec.fsm's empty __init__
    if parts[2] in DOMAIN:
        return "domain"
    if parts[2] in ("events", "metrics", "alerts", "steps"):  # beside the engine, for it
        return "engine"
    if parts[2] in ("venues", "paper", "engine", "sim", "cli", "settings"):
        return parts[2]
    raise AssertionError(f"{module} is in no layer: add it to one (and to the docs)")


def modules() -> Iterator[tuple[str, Path]]:
    for folder, package in SOURCES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


KNOWN = {name for name, _ in modules()}


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            found = [m for m in submodules if m in KNOWN]
            yield from found or [node.module]


def violations(module: str, path: Path) -> Iterator[str]:
    layer = layer_of(module)
    if layer is None:
        return
    allowed = MAY_USE[layer]
    for target in imports(path):
        if (module, target) in EXCEPTIONS:
            continue
        top = target.split(".")[0]
        if top in LIBRARIES:
            used = top
        elif top == "pairexec":
            used = layer_of(target) or "public"
        else:
            continue  # the standard library
        if used not in allowed:
            yield f"{module} ({layer}) imports {target} ({used})"


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v))
def test_each_module_imports_only_what_its_layer_may(module: str, path: Path):
    assert list(violations(module, path)) == []


def test_the_check_sees_a_domain_module_reaching_for_a_driver(tmp_path: Path):
    """A checker that lets everything through would pass the test above too."""
    planted = tmp_path / "decide.py"
    planted.write_text(
        "from pairexec.persistence.store import TradeStore\n"
        "def f():\n    import ccxt\n"
        "from pairexec.fsm import engine\n"
    )
    found = sorted(violations("pairexec.fsm.decide", planted))
    assert found == [
        "pairexec.fsm.decide (domain) imports ccxt (ccxt)",
        "pairexec.fsm.decide (domain) imports pairexec.fsm.engine (engine)",
        "pairexec.fsm.decide (domain) imports pairexec.persistence.store (persistence)",
    ]


def test_the_exception_is_still_needed():
    """An exception nobody uses any more would silently allow the import again."""
    for module, target in EXCEPTIONS:
        path = next(p for name, p in modules() if name == module)
        assert target in set(imports(path)), f"drop the exception {module} -> {target}"
