"""SIGINT/SIGTERM on a real ``planrun run``: exit 130, a cancelled run, no leftovers."""

from __future__ import annotations

import signal
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
    query,
    read_events,
    sh,
    wait_until,
    write_json,
)

EXIT_CANCELLED = 130


def _start(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.Popen[bytes]:
    """Start ``planrun run`` in ``tmp_path`` with stdout/stderr going to files."""
    plan_file = write_json(tmp_path / "plan.json", plan)
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        return subprocess.Popen(
            [*PLANRUN, "run", str(plan_file), "--run-id", run_id],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def _wait_for_attempts(tmp_path: Path, run_id: str, count: int) -> None:
    state = tmp_path / ".planrun"

    def started() -> bool:
        events = read_events(state, run_id)
        return sum(1 for e in events if e["type"] == "attempt_started") >= count

    assert wait_until(started, timeout=10), _output(tmp_path)


def _output(tmp_path: Path) -> str:
    out = (tmp_path / "out.txt").read_text(errors="replace")
    err = (tmp_path / "err.txt").read_text(errors="replace")
    return f"stdout:\n{out}\nstderr:\n{err}"


def _assert_cancelled(tmp_path: Path, run_id: str, steps: list[str]) -> None:
    db = tmp_path / ".planrun" / "runs.db"
    runs = query(db, "SELECT state, exit_code FROM runs WHERE run_id = ?", run_id)
    assert runs == [("cancelled", EXIT_CANCELLED)]
    rows = query(db, "SELECT step_id, state FROM steps WHERE run_id = ? ORDER BY step_id", run_id)
    assert rows == [(step, "cancelled") for step in sorted(steps)]
    assert "Traceback" not in (tmp_path / "err.txt").read_text(errors="replace")


def _cleanup(proc: subprocess.Popen[bytes], run_id: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_the_run_and_stops_every_process(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """One SIGINT/SIGTERM makes planrun exit 130 within seconds, records the run and
    every step as cancelled, and leaves no step process (or grandchild) alive."""
    run_id = f"sig-{signum.name.lower()}-{uuid.uuid4().hex[:8]}"
    steps = ["one", "two", "three"]
    plan = {
        "plan_id": "signals",
        "globals": {"max_concurrency": 3, "kill_grace_sec": 1},
        "steps": [sh(step, "sleep 1000 & sleep 1000") for step in steps],
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        _wait_for_attempts(tmp_path, run_id, 3)
        # Each step is a shell with a background and a foreground sleep.
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 6, 5)
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=8)
        took = time.monotonic() - sent
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert took < 6, took
        _assert_cancelled(tmp_path, run_id, steps)
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
        out = (tmp_path / "out.txt").read_text()
        assert f"{signum.name}: cancelling the run" in out
        assert f"run {run_id} cancelled" in out
    finally:
        _cleanup(proc, run_id)


def test_second_sigint_kills_at_once(tmp_path: Path) -> None:
    """A step that ignores SIGTERM with a 30 s grace: the second SIGINT kills it at
    once and planrun exits 130 long before the grace would end."""
    run_id = f"sig-twice-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "stubborn",
        "globals": {"kill_grace_sec": 30},
        "steps": [sh("stubborn", "trap '' TERM; sleep 1000")],
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        _wait_for_attempts(tmp_path, run_id, 1)
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 2, 5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None, "the first SIGINT should wait for the grace period"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
        took = time.monotonic() - sent
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert took < 6, took
        _assert_cancelled(tmp_path, run_id, ["stubborn"])
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
        out = (tmp_path / "out.txt").read_text()
        assert "SIGINT: killing every step process" in out
    finally:
        _cleanup(proc, run_id)
