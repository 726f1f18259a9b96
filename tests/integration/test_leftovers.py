"""Processes a step leaves behind that the sentinel pipe cannot see are stopped too."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from planrun import StepState, run_plan
from planrun.executors.group import kill_and_wait

from .helpers import live_run_processes

# A grandchild that closed every inherited fd (Popen's default) but stayed in the group;
# it records whether it was asked to stop with SIGTERM before being killed.
POLITE = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    open(sys.argv[1], 'w').write('got TERM')\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "open(sys.argv[1] + '.ready', 'w').close()\n"
    "time.sleep(300)\n"
)


def _spawner(code: str, *args: str, new_session: bool = False) -> str:
    return (
        "import subprocess, sys, time, os\n"
        f"subprocess.Popen([sys.executable, '-c', {code!r}, *{list(args)!r}],"
        f" start_new_session={new_session})\n"
        "time.sleep(0.5)\n"
    )


@pytest.mark.anyio
async def test_fd_closing_straggler_gets_term_then_is_gone(tmp_path: Path) -> None:
    """A grandchild that closed the sentinel but stayed in the group gets SIGTERM (and its
    grace) when the step's main process exits, and is gone when the step ends."""
    out = tmp_path / "term.txt"
    plan = {
        "plan_id": "stragglers",
        "globals": {"kill_grace_sec": 2},
        "steps": [
            {"id": "s", "command": sys.executable, "args": ["-c", _spawner(POLITE, str(out))]}
        ],
    }
    result = await run_plan(plan, state_dir=tmp_path / "state", run_id="straggle-1")
    assert result.steps["s"].state is StepState.SUCCEEDED
    assert out.read_text() == "got TERM"
    assert live_run_processes("straggle-1") == []


@pytest.mark.anyio
async def test_setsid_escapee_with_closed_fds_dies_with_the_run(tmp_path: Path) -> None:
    """A descendant in a new session that closed every fd does not outlive the run."""
    sleeper = "import time; time.sleep(300)"
    plan = {
        "plan_id": "escapee",
        "steps": [
            {
                "id": "s",
                "command": sys.executable,
                "args": ["-c", _spawner(sleeper, new_session=True)],
            }
        ],
    }
    result = await run_plan(plan, state_dir=tmp_path / "state", run_id="escapee-1")
    assert result.steps["s"].state is StepState.SUCCEEDED
    # The run's end SIGKILLs it (found by its tag) and waits for it to go: gone the
    # moment run_plan returns. One the sweep missed would sleep on for 300 s.
    assert live_run_processes("escapee-1") == []


@pytest.mark.anyio
async def test_a_raising_on_event_does_not_break_the_run(tmp_path: Path) -> None:
    """An on_event callback that raises is dropped; the run completes and is recorded."""
    seen: list[str] = []

    def observer(event: object) -> None:
        seen.append(type(event).__name__)
        if len(seen) == 2:
            raise RuntimeError("observer bug")

    plan = {
        "plan_id": "observer",
        "steps": [{"id": "a", "command": "true"}, {"id": "b", "command": "true"}],
    }
    result = await run_plan(plan, state_dir=tmp_path / "state", run_id="obs-1", on_event=observer)
    assert result.ok
    assert len(seen) == 2
    events = (tmp_path / "state" / "runs" / "obs-1" / "events.jsonl").read_text().splitlines()
    assert '"type":"run_finished"' in events[-1]


def _alive(pid: int) -> bool:
    """Running (not exited, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def test_kill_and_wait_returns_once_every_process_is_gone() -> None:
    """``kill_and_wait`` (LocalExecutor.close's sweep) SIGKILLs and waits: when it
    returns none of the processes runs; a pid that is already gone is no error."""
    procs = [subprocess.Popen(["sleep", "300"], start_new_session=True) for _ in range(3)]
    done = subprocess.Popen(["true"])
    done.wait()
    try:
        kill_and_wait([p.pid for p in procs] + [done.pid], timeout=10)
        assert [p.pid for p in procs if _alive(p.pid)] == []
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 3
