"""What the writer (:mod:`.sqlite`) and the readers (:mod:`.reader`) share about a
connection to ``runs.db``: sqlite errors turned into :class:`StoreError`, rows as
dicts, one ``BEGIN IMMEDIATE`` transaction, WAL mode and schema migrations.

sqlite errors become :class:`~planrun.errors.StoreError` through :func:`translated`
and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite
import anyio

from ..errors import StoreError
from . import sql

__all__ = [
    "enable_wal",
    "fetch_dicts",
    "immediate",
    "immediate_sync",
    "in_worker",
    "migrate",
    "set_up",
    "translated",
]

#: Query parameters: positional (``?``) or named (``:name``).
Params = tuple[Any, ...] | Mapping[str, Any]
T = TypeVar("T")


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise an sqlite error inside as ``StoreError`` saying ``what`` failed."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"run store: {what} failed: {exc}") from exc


async def fetch_dicts(
    db: aiosqlite.Connection, query: str, params: Params = ()
) -> list[dict[str, Any]]:
    """Run ``query`` and return its rows as dicts by column name (the cursor is closed
    on return)."""
    async with db.execute(query, params) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


@contextlib.asynccontextmanager
async def immediate(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` around the body (a ``return`` inside
    commits); rolled back if the body raises or is cancelled."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
        await db.execute("COMMIT")
    except BaseException:
        # A cancelled await does not cancel the statement (it may have COMMITted):
        # roll back only what is still open, and never replace the original error.
        with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                await db.execute("ROLLBACK")
        raise


async def in_worker(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` with the connection on ``db``'s own worker thread, as *one* queued call.

    For a transaction of many statements: every awaited statement is a round trip
    through the worker's queue and a wake-up of the event loop, and the Python work
    around the statements (encoding, binding) runs off the loop too. aiosqlite has no
    public call for this; ``_execute`` is the call every one of its methods queues
    (aiosqlite is pinned to 0.22.x in pyproject.toml). Like any statement, cancelling
    the await does not stop ``fn``.
    """
    return await db._execute(lambda: fn(db._conn))  # type: ignore[no-untyped-call,no-any-return]


@contextlib.contextmanager
def immediate_sync(conn: sqlite3.Connection) -> Iterator[None]:
    """:func:`immediate` for code on the worker thread (:func:`in_worker`)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


async def set_up(db: aiosqlite.Connection, pragmas: Sequence[str]) -> None:
    """The writer's set-up of a connection: ``pragmas``, WAL mode, the schema brought
    to ``SCHEMA_VERSION`` — in one call on the worker thread (each awaited statement
    is a round trip through its queue: about 40 of them for a new store, 8 for an
    existing one). A brand-new store that another process is creating at the same
    moment takes the waiting path instead (:func:`enable_wal`, :func:`migrate`)."""
    if not await in_worker(db, functools.partial(_set_up, pragmas=pragmas)):
        await enable_wal(db)
        await migrate(db)


def _set_up(conn: sqlite3.Connection, pragmas: Sequence[str]) -> bool:
    """On the worker thread: see :func:`set_up`; False if the switch to WAL found the
    database locked (nothing else was done then but the pragmas)."""
    for pragma in pragmas:
        conn.execute(pragma)
    try:
        row = conn.execute(sql.ENABLE_WAL).fetchone()
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    _check_wal(row)
    _migrate(conn)
    return True


def _check_wal(row: Any) -> None:
    mode = str(row[0]) if row else "?"
    if mode.lower() != "wal":
        raise StoreError(f"the run store cannot use WAL mode (journal_mode={mode})")


async def enable_wal(db: aiosqlite.Connection) -> None:
    """Switch the database to WAL, waiting out other connections' locks.

    Changing the journal mode of a fresh database needs an exclusive lock, and SQLite
    reports SQLITE_BUSY at once for it, ignoring the busy timeout. Another process that
    is creating the same store holds that lock only briefly, so retry (with backoff) for
    as long as the busy timeout would have waited. Once the file is in WAL mode the
    pragma needs no lock, so this loop only ever runs on a brand-new store.
    """
    deadline = anyio.current_time() + sql.BUSY_TIMEOUT_SEC
    delay = 0.005
    while True:
        try:
            cursor = await db.execute(sql.ENABLE_WAL)
            row = await cursor.fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or anyio.current_time() + delay > deadline:
                raise
        else:
            _check_wal(row)
            return
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.2)


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (``StoreError`` if it is newer), in one
    call on the worker thread."""
    await in_worker(db, _migrate)


def _migrate(conn: sqlite3.Connection) -> None:
    version = _user_version(conn)
    if version > sql.SCHEMA_VERSION:
        raise StoreError(
            f"the run store was written by a newer planrun (schema {version}); upgrade planrun"
        )
    if version < sql.SCHEMA_VERSION:
        # One transaction; the version is read again inside it because another
        # process may have created the schema meanwhile.
        with immediate_sync(conn):
            for step in range(_user_version(conn) + 1, sql.SCHEMA_VERSION + 1):
                for statement in sql.MIGRATIONS[step]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step}")
