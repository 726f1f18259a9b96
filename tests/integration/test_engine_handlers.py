"""Run handlers of an embedded ``run_plan``: a cancelled task still runs ``on_cancel``
(shielded), then the cancellation reaches the caller; no process is left."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from planrun import run_plan

from .helpers import live_run_processes, make_plan, poll_until, query, sh_step, unique_run_id

pytestmark = pytest.mark.anyio


async def test_a_cancelled_task_runs_on_cancel_then_propagates(
    state_dir: Path, tmp_path: Path
) -> None:
    """Cancelling the task group around ``run_plan``: the step is stopped, on_cancel and
    on_exit run to the end, the cancellation is not swallowed (nothing after
    ``run_plan`` in the cancelled scope runs), and ``run_finished`` comes last."""
    run_id = unique_run_id("h-cancel")
    marker = tmp_path / "cleaned"
    plan = make_plan([sh_step("sleeper", "sleep 1000")], kill_grace_sec=0.3)
    plan["handlers"] = {
        "on_cancel": [sh_step("cleanup", f'sleep 0.3; cp "$PLANRUN_SUMMARY" {marker}')],
        "on_exit": [sh_step("bye", "exit 0")],
    }
    after: list[str] = []

    async def run() -> None:
        await run_plan(plan, state_dir=state_dir, run_id=run_id)
        after.append("returned")  # must not happen: the cancellation propagates

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            await poll_until(lambda: len(live_run_processes(run_id)) >= 2)
        tg.cancel_scope.cancel()
    assert after == []
    assert json.loads(marker.read_text())["steps"]["sleeper"]["state"] == "cancelled"
    db = state_dir / "runs.db"
    steps = query(db, "SELECT step_id, state FROM steps WHERE run_id = ?", (run_id,))
    assert {s["step_id"]: s["state"] for s in steps} == {
        "sleeper": "cancelled",
        "cleanup": "succeeded",
        "bye": "succeeded",
    }
    (row,) = query(db, "SELECT state, exit_code FROM runs WHERE run_id = ?", (run_id,))
    assert (row["state"], row["exit_code"]) == ("cancelled", 130)
    lines = (state_dir / "runs" / run_id / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "run_finished"
    assert live_run_processes(run_id) == []


async def test_handler_timeout_bounds_a_cancelled_runs_handlers(state_dir: Path) -> None:
    """A hanging on_cancel handler of a cancelled ``run_plan`` is stopped after
    handler_timeout_sec; the caller gets its cancellation, no process is left."""
    run_id = unique_run_id("h-deadline")
    plan = make_plan([sh_step("sleeper", "sleep 1000")], kill_grace_sec=0.3, handler_timeout_sec=1)
    plan["handlers"] = {"on_cancel": [sh_step("hang", "sleep 1000")]}
    with anyio.fail_after(30), anyio.move_on_after(1) as scope:
        await run_plan(plan, state_dir=state_dir, run_id=run_id)
    assert scope.cancelled_caught
    steps = query(
        state_dir / "runs.db", "SELECT step_id, state FROM steps WHERE run_id = ?", (run_id,)
    )
    assert {s["step_id"]: s["state"] for s in steps} == {
        "sleeper": "cancelled",
        "hang": "cancelled",
    }
    assert live_run_processes(run_id) == []
