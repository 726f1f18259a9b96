"""``planrun cancel`` from another process: a running run stops and is recorded
cancelled; a finished run is left exactly as it was."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    query,
    read_events,
    sh,
    wait_until,
    write_json,
)

EXIT_CANCELLED = 130
STEPS = ["one", "two"]


def _start(
    tmp_path: Path, state: Path, plan: dict[str, Any], run_id: str
) -> subprocess.Popen[bytes]:
    plan_file = write_json(tmp_path / f"{run_id}.json", plan)
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        return subprocess.Popen(
            [*PLANRUN, "run", str(plan_file), "--run-id", run_id, "--state-dir", str(state)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def _output(tmp_path: Path) -> str:
    out = (tmp_path / "out.txt").read_text(errors="replace")
    err = (tmp_path / "err.txt").read_text(errors="replace")
    return f"stdout:\n{out}\nstderr:\n{err}"


def _cleanup(proc: subprocess.Popen[bytes], run_id: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def _snapshot(state: Path, run_id: str) -> dict[str, Any]:
    """Everything the store and the run dir say about a run."""
    db = state / "runs.db"
    return {
        "run": query(db, "SELECT * FROM runs WHERE run_id = ?", run_id),
        "steps": query(db, "SELECT * FROM steps WHERE run_id = ? ORDER BY step_id", run_id),
        "attempts": query(
            db, "SELECT * FROM attempts WHERE run_id = ? ORDER BY step_id, attempt", run_id
        ),
        "events": query(db, "SELECT COUNT(*), MAX(seq) FROM events WHERE run_id = ?", run_id),
        "jsonl": (state / "runs" / run_id / "events.jsonl").read_bytes(),
    }


def test_cancel_stops_a_running_run(tmp_path: Path) -> None:
    """`cancel RUN` from another process exits 0; the run's process exits 130, the run
    and its steps are recorded cancelled and no process of the run is left."""
    state = tmp_path / "state"
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "cancel",
        "globals": {"max_concurrency": 2, "kill_grace_sec": 1},
        "steps": [sh(step, "sleep 1000 & sleep 1000") for step in STEPS],
    }
    proc = _start(tmp_path, state, plan, run_id)
    try:

        def started() -> bool:
            events = read_events(state, run_id)
            count = sum(1 for e in events if e["type"] == "attempt_started")
            return count == len(STEPS)

        assert wait_until(started, timeout=10), _output(tmp_path)
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 4, 5)
        began = time.monotonic()
        result = planrun("cancel", run_id, "--timeout", "8", "--state-dir", state, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"run {run_id} cancelled" in result.stdout  # a result: stdout (issue 13)
        assert proc.wait(timeout=8) == EXIT_CANCELLED, _output(tmp_path)
        assert time.monotonic() - began < 6
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
        db = state / "runs.db"
        assert query(db, "SELECT state, exit_code FROM runs WHERE run_id = ?", run_id) == [
            ("cancelled", EXIT_CANCELLED)
        ]
        steps = query(
            db, "SELECT step_id, state FROM steps WHERE run_id = ? ORDER BY step_id", run_id
        )
        assert steps == [(step, "cancelled") for step in sorted(STEPS)]
        events = read_events(state, run_id)
        assert events[-1]["type"] == "run_finished"
        assert events[-1]["state"] == "cancelled"
        assert "SIGTERM: cancelling the run" in _output(tmp_path)
        # watch agrees, at once.
        watched = planrun("watch", run_id, "--state-dir", state, cwd=tmp_path)
        assert watched.returncode == EXIT_CANCELLED
    finally:
        _cleanup(proc, run_id)


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_cancel_of_a_finished_run_exits_1_and_changes_nothing(tmp_path: Path, outcome: str) -> None:
    """`cancel` of a run that already ended exits 1, says it is not running, and leaves
    its rows, events and files as they were."""
    state = tmp_path / "state"
    run_id = f"done-{outcome}-{uuid.uuid4().hex[:8]}"
    script = {"succeeded": "echo fine", "failed": "exit 3", "cancelled": "sleep 1000"}[outcome]
    plan = {"plan_id": "done", "steps": [sh("only", script)]}
    if outcome == "cancelled":
        proc = _start(tmp_path, state, plan, run_id)
        try:
            assert wait_until(
                lambda: any(e["type"] == "attempt_started" for e in read_events(state, run_id)),
                timeout=10,
            ), _output(tmp_path)
            proc.terminate()
            assert proc.wait(timeout=10) == EXIT_CANCELLED, _output(tmp_path)
        finally:
            _cleanup(proc, run_id)
    else:
        plan_file = write_json(tmp_path / "plan.json", plan)
        ran = planrun("run", plan_file, "--run-id", run_id, "--state-dir", state, cwd=tmp_path)
        assert ran.returncode == (0 if outcome == "succeeded" else 1), ran.stdout + ran.stderr
    before = _snapshot(state, run_id)
    db = state / "runs.db"
    assert query(db, "SELECT state FROM runs WHERE run_id = ?", run_id) == [(outcome,)]
    result = planrun("cancel", run_id, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 1
    assert f"run {run_id} is not running (state: {outcome})" in result.stderr
    assert _snapshot(state, run_id) == before


def test_cancel_of_an_unknown_run_exits_2(tmp_path: Path) -> None:
    """`cancel` of a run id that is not in the store exits 2 naming it."""
    state = tmp_path / "state"
    plan_file = write_json(tmp_path / "plan.json", {"plan_id": "x", "steps": [sh("a", "true")]})
    assert (
        planrun("run", plan_file, "--run-id", "real", "--state-dir", state, cwd=tmp_path).returncode
        == 0
    )
    result = planrun("cancel", "imaginary", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2
    assert "no run 'imaginary'" in result.stderr
