"""The embedded run store: SQLite (WAL) plus a JSONL mirror of every run's events."""

from .sqlite import RunPaths, SqliteStore

__all__ = ["RunPaths", "SqliteStore"]
