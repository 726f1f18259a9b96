"""The store keeps its SQL and its rows: checked on the source, so a breach fails here.

- crash detection asks the store and ``proc``: it runs no SQL, touches no connection
  and signals no process itself;
- no module imports a private name (``_x``) from another planrun module;
- nothing outside ``planrun.store`` reaches a store's connection.
"""

from __future__ import annotations

import ast
from pathlib import Path

import planrun

PACKAGE = Path(planrun.__file__).parent


def _tree(relative: str) -> ast.Module:
    return ast.parse((PACKAGE / relative).read_text())


def _attribute_uses(tree: ast.AST) -> set[str]:
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


def _string_constants(tree: ast.AST) -> list[str]:
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_crash_detection_runs_no_sql_and_kills_nothing_itself() -> None:
    """crash.py: no ``store.db``, no SQL text, no ``os.kill``, no store internals."""
    tree = _tree("crash.py")
    assert not {"db", "kill", "killpg", "execute"} & _attribute_uses(tree)
    assert not {"fetch_dicts", "kill", "sql", "connection"} & _imported_names(tree)
    sql_words = ("SELECT ", "UPDATE ", "INSERT ", "DELETE ")
    assert not [s for s in _string_constants(tree) if any(w in s.upper() for w in sql_words)]


def test_no_module_imports_a_private_name_of_another() -> None:
    """``from .x import _y`` couples a module to another's insides (reader.py did it)."""
    breaches = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or "planrun" in (node.module or "")
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [name for name in private if name != "__version__"]
                if private:
                    breaches.append((path.relative_to(PACKAGE).as_posix(), node.module, private))
    assert breaches == []


def test_no_one_outside_the_store_reaches_its_connection() -> None:
    """Outside ``store/``, no ``.db`` / ``._db`` attribute is used (the store has none to give)."""
    users = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if not path.relative_to(PACKAGE).as_posix().startswith("store/")
        and {"db", "_db"} & _attribute_uses(ast.parse(path.read_text()))
    ]
    assert users == []
