"""Opening a store must not drop the SQLite locks of connections already open in the
same process (two ``run_plan`` calls in one service, the dashboard's reader beside a
run it started, a child run beside its parent).

POSIX record locks belong to the process and the file: closing any descriptor of
``runs.db`` releases all of them. If opening a store did that, another process's last
connection could take the exclusive lock, checkpoint and delete the WAL while this
process is still reading from it."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from planrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio


async def test_opening_a_second_store_keeps_the_first_connections_locks(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    async with SqliteStore.open(state):
        pass  # the store exists, in WAL mode
    db = state / "runs.db"
    first = sqlite3.connect(db, isolation_level=None)
    try:
        first.execute("BEGIN")
        first.execute("SELECT count(*) FROM runs").fetchall()  # a read transaction
        assert (state / "runs.db-wal").exists()
        async with SqliteStore.open(state):  # a second store in the same process
            pass
        # Another process opens and closes the store: it may checkpoint and remove the
        # WAL only if it is the last connection, which it is not.
        await anyio.run_process(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                "c.execute('SELECT count(*) FROM runs').fetchall(); c.close()",
                str(db),
            ],
            check=True,
        )
        assert (state / "runs.db-wal").exists(), "the WAL was removed under an open reader"
    finally:
        first.close()
