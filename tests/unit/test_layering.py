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
    "model_triggers",
    "triggers",
    "plan",
    "graph",
    "subst",
    "expr",
    "expr_check",
    "policy",
    "events",
    "state",
    "errors",
    "exitcodes",
    "masking",
    "outputs",
    "resume/__init__",
    "resume/decide",
    "resume/instances",
    "fanout",
    "records",
    "summary",
    "retention",
    "placement",
    "digest",
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
        "planrun.resume.load",
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


# --- the import graph (issue 12): imports point down, the CLI stays on the surface ----

#: What the command line may not import: it uses ``planrun.api`` / ``planrun.monitor``
#: (and the pure core) like any other front end.
BELOW_THE_SURFACE = ("planrun.engine", "planrun.executors", "planrun.store")
#: The front ends held to that rule (a dashboard or trigger package joins this list).
FRONT_ENDS = ("planrun.cli", "planrun.ui")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = ["planrun", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that runs, at module level or inside a function (those count:
    an import moved into a function to dodge a cycle is still a cycle); not the ones
    under ``if TYPE_CHECKING:``, which never run."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _planrun_imports(name: str) -> set[str]:
    """The planrun modules that module ``name`` imports, relative imports resolved the
    way Python does (``from . import x`` is the submodule x when there is one)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            targets.update(b for b in bases if b in MODULES)
            continue
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{node.module}" if node.module else anchor
        else:
            base = node.module or ""
        if not base.startswith("planrun"):
            continue
        submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
        targets |= submodules
        if base in MODULES and len(submodules) < len(node.names):
            targets.add(base)
    targets.discard(name)
    return targets


GRAPH = {name: _planrun_imports(name) for name in MODULES}


def _cycle() -> list[str] | None:
    """One import cycle of ``GRAPH`` as a path (first module repeated at the end), or
    None. A package's ``__init__`` importing its own submodules is not a cycle unless a
    submodule imports the package back."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    """Imports point down only: no cycle among planrun's modules, function-level
    imports included."""
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_can_fail() -> None:
    """The cycle finder sees a cycle when there is one (a guard for the test above):
    one real import edge a -> b, with b -> a added, is reported."""
    a = next(name for name in sorted(GRAPH) if GRAPH[name] and not name.endswith("__init__"))
    b = sorted(GRAPH[a])[0]
    saved = GRAPH[b]
    GRAPH[b] = saved | {a}
    try:
        cycle = _cycle()
        assert cycle is not None
        assert cycle[0] == cycle[-1]
    finally:
        GRAPH[b] = saved


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(FRONT_ENDS)))
def test_the_cli_uses_the_library_surface_only(name: str) -> None:
    """The command line imports nothing from the engine, the executors or the store:
    it is a front end on api/monitor like a dashboard or an embedding service."""
    below = sorted(t for t in GRAPH[name] if t.startswith(BELOW_THE_SURFACE))
    assert below == [], f"{name} imports {below}"


def test_modules_and_functions_stay_small() -> None:
    """No module over 500 lines and no function over 60 (issue 12): a newcomer reads
    any of them in one sitting."""
    too_big: list[str] = []
    for name, path in MODULES.items():
        source = path.read_text()
        if (lines := source.count("\n")) > MAX_MODULE_LINES:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []
