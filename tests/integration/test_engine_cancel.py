"""Cancelling ``run_plan`` from the embedding code: processes stop, the run is recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.events import RetryScheduled

from .helpers import (
    EventLog,
    live_run_processes,
    make_plan,
    poll_until,
    query,
    sh_step,
    unique_run_id,
)

pytestmark = pytest.mark.anyio


def _long_plan() -> dict[str, Any]:
    return make_plan(
        [
            sh_step("sleeper", "sleep 1000"),
            sh_step("tree", "sleep 1000 & sleep 1000"),
            sh_step("stubborn", 'trap "" TERM; sleep 1000'),
            sh_step("retrying", "exit 1", retries=3, retry_delay_sec=100),
            sh_step("pending", "exit 0", depends_on=["sleeper"]),
            sh_step("cleanup", "exit 0", depends_on=["tree"], when="all_done"),
        ],
        max_concurrency=8,
        kill_grace_sec=0.3,
    )


def _check_recorded_cancelled(state_dir: Path, run_id: str) -> None:
    db = state_dir / "runs.db"
    (run,) = query(db, "SELECT * FROM runs WHERE run_id = ?", (run_id,))
    assert run["state"] == "cancelled"
    assert run["exit_code"] == 130
    assert run["ended_at"] is not None
    steps = query(db, "SELECT step_id, state, reason FROM steps WHERE run_id = ?", (run_id,))
    assert {s["step_id"]: s["state"] for s in steps} == dict.fromkeys(
        ["sleeper", "tree", "stubborn", "retrying", "pending", "cleanup"], "cancelled"
    )
    assert all(s["reason"] == "run cancelled" for s in steps)
    attempts = query(
        db,
        "SELECT step_id, attempt, state FROM attempts WHERE run_id = ? ORDER BY step_id, attempt",
        (run_id,),
    )
    assert [(a["step_id"], a["attempt"], a["state"]) for a in attempts] == [
        ("retrying", 1, "failed"),
        ("sleeper", 1, "cancelled"),
        ("stubborn", 1, "cancelled"),
        ("tree", 1, "cancelled"),
    ]
    lines = (state_dir / "runs" / run_id / "events.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["type"] == "run_finished"
    assert last["state"] == "cancelled"
    assert last["exit_code"] == 130
    assert sum(json.loads(line)["type"] == "run_finished" for line in lines) == 1
    bodies = query(db, "SELECT body FROM events WHERE run_id = ? ORDER BY seq", (run_id,))
    assert [b["body"] for b in bodies] == lines


async def test_move_on_after_cancels_the_run(state_dir: Path) -> None:
    """A run_plan cancelled by move_on_after stops every process and is recorded cancelled."""
    log = EventLog()
    run_id = unique_run_id("moved-on")
    with anyio.move_on_after(1) as scope:
        await run_plan(_long_plan(), state_dir=state_dir, run_id=run_id, on_event=log)
    assert scope.cancelled_caught
    assert live_run_processes(run_id) == []
    _check_recorded_cancelled(state_dir, run_id)
    assert log.events[-1].seq == len(log.events)


async def test_cancelling_the_task_group_stops_live_processes(state_dir: Path) -> None:
    """Processes seen alive mid-run are gone once the task group running the plan is
    cancelled, and the cleanup step does not run."""
    results: list[Any] = []
    run_id = unique_run_id("tg-cancel")

    retry_due = anyio.Event()

    def seen(event: Any) -> None:
        if isinstance(event, RetryScheduled):
            retry_due.set()

    async def run() -> None:
        results.append(
            await run_plan(_long_plan(), state_dir=state_dir, run_id=run_id, on_event=seen)
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            # sleeper, tree (sh + 2 sleeps), stubborn (sh + sleep)
            await poll_until(lambda: len(live_run_processes(run_id)) >= 6)
            # ... and the first attempt of "retrying" has failed (else the cancel could
            # reach it before its exit is read, and record it cancelled).
            await retry_due.wait()
        tg.cancel_scope.cancel()
    assert results == []
    assert live_run_processes(run_id) == []
    _check_recorded_cancelled(state_dir, run_id)
