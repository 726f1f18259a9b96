"""The library's ``cancel_run`` and ``monitor.follow`` against a real ``planrun run``
process: what ``planrun cancel`` and ``planrun watch`` are built on, usable from any
program (here: the test process)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import CancelError, cancel_run, monitor
from planrun.events import Event, RunCrashed, RunFinished
from planrun.exitcodes import ExitCode
from planrun.model import RunState

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


def _start(tmp_path: Path, state: Path, run_id: str, script: str) -> subprocess.Popen[bytes]:
    plan = {
        "plan_id": "cli-owned",
        "globals": {"kill_grace_sec": 1},
        "steps": [sh("one", script), sh("two", script)],
    }
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


def _both_started(state: Path, run_id: str) -> bool:
    events = read_events(state, run_id)
    started: int = sum(e["type"] == "attempt_started" for e in events)
    return started == 2


@pytest.fixture
def procs() -> Any:
    started: list[tuple[subprocess.Popen[bytes], str]] = []
    yield started
    for proc, run_id in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_cancel_run_of_a_cli_owned_run(tmp_path: Path, procs: Any) -> None:
    """cancel_run() from another process: the CLI owner (identity checked by pid and
    start time) gets SIGTERM, stops every step, exits 130; cancel_run returns the
    run's record once it is cancelled, and a second call says it is not running."""
    state = tmp_path / "state"
    run_id = f"lib-cancel-{uuid.uuid4().hex[:8]}"
    proc = _start(tmp_path, state, run_id, "sleep 1000")
    procs.append((proc, run_id))
    assert wait_until(lambda: _both_started(state, run_id), timeout=15)

    record = anyio.run(lambda: cancel_run(run_id, state_dir=state, wait_sec=30))
    assert record.run_id == run_id
    assert record.state is RunState.CANCELLED
    assert record.exit_code == ExitCode.CANCELLED
    assert proc.wait(timeout=30) == ExitCode.CANCELLED
    assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    steps = query(state / "runs.db", "SELECT state FROM steps WHERE run_id = ?", run_id)
    assert steps == [("cancelled",), ("cancelled",)]
    with pytest.raises(CancelError, match=r"is not running \(state: cancelled\)"):
        anyio.run(lambda: cancel_run(run_id, state_dir=state))


def test_follow_a_cli_run_whose_owner_is_killed(tmp_path: Path, procs: Any) -> None:
    """follow() of a CLI run whose process is SIGKILLed notices the dead owner, marks
    the run crashed (telling on_notice), yields the run_crashed event and ends."""
    state = tmp_path / "state"
    run_id = f"lib-follow-{uuid.uuid4().hex[:8]}"
    proc = _start(tmp_path, state, run_id, "sleep 1000")
    procs.append((proc, run_id))
    assert wait_until(lambda: _both_started(state, run_id), timeout=15)
    notices: list[str] = []
    seen: list[Event] = []

    async def follow_it() -> None:
        with anyio.fail_after(30):
            async for event in monitor.follow(run_id, state_dir=state, on_notice=notices.append):
                seen.append(event)
                if len(seen) == 1:  # following for sure: now the owner dies
                    proc.kill()
                    proc.wait(timeout=10)

    anyio.run(follow_it)
    assert isinstance(seen[-1], RunCrashed)
    assert not any(isinstance(e, RunFinished) for e in seen)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert len(notices) == 1
    assert "is gone: the run is marked crashed" in notices[0]
    run = anyio.run(lambda: monitor.get_run(run_id, state_dir=state))
    assert run is not None
    assert run.state is RunState.CRASHED


def test_cli_adds_its_flags_to_library_errors(tmp_path: Path) -> None:
    """The library says what is wrong in its own words; the CLI points at its flag."""
    state = tmp_path / "state"
    plan_file = write_json(tmp_path / "plan.json", {"plan_id": "x", "steps": [sh("a", "true")]})
    args = ("run", plan_file, "--run-id", "twice", "--state-dir", state)
    assert planrun(*args, cwd=tmp_path).returncode == 0
    again = planrun(*args, cwd=tmp_path)
    assert again.returncode == ExitCode.INVALID
    assert "run id 'twice' already exists; choose another --run-id" in again.stderr
    unknown = planrun("resume", "nope", "--state-dir", state, cwd=tmp_path)
    assert unknown.returncode == ExitCode.INVALID
    assert "no run 'nope'" in unknown.stderr
    assert "see `planrun list`" in unknown.stderr
    changed = planrun(
        "run", plan_file, "--max-concurrency", "0", "--state-dir", state, cwd=tmp_path
    )
    assert "--max-concurrency must be between 1 and 10000" in changed.stderr
