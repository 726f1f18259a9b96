"""Run ids are unique only within one state dir: cleaning up a run must never touch
the processes of another state dir's run that has the same id."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._cli import PLANRUN, clean_env, kill_pids, live_pids_with_env, planrun, sh, wait_until
from ._cli import write_json as write_plan


def _start_slow(tmp_path: Path, state: Path, run_id: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a run (in the background) whose step sleeps, then writes a marker."""
    marker = tmp_path / f"{state.name}.done"
    plan = write_plan(
        tmp_path / f"{state.name}.json",
        {"plan_id": "slow", "steps": [sh("slow", f"sleep 4 && echo ok > '{marker}'")]},
    )
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--plain", "--state-dir", str(state), "--run-id", run_id],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, marker


def _quick(tmp_path: Path, state: Path, run_id: str) -> None:
    plan = write_plan(tmp_path / "quick.json", {"plan_id": "quick", "steps": [sh("q", "true")]})
    done = planrun("run", plan, "--plain", "--state-dir", state, "--run-id", run_id, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_an_ending_run_leaves_another_state_dirs_run_of_the_same_id_alone(
    tmp_path: Path,
) -> None:
    """Run `same` of state dir B is running; run `same` of state dir A starts and ends
    (its end-of-run cleanup kills what is left of its run): B's step must live on."""
    run_id = "scope-same-1"
    proc, marker = _start_slow(tmp_path, tmp_path / "b", run_id)
    try:
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 1, 10)
        _quick(tmp_path, tmp_path / "a", run_id)
        assert proc.wait(timeout=30) == 0
        assert marker.read_text() == "ok\n"
    finally:
        proc.kill()
        proc.wait()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_the_leftover_sweep_leaves_another_state_dirs_run_of_the_same_id_alone(
    tmp_path: Path,
) -> None:
    """State dir A has a finished run `same`; while state dir B's run `same` runs, a
    new run starts in A and sweeps leftovers of A's ended runs: B's step is not one."""
    run_id = "scope-same-2"
    _quick(tmp_path, tmp_path / "a", run_id)
    proc, marker = _start_slow(tmp_path, tmp_path / "b", run_id)
    try:
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 1, 10)
        _quick(tmp_path, tmp_path / "a", "scope-other")
        assert proc.wait(timeout=30) == 0
        assert marker.read_text() == "ok\n"
    finally:
        proc.kill()
        proc.wait()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
