"""Versions of planrun and of what it runs on, for bug reports (``planrun version``).

Library surface: front ends ask here instead of importing the store themselves.
"""

from __future__ import annotations

import platform
from importlib import metadata

from .store.info import sqlite_library_version

__all__ = ["DEPENDENCIES", "planrun_version", "versions"]

#: The distributions planrun depends on directly (pyproject's ``dependencies``).
DEPENDENCIES = ("anyio", "msgspec", "aiosqlite", "typer", "click", "rich", "pyyaml")


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def planrun_version() -> str:
    """planrun's installed version (``X.Y.Z``, from the distribution's metadata)."""
    return _distribution_version("planrun")


def versions() -> dict[str, str]:
    """planrun, Python, SQLite, every direct dependency and the platform, by name
    (insertion order is the order to print them in)."""
    found = {
        "planrun": planrun_version(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "sqlite": sqlite_library_version(),
    }
    found.update({name: _distribution_version(name) for name in DEPENDENCIES})
    found["platform"] = platform.platform()
    return found
