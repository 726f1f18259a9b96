"""SIGKILL of `planrun run` itself: the watchdog still kills every step process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    own_watchdogs,
    read_events,
    sigkill_leaves_no_step_alive,
    wait_until,
    write_json,
)

GRANDCHILDREN = "sleep 1000 & sleep 1000 & (sleep 1000 &) ; wait"


def sh_step(step_id: str, script: str) -> dict[str, object]:
    return {"id": step_id, "command": "sh", "args": ["-c", script]}


def test_sigkill_of_planrun_leaves_no_step_process(tmp_path: Path) -> None:
    """kill -9 of a run with 8 running steps (with grandchildren, one escaping with
    setsid) leaves no step process alive 2 s later."""
    steps = [{"id": f"s{i}", "command": "sh", "args": ["-c", GRANDCHILDREN]} for i in range(7)]
    steps.append(
        {"id": "escapee", "command": "sh", "args": ["-c", "setsid sleep 1000 & sleep 1000 & wait"]}
    )
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "killed", "globals": {"max_concurrency": 8}, "steps": steps},
    )
    run_id = "sigkilled"
    proc = subprocess.Popen(
        [
            *PLANRUN,
            "run",
            str(plan),
            "--state-dir",
            str(tmp_path / "state"),
            "--run-id",
            run_id,
            "--plain",
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def all_started() -> bool:
            try:
                events = read_events(tmp_path / "state", run_id)
            except OSError:
                return False
            return bool(sum(e["type"] == "attempt_started" for e in events) == 8)

        assert wait_until(all_started, 20)
        # Every step has its grandchildren by now (the setsid one included).
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 30, 10)
        sigkill_leaves_no_step_alive(proc, run_id)
    finally:
        proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_clean_exit_dismisses_the_watchdog(tmp_path: Path) -> None:
    """After a normal run no watchdog process of that run is left behind. (One an
    earlier test's killed planrun left may still be finishing its sweep on a busy
    machine: only watchdogs that were not there before this run count.)"""
    plan = write_json(
        tmp_path / "plan.json", {"plan_id": "ok", "steps": [{"id": "a", "command": "true"}]}
    )
    before = set(own_watchdogs())
    result = subprocess.run(
        [*PLANRUN, "run", str(plan), "--state-dir", str(tmp_path / "state"), "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert set(own_watchdogs()) - before == set()


def test_sigkill_of_planrun_removes_its_outputs_dir(tmp_path: Path) -> None:
    """kill -9 of planrun while a step runs: the watchdog also removes planrun's private
    outputs directory (mode 0300, so a user could not even list it to clean it up)."""
    where = tmp_path / "output-path"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "outputs-dir",
            "steps": [sh_step("a", f'echo "$PLANRUN_OUTPUT" > "{where}"; exec sleep 1000')],
        },
    )
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--state-dir", str(tmp_path / "state"), "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: where.exists() and where.read_text().strip() != "", 20)
        outputs_dir = Path(where.read_text().strip()).parent
        assert outputs_dir.is_dir()
        proc.kill()
        proc.wait(timeout=10)
        assert wait_until(lambda: not outputs_dir.exists(), 5), outputs_dir
    finally:
        proc.kill()
        proc.wait(timeout=10)
