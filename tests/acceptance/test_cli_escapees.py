"""Processes that left the step's process group (``setsid``) get the SIGTERM with the
group, not only the SIGKILL after the grace: a cancel is as fast as the steps allow."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    read_events,
    sh,
    wait_until,
    write_json,
)


def test_cancel_with_a_setsid_child_takes_much_less_than_the_grace(tmp_path: Path) -> None:
    """A step whose setsid child exits on SIGTERM, kill_grace_sec 30: `planrun cancel`
    ends the run in well under the grace, and no process of the run is left."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "escapee",
            "globals": {"kill_grace_sec": 30},
            "steps": [sh("a", "setsid sleep 300 & sleep 300 & wait")],
        },
    )
    run_id = f"escapee-{secrets.token_hex(4)}"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--state-dir", str(state), "--run-id", run_id, "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(
            lambda: any(e["type"] == "attempt_started" for e in read_events(state, run_id)), 20
        )
        # The shell, its sleep, and the sleep in a session of its own.
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 3, 10)
        began = time.monotonic()
        result = planrun("cancel", run_id, "--state-dir", state, cwd=tmp_path, timeout=60)
        assert proc.wait(timeout=60) == 130
        took = time.monotonic() - began
        assert result.returncode == 0, result.stderr
        assert took < 10, f"cancel took {took:.1f}s (grace 30 s)"
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
