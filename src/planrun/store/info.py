"""What the store runs on, for ``planrun version`` (bug reports)."""

from __future__ import annotations

import sqlite3

__all__ = ["sqlite_library_version"]


def sqlite_library_version() -> str:
    """The SQLite library version the store uses (aiosqlite wraps the stdlib's
    ``sqlite3``, so this is the one linked into this Python)."""
    return sqlite3.sqlite_version
