"""Sub-plans through the embedded API and the store: child runs linked to their parent
(store schema 7, migrated from 6), seen by the monitor API and the dashboard, and
cancelled with a cancelled ``run_plan`` task."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from planrun import monitor, run_plan
from planrun.model import RunState
from planrun.store import sql
from planrun.store.sqlite import SqliteStore
from planrun.ui.app import create_app

from .helpers import sh_step

pytestmark = pytest.mark.anyio


def _alive(pid: int) -> bool:
    """Is ``pid`` a live (non-zombie) process?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _plans(tmp_path: Path, child_script: str = "true") -> Path:
    _write(
        tmp_path / "child.json",
        {"plan_id": "child", "variables": {"N": None}, "steps": [sh_step("work", child_script)]},
    )
    return _write(
        tmp_path / "parent.json",
        {"plan_id": "parent", "steps": [{"id": "sub", "uses": "child.json", "with": {"N": "7"}}]},
    )


async def test_monitor_and_dashboard_show_the_link_both_ways(tmp_path: Path) -> None:
    """``monitor`` gives the child's parent run and step and the attempt's child run;
    the dashboard links the parent's attempt to the child and the child back."""
    state_dir = tmp_path / "state"
    result = await run_plan(_plans(tmp_path), state_dir=state_dir, run_id="mp")
    assert result.ok
    child = await monitor.get_run("mp.sub.1", state_dir=state_dir)
    assert child is not None
    assert (child.parent_run_id, child.parent_step_id) == ("mp", "sub")
    assert child.variables["N"] == "7"
    steps = await monitor.get_steps("mp", state_dir=state_dir)
    assert steps[0].attempts[0].child_run_id == "mp.sub.1"

    app = create_app(state_dir)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as c:
            parent_page = (await c.get("/runs/mp")).text
            child_page = (await c.get("/runs/mp.sub.1")).text
    assert '<a class="child-run" href="/runs/mp.sub.1">child run mp.sub.1</a>' in parent_page
    assert '<a id="run-parent" href="/runs/mp">mp</a>' in child_page


async def test_cancelling_run_plan_cancels_the_child_run(tmp_path: Path) -> None:
    """A cancelled ``run_plan`` task while the child's step runs: both runs end
    ``cancelled`` and the child's process is gone."""
    state_dir = tmp_path / "state"
    fifo = tmp_path / "pid"
    os.mkfifo(fifo)  # the child's step writes its pid here: no polling to wait for it
    plan = _plans(tmp_path, f'echo $$ > "{fifo}"; exec sleep 30')
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_plan(plan, state_dir=state_dir, run_id="cp"))
            pid = int(await anyio.to_thread.run_sync(fifo.read_text))
            assert _alive(pid)
            tg.cancel_scope.cancel()
    assert not _alive(pid)
    for run_id in ("cp", "cp.sub.1"):
        run = await monitor.get_run(run_id, state_dir=state_dir)
        assert run is not None, run_id
        assert run.state is RunState.CANCELLED, run


async def test_a_schema_6_store_migrates_to_7_and_keeps_its_runs(tmp_path: Path) -> None:
    """A store written at schema 6 opens at 7: its runs are still listed, with no
    parent, and new runs can record one."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    db = sqlite3.connect(state_dir / "runs.db")
    for version in range(1, 7):
        for statement in sql.MIGRATIONS[version]:
            db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    db.execute(
        "INSERT INTO runs (run_id, plan_id, state, variables, started_at, owner_pid,"
        " owner_host, step_count) VALUES ('old', 'p', 'succeeded', '{}',"
        " '2026-01-01T00:00:00.000000Z', 1, 'h', 0)"
    )
    db.commit()
    db.close()
    async with SqliteStore.open(state_dir):
        pass
    check = sqlite3.connect(state_dir / "runs.db")
    assert check.execute("PRAGMA user_version").fetchone()[0] == sql.SCHEMA_VERSION == 8
    check.close()
    old = await monitor.get_run("old", state_dir=state_dir)
    assert old is not None
    assert old.parent_run_id is None
    assert (await run_plan(_plans(tmp_path), state_dir=state_dir, run_id="new")).ok
    child = await monitor.get_run("new.sub.1", state_dir=state_dir)
    assert child is not None
    assert child.parent_run_id == "new"


async def test_timeout_sec_bounds_the_child_run(tmp_path: Path) -> None:
    """A ``uses`` step's ``timeout_sec``: the child run is cancelled (its process
    stopped) and the step ends ``timed_out``."""
    state_dir = tmp_path / "state"
    _write(tmp_path / "child.json", {"plan_id": "c", "steps": [sh_step("nap", "exec sleep 30")]})
    plan = _write(
        tmp_path / "parent.json",
        {
            "plan_id": "p",
            "globals": {"kill_grace_sec": 1},
            "steps": [{"id": "sub", "uses": "child.json", "timeout_sec": 1}],
        },
    )
    with anyio.fail_after(20):
        result = await run_plan(plan, state_dir=state_dir, run_id="tp")
    assert result.steps["sub"].state.value == "timed_out"
    child = await monitor.get_run("tp.sub.1", state_dir=state_dir)
    assert child is not None
    assert child.state is RunState.CANCELLED
