"""Opening the store sets it up in one call on its worker thread: a new store gets the
whole schema, a store of a newer planrun is refused, and several processes creating
the same store at once all get it (the waiting path of a locked brand-new store)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from planrun import run_plan
from planrun.errors import StoreError
from planrun.store import sql
from planrun.store.sqlite import SqliteStore

from .helpers import make_plan, sh_step

pytestmark = pytest.mark.anyio


async def test_a_new_store_has_the_whole_schema_in_wal_mode(state_dir: Path) -> None:
    async with SqliteStore.open(state_dir):
        pass
    with sqlite3.connect(state_dir / "runs.db") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (sql.SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "steps", "attempts", "events", "trigger_state"} <= tables
    # Opened again: nothing to migrate, the same schema.
    result = await run_plan(make_plan([sh_step("s", "exit 0")]), state_dir=state_dir)
    assert result.ok


async def test_a_store_of_a_newer_planrun_is_refused(state_dir: Path) -> None:
    async with SqliteStore.open(state_dir):
        pass
    with sqlite3.connect(state_dir / "runs.db") as db:
        db.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer planrun"):
        async with SqliteStore.open(state_dir):
            pass


#: Opens (creates) the store named in argv[1] and runs one step in it.
OPEN_AND_RUN = """
import sys, anyio
from planrun import run_plan
plan = {"plan_id": sys.argv[2], "steps": [{"id": "s", "command": "true"}]}
assert anyio.run(lambda: run_plan(plan, state_dir=sys.argv[1])).ok
"""


def test_processes_creating_one_store_at_once_all_get_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_AND_RUN, str(state), f"p{i}"])
        for i in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(state / "runs.db") as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE state = 'succeeded'").fetchone() == (4,)
