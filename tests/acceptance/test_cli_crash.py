"""A run whose planrun process was SIGKILLed is marked crashed by the next reader."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from planrun.store.sqlite import HEARTBEAT_SEC

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    read_events,
    wait_until,
    write_json,
)


def _kill_mid_run(tmp_path: Path, run_id: str) -> Path:
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "crashy",
            "steps": [
                {"id": "quick", "command": "true"},
                {"id": "slow", "command": "sleep", "args": ["300"], "depends_on": ["quick"]},
                {"id": "after", "command": "true", "depends_on": ["slow"]},
            ],
        },
    )
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--state-dir", str(state), "--run-id", run_id, "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def slow_started() -> bool:
            try:
                events = read_events(state, run_id)
            except OSError:
                return False
            return any(e["type"] == "attempt_started" and e["step_id"] == "slow" for e in events)

        assert wait_until(slow_started, 20)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
    assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 5)
    kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
    return state


def test_list_marks_a_killed_run_crashed(tmp_path: Path) -> None:
    """After kill -9, `list` shows the run crashed and `show` has the running step and
    attempt crashed, the finished one kept, the pending one untouched."""
    state = _kill_mid_run(tmp_path, "killed-1")
    listed = planrun("list", "--json", "--state-dir", state, cwd=tmp_path)
    assert [r["state"] for r in json.loads(listed.stdout)] == ["crashed"]
    shown = json.loads(
        planrun("show", "killed-1", "--json", "--state-dir", state, cwd=tmp_path).stdout
    )
    states = {s["step_id"]: s["state"] for s in shown["steps"]}
    assert states == {"quick": "succeeded", "slow": "crashed", "after": "pending"}
    slow = next(s for s in shown["steps"] if s["step_id"] == "slow")
    assert [a["state"] for a in slow["attempts"]] == ["crashed"]
    assert "is gone" in shown["run"]["reason"]


def test_crash_event_completes_a_gap_free_log_in_both_stores(tmp_path: Path) -> None:
    """The run_crashed event takes the next seq; SQLite and events.jsonl agree, once each."""
    state = _kill_mid_run(tmp_path, "killed-2")
    assert planrun("show", "killed-2", "--state-dir", state, cwd=tmp_path).returncode == 0
    jsonl = read_events(state, "killed-2")
    assert [e["seq"] for e in jsonl] == list(range(1, len(jsonl) + 1))
    assert jsonl[-1]["type"] == "run_crashed"
    with sqlite3.connect(state / "runs.db") as db:
        bodies = [
            json.loads(b)
            for (b,) in db.execute("SELECT body FROM events WHERE run_id = 'killed-2' ORDER BY seq")
        ]
    assert bodies == jsonl
    again = planrun("list", "--state-dir", state, cwd=tmp_path)
    assert again.returncode == 0
    assert len(read_events(state, "killed-2")) == len(jsonl)  # marked once, not twice


def test_watch_of_a_killed_run_exits_1_at_once(tmp_path: Path) -> None:
    """`watch` on a run whose owner died ends promptly with exit 1."""
    state = _kill_mid_run(tmp_path, "killed-3")
    began = time.monotonic()
    result = planrun("watch", "killed-3", "--plain", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 1
    assert time.monotonic() - began < 10


#: How long the owner's event loop stays blocked: the figure the issue asks for, far
#: beyond the recorder's heartbeat interval (10 s), so the heartbeat is stale.
BLOCK_SEC = 20

BLOCKED_OWNER = f"""
import sys, time, anyio
from planrun import run_plan, AttemptStarted

def block(event):
    if isinstance(event, AttemptStarted):
        open(sys.argv[2], "w").close()
        time.sleep({BLOCK_SEC})  # the owner's event loop is stuck, the process is alive

plan = {{"plan_id": "busy", "steps": [{{"id": "a", "command": "true"}}]}}
anyio.run(lambda: run_plan(plan, state_dir=sys.argv[1], run_id="busy-1", on_event=block),
          backend="asyncio")
"""


def _age_sec(timestamp: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(timestamp)).total_seconds()


def test_a_busy_live_owner_is_never_marked_crashed(tmp_path: Path) -> None:
    """While the owner's event loop is blocked for 20 s (its heartbeat going stale),
    concurrent list/show leave its run running; the run then finishes normally."""
    import sys

    state, flag = tmp_path / "state", tmp_path / "blocked"
    owner = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_OWNER, str(state), str(flag)], cwd=tmp_path, env=clean_env()
    )
    try:
        assert wait_until(flag.exists, 20)
        blocked_at = time.monotonic()
        heartbeat_age = 0.0
        while time.monotonic() - blocked_at < BLOCK_SEC - 4:
            listed = planrun("list", "--json", "--state-dir", state, cwd=tmp_path)
            assert [r["state"] for r in json.loads(listed.stdout)] == ["running"]
            shown = planrun("show", "busy-1", "--json", "--state-dir", state, cwd=tmp_path)
            run = json.loads(shown.stdout)["run"]
            assert run["state"] == "running"
            heartbeat_age = _age_sec(run["heartbeat_at"])
            time.sleep(3)
        # The last look saw a heartbeat far older than its interval: age alone
        # would have called this run crashed.
        assert heartbeat_age > HEARTBEAT_SEC + 2, heartbeat_age
        assert owner.poll() is None
        assert owner.wait(timeout=60) == 0
    finally:
        owner.kill()
    shown = json.loads(
        planrun("show", "busy-1", "--json", "--state-dir", state, cwd=tmp_path).stdout
    )
    assert shown["run"]["state"] == "succeeded"
