"""Failure policies with real processes: what only processes show (the policies
themselves are checked on the scripted executor in tests/unit/test_engine_policies.py).

An abort sends SIGTERM to a running sibling and leaves no process behind; the run
deadline stops running processes and the cleanup step still runs for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.model import AttemptState, StepState

from .helpers import live_run_processes, make_plan, sh_step

pytestmark = pytest.mark.anyio


async def test_abort_sends_sigterm_to_a_running_sibling(tmp_path: Path, state_dir: Path) -> None:
    """on_failure abort: a running sibling gets SIGTERM and ends cancelled; no process
    is left."""
    ready_c, mark = tmp_path / "ready-c", tmp_path / "term-c"
    # b fails only once c is running (and has its TERM trap installed).
    wait_ready = (
        'i=0; while [ ! -e "$READY_C" ]; do '
        "i=$((i+1)); [ $i -gt 400 ] && break; sleep 0.05; done; exit 1"
    )
    plan = make_plan(
        [
            sh_step("b", wait_ready, on_failure="abort"),
            sh_step(
                "c",
                'trap \'echo TERM > "$MARK"; exit 143\' TERM; touch "$READY_C"; sleep 1000 & wait',
            ),
        ],
        max_concurrency=2,
        env={"READY_C": str(ready_c), "MARK": str(mark)},
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    assert result.steps["b"].state is StepState.FAILED
    assert result.steps["c"].state is StepState.CANCELLED
    assert mark.read_text() == "TERM\n", "the running sibling did not get SIGTERM"
    assert result.steps["c"].reason == "step 'b' failed"
    assert [a.state for a in result.steps["c"].attempts] == [AttemptState.CANCELLED]
    assert result.exit_code == 1


async def test_run_deadline_stops_processes_and_still_runs_cleanup(
    tmp_path: Path, state_dir: Path
) -> None:
    """globals.timeout_sec: the running process is stopped, the all_done cleanup's
    process still runs, and the run fails with exit code 124."""
    plan = make_plan(
        [
            sh_step("long", "sleep 1000"),
            sh_step("cleanup", 'echo cleaned > "$OUT"', depends_on=["long"], when="all_done"),
        ],
        timeout_sec=0.5,
        env={"OUT": str(tmp_path / "cleanup")},
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    assert result.exit_code == 124
    assert [a.state for a in result.steps["long"].attempts] == [AttemptState.CANCELLED]
    assert result.steps["cleanup"].state is StepState.SUCCEEDED
    assert (tmp_path / "cleanup").read_text() == "cleaned\n"
