"""A planrun started inside a step (a nested run) is part of the outer run's tree:
``kill -9`` of the outer planrun leaves no process of either run, and the start-up
sweep of another planrun leaves a live nested run alone."""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    own_pids,
    planrun,
    read_events,
    wait_until,
    write_json,
)

GRANDCHILDREN = "sleep 300 & sleep 300 & (setsid sleep 300 &) ; wait"


def _pids_naming(*run_ids: str) -> list[int]:
    """This test's live (non-zombie) processes whose environment names one of
    ``run_ids`` anywhere (``PLANRUN_RUN_ID``, ``PLANRUN_RUN_TREE``, ...)."""
    wanted = [r.encode() for r in run_ids]
    return own_pids(lambda environ: any(w in entry for entry in environ for w in wanted))


def _nested_plans(tmp_path: Path, inner_state: Path, inner_id: str) -> Path:
    """An outer plan whose one step runs ``planrun run inner.json`` (3 steps, each
    with grandchildren, one of them escaping with setsid)."""
    inner = write_json(
        tmp_path / "inner.json",
        {
            "plan_id": "inner",
            "globals": {"max_concurrency": 3},
            "steps": [
                {"id": f"i{n}", "command": "sh", "args": ["-c", GRANDCHILDREN]} for n in range(3)
            ],
        },
    )
    run_inner = [
        *PLANRUN[1:],
        "run",
        str(inner),
        "--state-dir",
        str(inner_state),
        "--run-id",
        inner_id,
        "--plain",
    ]
    return write_json(
        tmp_path / "outer.json",
        {"plan_id": "outer", "steps": [{"id": "nest", "command": PLANRUN[0], "args": run_inner}]},
    )


def _start_outer(tmp_path: Path, plan: Path, state: Path, outer_id: str) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--state-dir", str(state), "--run-id", outer_id, "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _inner_running(inner_state: Path, inner_id: str) -> bool:
    events = read_events(inner_state, inner_id)
    return bool(sum(e["type"] == "attempt_started" for e in events) == 3)


def test_sigkill_of_an_outer_run_leaves_no_process_of_the_nested_run(tmp_path: Path) -> None:
    """kill -9 of a planrun whose step runs another planrun: within 5 s no process of
    either run is left (the inner steps, their grandchildren, the setsid escapees)."""
    token = secrets.token_hex(4)
    outer_id, inner_id = f"nested-outer-{token}", f"nested-inner-{token}"
    inner_state = tmp_path / "inner-state"
    plan = _nested_plans(tmp_path, inner_state, inner_id)
    proc = _start_outer(tmp_path, plan, tmp_path / "state", outer_id)
    try:
        assert wait_until(lambda: _inner_running(inner_state, inner_id), 30)
        # 3 inner steps, each a shell with 3 sleeps; the inner planrun and the outer step.
        assert wait_until(lambda: len(_pids_naming(inner_id)) >= 12, 10), _pids_naming(inner_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        gone = wait_until(lambda: _pids_naming(outer_id, inner_id) == [], 5)
        assert gone, f"left 5 s after kill -9: {_pids_naming(outer_id, inner_id)}"
    finally:
        proc.kill()
        kill_pids(_pids_naming(outer_id, inner_id))


def test_start_up_sweep_leaves_a_live_nested_run_alone(tmp_path: Path) -> None:
    """A planrun starting in the state dir of a live outer and nested run (its sweep of
    leftovers runs) kills none of their processes; a cancel then stops them all."""
    token = secrets.token_hex(4)
    outer_id, inner_id = f"sweep-outer-{token}", f"sweep-inner-{token}"
    state = tmp_path / "state"
    plan = _nested_plans(tmp_path, state, inner_id)  # one state dir for both runs
    proc = _start_outer(tmp_path, plan, state, outer_id)
    try:
        assert wait_until(lambda: _inner_running(state, inner_id), 30)
        assert wait_until(lambda: len(_pids_naming(inner_id)) >= 12, 10)
        # Only processes that last: a subshell such as `(setsid sleep 300 &)` exits by
        # itself right after starting, and must not count as swept.
        first = set(_pids_naming(outer_id, inner_id))
        time.sleep(1.0)
        before = first & set(_pids_naming(outer_id, inner_id))
        other = write_json(
            tmp_path / "other.json", {"plan_id": "other", "steps": [{"id": "a", "command": "true"}]}
        )
        result = planrun("run", other, "--state-dir", state, "--plain", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "leftover" not in result.stderr
        assert before <= set(_pids_naming(outer_id, inner_id))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 130
        assert wait_until(lambda: _pids_naming(outer_id, inner_id) == [], 5)
    finally:
        proc.kill()
        kill_pids(_pids_naming(outer_id, inner_id))
