"""Timeouts and process-tree cleanup: nothing a step started outlives its attempt."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.model import AttemptState, RunState, StepState

from .helpers import EventLog, live_run_processes, make_plan, parse_ts, read_text, sh_step

pytestmark = pytest.mark.anyio


async def test_timeout_stops_the_whole_process_tree(state_dir: Path) -> None:
    """A timed-out step with a background child ends timed_out and leaves no live process."""
    plan = make_plan(
        [sh_step("slow", "sleep 1000 & sleep 1000", timeout_sec=0.5)],
        kill_grace_sec=0.5,
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    step = result.steps["slow"]
    assert step.state is StepState.TIMED_OUT
    assert step.reason is not None
    assert "timed out" in step.reason
    assert [a.state for a in step.attempts] == [AttemptState.TIMED_OUT]
    assert result.state is RunState.FAILED
    assert result.exit_code == 1


async def test_step_ignoring_term_is_killed_after_the_grace(state_dir: Path) -> None:
    """A step that ignores SIGTERM is SIGKILLed once kill_grace_sec has passed."""
    plan = make_plan(
        [
            sh_step(
                "stubborn",
                'trap "" TERM; echo trapped; sleep 1000 & sleep 1000',
                timeout_sec=0.5,
            )
        ],
        kill_grace_sec=0.5,
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert live_run_processes(result.run_id) == []
    step = result.steps["stubborn"]
    assert step.state is StepState.TIMED_OUT
    attempt = step.attempts[0]
    assert attempt.state is AttemptState.TIMED_OUT
    assert attempt.exit_code == -9, "the leader should have died of SIGKILL"
    # timeout (0.5) + grace (0.5) passed before the attempt ended.
    assert parse_ts(attempt.ended_at) - parse_ts(attempt.started_at) >= 0.9


async def test_term_is_enough_for_a_cooperative_step(state_dir: Path) -> None:
    """A step that exits on SIGTERM is not KILLed: its exit code says SIGTERM."""
    plan = make_plan([sh_step("plain", "sleep 1000", timeout_sec=0.3)], kill_grace_sec=5)
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    attempt = result.steps["plain"].attempts[0]
    assert attempt.state is AttemptState.TIMED_OUT
    assert attempt.exit_code == -15
    # It did not wait for the 5 s grace.
    assert parse_ts(attempt.ended_at) - parse_ts(attempt.started_at) < 4


async def test_background_process_of_a_finished_step_is_stopped(state_dir: Path) -> None:
    """A step that exits 0 but leaves a background sleep succeeds and leaves nothing behind."""
    plan = make_plan([sh_step("leaky", "sleep 1000 & echo left a child")])
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    step = result.steps["leaky"]
    assert step.state is StepState.SUCCEEDED
    assert step.exit_code == 0
    assert "left a child" in read_text(step.attempts[0].log_path)


async def test_default_timeout_applies_and_step_timeout_overrides_it(state_dir: Path) -> None:
    """globals.default_timeout_sec times out steps without their own timeout_sec."""
    plan = make_plan(
        [
            sh_step("uses-default", "sleep 1000", on_failure="continue"),
            sh_step("own-timeout", "sleep 0.5", timeout_sec=20),
        ],
        default_timeout_sec=0.2,
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert live_run_processes(result.run_id) == []
    assert result.steps["uses-default"].state is StepState.TIMED_OUT
    assert result.steps["own-timeout"].state is StepState.SUCCEEDED


async def test_descendant_in_a_new_session_does_not_outlive_the_step(state_dir: Path) -> None:
    """Even a background process that left the step's session is gone when the run ends."""
    plan = make_plan([sh_step("escapes", "setsid sleep 1000 & sleep 0.3")])
    result = await run_plan(plan, state_dir=state_dir)
    assert result.steps["escapes"].state is StepState.SUCCEEDED
    assert live_run_processes(result.run_id) == []  # the conftest fixture kills the leftover
