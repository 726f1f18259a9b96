"""The house rules of shared/design.md, checked: the pure core imports no I/O library,
only store/ touches SQLite, only executors/ touch processes, only cli/ touches rich/typer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import planrun

PACKAGE = Path(planrun.__file__).parent
PURE_CORE = [
    "model",
    "plan",
    "graph",
    "subst",
    "policy",
    "events",
    "state",
    "errors",
    "exitcodes",
    "masking",
    "outputs",
    "resume/__init__",
    "resume/decide",
    "records",
]
IO_LIBRARIES = {"anyio", "aiosqlite", "sqlite3", "subprocess", "rich", "typer", "asyncio"}


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (relative ones as 'planrun.x')."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                names.add("planrun." + (node.module or ""))
            elif node.module:
                names.add(node.module)
    return names


def _module_files(module: str) -> list[Path]:
    """The source files of ``module``: its ``.py`` file, or every file of its package."""
    single = PACKAGE / f"{module}.py"
    files = [single] if single.exists() else sorted((PACKAGE / module).rglob("*.py"))
    assert files, f"no module or package planrun.{module}"
    return files


def _roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imports(path)}


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_no_io_library(module: str) -> None:
    """Pure-core modules import none of anyio, sqlite, subprocess, rich or typer."""
    for path in _module_files(module):
        assert _roots(path) & IO_LIBRARIES == set(), path


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_does_not_import_upward(module: str) -> None:
    """The core never imports the engine, the API, adapters or the CLI."""
    upward = {
        "planrun.engine",
        "planrun.api",
        "planrun.ports",
        "planrun.store",
        "planrun.executors",
        "planrun.cli",
        "planrun.recovery",
        "planrun.crash",
    }
    for path in _module_files(module):
        imported = _imports(path)
        assert not {name for name in imported if name.startswith(tuple(upward))}, path


def test_only_store_touches_sqlite_and_only_executors_spawn() -> None:
    """sqlite modules appear only under store/, subprocess only under executors/."""
    for path in PACKAGE.rglob("*.py"):
        roots = _roots(path)
        relative = path.relative_to(PACKAGE).as_posix()
        if roots & {"sqlite3", "aiosqlite"}:
            assert relative.startswith("store/"), relative
        if "subprocess" in roots:
            assert relative.startswith("executors/"), relative
        if roots & {"rich", "typer"}:
            assert relative.startswith("cli/"), relative


def test_engine_knows_no_adapter() -> None:
    """The engine talks to processes and storage only through the ports Protocols."""
    imported = _imports(PACKAGE / "engine.py")
    assert not [
        n
        for n in imported
        if n.startswith(("planrun.store", "planrun.executors", "planrun.cli", "planrun.api"))
    ]
