"""The scheduler's policies end to end, on the scripted executor (no processes): trigger
rules (``when``), abort, skip propagation, retries and backoff, ``on_failure`` modes,
critical steps, the run deadline, the concurrency bound and start order.

Every run goes through ``run_plan`` with a real SQLite store, so the results checked are
the recorded ones. What only real processes show (signals, process trees, env, cwd, logs)
stays in ``tests/integration/test_engine_*.py``.

The policy tests share one DAG: a diamond ``a -> (b, c) -> d -> e`` where ``b`` fails,
an independent branch ``x -> y``, a ``when: all_done`` cleanup after ``e`` and ``y``,
and a ``when: one_failed`` rollback after ``b``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.events import (
    AttemptStarted,
    Event,
    RetryScheduled,
    RunAborting,
    RunFinished,
    RunStarted,
)
from planrun.model import AttemptState, RunState, StepState
from planrun.testing import Action, Fail, Hang, ScriptedAttempt, ScriptedExecutor, Succeed, TimeOut

pytestmark = pytest.mark.anyio

NO_FAILURE = "no dependency failed (when: one_failed)"


class EventLog:
    """An ``on_event`` callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def _step(step_id: str, **fields: Any) -> dict[str, Any]:
    """A step whose command never runs (the scripted executor plays it)."""
    return {"id": step_id, "command": "scripted", **fields}


def _plan(steps: list[dict[str, Any]], **globals_: Any) -> dict[str, Any]:
    return {"plan_id": "policies", "globals": globals_, "steps": steps}


def _states(steps: dict[str, Any]) -> dict[str, StepState]:
    return {k: v.state for k, v in steps.items()}


def _parse_ts(stamp: str | None) -> float:
    assert stamp is not None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _ended(attempt: ScriptedAttempt) -> float:
    assert attempt.ended is not None
    return attempt.ended


def _policy_plan(b_fields: dict[str, Any]) -> dict[str, Any]:
    return _plan(
        [
            _step("a"),
            _step("b", depends_on=["a"], **b_fields),
            _step("c", depends_on=["a"]),
            _step("d", depends_on=["b", "c"]),
            _step("e", depends_on=["d"]),
            _step("x"),
            _step("y", depends_on=["x"]),
            _step("cleanup", depends_on=["e", "y"], when="all_done"),
            _step("rollback", depends_on=["b"], when="one_failed"),
        ],
        max_concurrency=8,
    )


# --- on_failure, critical, trigger rules --------------------------------------------


async def test_abort_cancels_running_and_pending_but_runs_cleanup_and_rollback(
    state_dir: Path,
) -> None:
    """on_failure abort: a running sibling is cancelled, pending steps end cancelled, and
    the all_done cleanup and one_failed rollback still run."""
    # b fails while c and x are running (they would run forever).
    executor = ScriptedExecutor({"b": Fail(1), "c": Hang(), "x": Hang()})
    log = EventLog()
    result = await run_plan(
        _policy_plan({"on_failure": "abort"}), state_dir=state_dir, on_event=log, executor=executor
    )
    assert _states(result.steps) == {
        "a": StepState.SUCCEEDED,
        "b": StepState.FAILED,
        "c": StepState.CANCELLED,
        "d": StepState.CANCELLED,
        "e": StepState.CANCELLED,
        "x": StepState.CANCELLED,
        "y": StepState.CANCELLED,
        "cleanup": StepState.SUCCEEDED,
        "rollback": StepState.SUCCEEDED,
    }
    assert [a.cancelled for a in executor.of_step("c")] == [True], "c was not cancelled"
    assert [a.cancelled for a in executor.of_step("x")] == [True], "x was not cancelled"
    assert result.steps["b"].reason == "exit code 1"
    for sid in ("c", "d", "e", "x", "y"):
        assert result.steps[sid].reason == "step 'b' failed", sid
    assert [a.state for a in result.steps["c"].attempts] == [AttemptState.CANCELLED]
    assert result.steps["d"].attempts == []
    assert result.state is RunState.FAILED
    assert result.exit_code == 1
    assert result.reason == "step 'b' failed"
    aborting = log.of_type(RunAborting)
    assert [(e.step_id, e.reason) for e in aborting] == [("b", "step 'b' failed")]


async def test_abort_lets_running_cleanup_steps_finish_and_retry(state_dir: Path) -> None:
    """A cleanup step (when: all_done) already running when the run aborts is not
    cancelled, and its failure during the abort is still retried."""
    plan = _plan(
        [
            _step("fails", on_failure="abort"),
            _step("tidy", when="all_done"),
            _step("undo", when="all_done", retries=1, retry_delay_sec=0),
        ],
        max_concurrency=3,
    )
    executor = ScriptedExecutor(
        {
            "fails": Fail(1, delay=0.02),
            "tidy": Succeed(delay=0.1),
            "undo": [Fail(1, delay=0.1), Succeed()],
        }
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    assert [e.step_id for e in log.of_type(RunAborting)] == ["fails"]
    assert result.steps["tidy"].state is StepState.SUCCEEDED
    assert [a.cancelled for a in executor.of_step("tidy")] == [False]
    assert result.steps["undo"].state is StepState.SUCCEEDED
    assert [a.state for a in result.steps["undo"].attempts] == [
        AttemptState.FAILED,
        AttemptState.SUCCEEDED,
    ]
    assert result.exit_code == 1


async def test_a_failure_arriving_with_the_abort_is_not_retried(state_dir: Path) -> None:
    """A step whose failure is reported in the same instant as the failure that aborts
    the run ends failed: an aborting run schedules no retry (but for cleanup steps)."""
    plan = _plan(
        [_step("fails", on_failure="abort"), _step("also", retries=2, retry_delay_sec=0)],
        max_concurrency=2,
    )
    executor = ScriptedExecutor({"fails": Fail(1), "also": Fail(3)})
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    assert [e.step_id for e in log.of_type(RunAborting)] == ["fails"]
    assert result.steps["also"].state is StepState.FAILED
    assert [a.exit_code for a in result.steps["also"].attempts] == [3]
    assert log.of_type(RetryScheduled) == []


async def test_skip_dependents_skips_only_what_needs_the_failed_step(state_dir: Path) -> None:
    """on_failure skip_dependents: dependents end skipped naming the failed step; the rest
    carries on and the run fails."""
    result = await run_plan(
        _policy_plan({"on_failure": "skip_dependents"}),
        state_dir=state_dir,
        executor=ScriptedExecutor({"b": Fail(1)}),
    )
    assert _states(result.steps) == {
        "a": StepState.SUCCEEDED,
        "b": StepState.FAILED,
        "c": StepState.SUCCEEDED,
        "d": StepState.SKIPPED,
        "e": StepState.SKIPPED,
        "x": StepState.SUCCEEDED,
        "y": StepState.SUCCEEDED,
        "cleanup": StepState.SUCCEEDED,
        "rollback": StepState.SUCCEEDED,
    }
    assert result.steps["d"].reason == "dependency 'b' failed"
    assert result.steps["e"].reason == "dependency 'd' skipped (because 'b' failed)"
    assert result.steps["d"].attempts == []
    assert result.state is RunState.FAILED
    assert result.exit_code == 1


async def test_continue_runs_dependents_as_if_the_step_succeeded(state_dir: Path) -> None:
    """on_failure continue: dependents run; a one_failed rollback sees no failure; a
    critical failure still fails the run."""
    log = EventLog()
    result = await run_plan(
        _policy_plan({"on_failure": "continue"}),
        state_dir=state_dir,
        on_event=log,
        executor=ScriptedExecutor({"b": Fail(1)}),
    )
    assert _states(result.steps) == {
        "a": StepState.SUCCEEDED,
        "b": StepState.FAILED,
        "c": StepState.SUCCEEDED,
        "d": StepState.SUCCEEDED,
        "e": StepState.SUCCEEDED,
        "x": StepState.SUCCEEDED,
        "y": StepState.SUCCEEDED,
        "cleanup": StepState.SUCCEEDED,
        "rollback": StepState.SKIPPED,
    }
    assert result.steps["rollback"].reason == NO_FAILURE
    assert result.state is RunState.FAILED
    assert result.exit_code == 1
    assert log.of_type(RunAborting) == []
    assert log.of_type(RunFinished)[0].failed_steps == ["b"]


async def test_non_critical_abort_behaves_like_skip_dependents(state_dir: Path) -> None:
    """A non-critical step with on_failure abort only skips its dependents; the run
    succeeds and lists the failed step."""
    log = EventLog()
    result = await run_plan(
        _policy_plan({"on_failure": "abort", "critical": False}),
        state_dir=state_dir,
        on_event=log,
        executor=ScriptedExecutor({"b": Fail(1)}),
    )
    assert _states(result.steps) == {
        "a": StepState.SUCCEEDED,
        "b": StepState.FAILED,
        "c": StepState.SUCCEEDED,
        "d": StepState.SKIPPED,
        "e": StepState.SKIPPED,
        "x": StepState.SUCCEEDED,
        "y": StepState.SUCCEEDED,
        "cleanup": StepState.SUCCEEDED,
        "rollback": StepState.SUCCEEDED,
    }
    assert result.steps["d"].reason == "dependency 'b' failed"
    assert result.steps["b"].critical is False
    assert log.of_type(RunAborting) == []
    assert result.state is RunState.SUCCEEDED
    assert result.exit_code == 0
    assert result.ok
    finished = log.of_type(RunFinished)
    assert len(finished) == 1
    assert finished[0].failed_steps == ["b"]


async def test_every_when_rule(state_dir: Path) -> None:
    """all_success, all_done, one_failed and none_failed run or skip as documented."""
    bad = {"on_failure": "skip_dependents", "critical": False}
    plan = _plan(
        [
            _step("ok"),
            _step("bad", **bad),
            _step("slow-bad", **bad),
            _step("skipped", depends_on=["bad"]),
            _step("all-success-ok", depends_on=["ok"]),
            _step("all-success-bad", depends_on=["ok", "bad"]),
            _step("all-success-skip", depends_on=["ok", "skipped"]),
            _step("all-done-bad", depends_on=["ok", "bad"], when="all_done"),
            _step("all-done-skip", depends_on=["skipped"], when="all_done"),
            _step("one-failed-yes", depends_on=["ok", "bad"], when="one_failed"),
            _step("one-failed-no", depends_on=["ok"], when="one_failed"),
            _step("one-failed-skip", depends_on=["skipped"], when="one_failed"),
            _step("none-failed-ok", depends_on=["ok", "skipped"], when="none_failed"),
            _step("none-failed-bad", depends_on=["ok", "bad"], when="none_failed"),
            # one_failed waits for every dependency, even once one has failed.
            _step("one-failed-waits", depends_on=["bad", "slow-bad"], when="one_failed"),
        ],
        max_concurrency=4,
    )
    executor = ScriptedExecutor({"bad": Fail(1), "slow-bad": Fail(1, delay=0.1)})
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert _states(result.steps) == {
        "ok": StepState.SUCCEEDED,
        "bad": StepState.FAILED,
        "slow-bad": StepState.FAILED,
        "skipped": StepState.SKIPPED,
        "all-success-ok": StepState.SUCCEEDED,
        "all-success-bad": StepState.SKIPPED,
        "all-success-skip": StepState.SKIPPED,
        "all-done-bad": StepState.SUCCEEDED,
        "all-done-skip": StepState.SUCCEEDED,
        "one-failed-yes": StepState.SUCCEEDED,
        "one-failed-no": StepState.SKIPPED,
        "one-failed-skip": StepState.SKIPPED,
        "none-failed-ok": StepState.SUCCEEDED,
        "none-failed-bad": StepState.SKIPPED,
        "one-failed-waits": StepState.SUCCEEDED,
    }
    reasons = {k: v.reason for k, v in result.steps.items() if v.state is StepState.SKIPPED}
    assert reasons == {
        "skipped": "dependency 'bad' failed",
        "all-success-bad": "dependency 'bad' failed",
        "all-success-skip": "dependency 'skipped' skipped (because 'bad' failed)",
        "one-failed-no": NO_FAILURE,
        "one-failed-skip": NO_FAILURE,
        "none-failed-bad": "dependency 'bad' failed",
    }
    waits = result.steps["one-failed-waits"].attempts[0].started_at
    slow_end = result.steps["slow-bad"].attempts[0].ended_at
    assert waits is not None
    assert slow_end is not None
    assert waits >= slow_end
    (waits_run,) = executor.of_step("one-failed-waits")
    (slow_run,) = executor.of_step("slow-bad")
    assert waits_run.started >= _ended(slow_run)
    # Only non-critical steps failed.
    assert result.state is RunState.SUCCEEDED


async def test_timed_out_dependency_counts_as_failed_for_one_failed(state_dir: Path) -> None:
    """A timed-out dependency triggers a one_failed step and skips an all_success one."""
    plan = _plan(
        [
            _step("slow", timeout_sec=0.2, on_failure="skip_dependents"),
            _step("rollback", depends_on=["slow"], when="one_failed"),
            _step("next", depends_on=["slow"]),
        ]
    )
    result = await run_plan(
        plan, state_dir=state_dir, executor=ScriptedExecutor({"slow": TimeOut()})
    )
    assert result.steps["slow"].state is StepState.TIMED_OUT
    assert result.steps["rollback"].state is StepState.SUCCEEDED
    assert result.steps["next"].state is StepState.SKIPPED
    assert result.steps["next"].reason == "dependency 'slow' timed_out"


@pytest.mark.parametrize(
    ("critical", "state", "code"), [(True, "failed", 1), (False, "succeeded", 0)]
)
async def test_critical_decides_the_run_outcome(
    state_dir: Path, critical: bool, state: str, code: int
) -> None:
    """A failed critical step fails the run (exit 1); a failed non-critical one does not."""
    log = EventLog()
    plan = _plan([_step("ok"), _step("bad", critical=critical, on_failure="skip_dependents")])
    result = await run_plan(
        plan, state_dir=state_dir, on_event=log, executor=ScriptedExecutor({"bad": Fail(7)})
    )
    assert result.state == state
    assert result.exit_code == code
    assert result.ok is (not critical)
    assert result.steps["bad"].state is StepState.FAILED
    assert result.steps["bad"].exit_code == 7
    assert result.steps["bad"].reason == "exit code 7"
    assert log.of_type(RunFinished)[0].failed_steps == ["bad"]


async def test_success_exit_codes(state_dir: Path) -> None:
    """An exit code listed in success_exit_codes counts as success; 0 then does not."""
    plan = _plan(
        [
            _step("three-ok", success_exit_codes=[0, 3]),
            _step("zero-bad", success_exit_codes=[1], on_failure="continue"),
        ]
    )
    executor = ScriptedExecutor({"three-ok": Succeed(exit_code=3), "zero-bad": Fail(exit_code=0)})
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.steps["three-ok"].state is StepState.SUCCEEDED
    assert result.steps["three-ok"].exit_code == 3
    assert result.steps["zero-bad"].state is StepState.FAILED


async def test_run_deadline_fails_with_124_and_still_runs_cleanup(state_dir: Path) -> None:
    """globals.timeout_sec: running steps are cancelled, pending ones too, the all_done
    cleanup still runs, and the run fails with exit code 124."""
    plan = _plan(
        [
            _step("quick"),
            _step("long", depends_on=["quick"]),
            _step("after", depends_on=["long"]),
            _step("cleanup", depends_on=["after"], when="all_done"),
        ],
        timeout_sec=0.2,
    )
    executor = ScriptedExecutor({"long": Hang()})
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    assert result.state is RunState.FAILED
    assert result.exit_code == 124
    assert result.reason is not None
    assert "deadline" in result.reason
    assert _states(result.steps) == {
        "quick": StepState.SUCCEEDED,
        "long": StepState.CANCELLED,
        "after": StepState.CANCELLED,
        "cleanup": StepState.SUCCEEDED,
    }
    assert [a.state for a in result.steps["long"].attempts] == [AttemptState.CANCELLED]
    assert [a.cancelled for a in executor.of_step("long")] == [True]
    (cleanup,) = executor.of_step("cleanup")
    assert cleanup.result is not None
    assert cleanup.result.exit_code == 0, "the cleanup step did not run to its end"
    assert len(log.of_type(RunAborting)) == 1
    assert log.of_type(RunAborting)[0].step_id is None


# --- retries ------------------------------------------------------------------------


async def test_retry_delays_follow_backoff(state_dir: Path) -> None:
    """Attempt n+1 starts at least retry_delay_sec * backoff^(n-1) after attempt n ended."""
    plan = _plan([_step("fails", retries=3, retry_delay_sec=0.05, retry_backoff=2)])
    executor = ScriptedExecutor({"fails": Fail(1)})
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    step = result.steps["fails"]
    assert step.state is StepState.FAILED
    assert step.exit_code == 1
    assert [a.number for a in step.attempts] == [1, 2, 3, 4]
    assert all(a.state is AttemptState.FAILED for a in step.attempts)
    expected = [0.05, 0.1, 0.2]
    scheduled = log.of_type(RetryScheduled)
    assert [(e.attempt, e.delay_sec) for e in scheduled] == [(2, 0.05), (3, 0.1), (4, 0.2)]
    # Recorded by planrun: attempt n ended -> attempt n+1 started.
    for n, delay in enumerate(expected):
        gap = _parse_ts(step.attempts[n + 1].started_at) - _parse_ts(step.attempts[n].ended_at)
        assert gap >= 0.9 * delay, f"attempt {n + 2} started {gap:.3f}s after, want {delay}"
    # Recorded by the executor (anyio's clock).
    runs = executor.of_step("fails")
    assert [r.attempt for r in runs] == [1, 2, 3, 4]
    for n, delay in enumerate(expected):
        assert runs[n + 1].started - _ended(runs[n]) >= 0.9 * delay


async def test_retry_delay_is_capped(state_dir: Path) -> None:
    """retry_max_delay_sec caps the backoff."""
    plan = _plan(
        [
            _step(
                "fails",
                retries=3,
                retry_delay_sec=0.05,
                retry_backoff=4,
                retry_max_delay_sec=0.1,
            )
        ]
    )
    log = EventLog()
    result = await run_plan(
        plan, state_dir=state_dir, on_event=log, executor=ScriptedExecutor({"fails": Fail(1)})
    )
    assert len(result.steps["fails"].attempts) == 4
    assert [e.delay_sec for e in log.of_type(RetryScheduled)] == [0.05, 0.1, 0.1]


async def test_retry_on_exit_codes_filters(state_dir: Path) -> None:
    """Exit code 3 (listed in retry_on_exit_codes) is retried; exit code 4 is not."""
    fields = {"retries": 2, "retry_on_exit_codes": [3], "on_failure": "continue"}
    plan = _plan([_step("three", **fields), _step("four", **fields)])
    executor = ScriptedExecutor({"three": Fail(3), "four": Fail(4)})
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    three, four = result.steps["three"], result.steps["four"]
    assert three.state is StepState.FAILED
    assert [a.exit_code for a in three.attempts] == [3, 3, 3]
    assert four.state is StepState.FAILED
    assert [a.exit_code for a in four.attempts] == [4]
    assert four.reason == "exit code 4"


@pytest.mark.parametrize(("retry_on_timeout", "attempts"), [(False, 1), (True, 2)])
@pytest.mark.parametrize("action", [TimeOut(), Hang()], ids=["timeout", "hang"])
async def test_retry_on_timeout(
    state_dir: Path, retry_on_timeout: bool, attempts: int, action: Action
) -> None:
    """A timed-out attempt is retried unless retry_on_timeout is false (whether it
    reported the timeout or hung until its timeout_sec)."""
    plan = _plan([_step("slow", timeout_sec=0.05, retries=1, retry_on_timeout=retry_on_timeout)])
    result = await run_plan(plan, state_dir=state_dir, executor=ScriptedExecutor({"slow": action}))
    step = result.steps["slow"]
    assert step.state is StepState.TIMED_OUT
    assert [a.state for a in step.attempts] == [AttemptState.TIMED_OUT] * attempts


async def test_flaky_step_succeeds_on_third_attempt(state_dir: Path) -> None:
    """A step failing twice then succeeding ends succeeded after exactly three attempts."""
    plan = _plan(
        [
            _step("flaky", retries=5, retry_delay_sec=0.01),
            _step("after", depends_on=["flaky"]),
        ]
    )
    executor = ScriptedExecutor({"flaky": [Fail(1), Fail(1), Succeed()]})
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    assert result.state is RunState.SUCCEEDED
    step = result.steps["flaky"]
    assert step.state is StepState.SUCCEEDED
    assert [a.state for a in step.attempts] == [
        AttemptState.FAILED,
        AttemptState.FAILED,
        AttemptState.SUCCEEDED,
    ]
    assert len(executor.of_step("flaky")) == 3
    assert result.steps["after"].state is StepState.SUCCEEDED
    started = [e for e in log.of_type(AttemptStarted) if e.step_id == "flaky"]
    assert [e.attempt for e in started] == [1, 2, 3]
    # Each attempt has its own log, and its spec its own attempt number.
    assert len({a.log_path for a in step.attempts}) == 3
    assert [r.spec.attempt for r in executor.of_step("flaky")] == [1, 2, 3]


async def test_waiting_for_a_retry_does_not_hold_a_slot(state_dir: Path) -> None:
    """With one slot, another step runs while a failed step waits for its retry."""
    plan = _plan(
        [
            _step("retrying", retries=1, retry_delay_sec=0.1, critical=False),
            _step("other"),
        ],
        max_concurrency=1,
    )
    executor = ScriptedExecutor({"retrying": Fail(1)})
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert len(result.steps["retrying"].attempts) == 2
    assert executor.started_order() == ["retrying", "other", "retrying"]


async def test_cancellation_does_not_wait_for_the_retry_delay(state_dir: Path) -> None:
    """A step waiting 100 s for its retry is cancelled at once with the run."""
    plan = _plan([_step("retrying", retries=1, retry_delay_sec=100)])
    executor = ScriptedExecutor({"retrying": Fail(1)})
    with anyio.fail_after(10), anyio.move_on_after(0.2):
        await run_plan(plan, state_dir=state_dir, run_id="retry-cancel", executor=executor)
    conn = sqlite3.connect(state_dir / "runs.db")
    try:
        rows = conn.execute("SELECT state, attempts FROM steps").fetchall()
    finally:
        conn.close()
    assert rows == [("cancelled", 1)]


async def test_abort_does_not_wait_for_the_retry_delay(state_dir: Path) -> None:
    """An abort cancels a step that is waiting for its retry, without waiting for it."""
    plan = _plan(
        [
            _step("retrying", retries=1, retry_delay_sec=100),
            _step("fails"),
        ]
    )
    executor = ScriptedExecutor({"retrying": Fail(1), "fails": Fail(1, delay=0.05)})
    with anyio.fail_after(10):
        result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.state is RunState.FAILED
    retrying = result.steps["retrying"]
    assert retrying.state is StepState.CANCELLED
    assert retrying.reason == "step 'fails' failed"
    assert [a.state for a in retrying.attempts] == [AttemptState.FAILED]


# --- dependency order, the concurrency bound, plan order -----------------------------


def _assert_after_deps(plan: dict[str, Any], executor: ScriptedExecutor) -> None:
    runs = {a.step_id: a for a in executor.attempts}
    for step in plan["steps"]:
        for dep in step.get("depends_on", []):
            assert runs[step["id"]].started >= _ended(runs[dep]), (
                f"{step['id']} started before its dependency {dep} ended"
            )


async def test_diamond_dependents_start_after_all_dependencies(state_dir: Path) -> None:
    """In a diamond a -> (b, c) -> d, no step starts before every dependency has ended."""
    plan = _plan(
        [
            _step("a"),
            _step("b", depends_on=["a"]),
            _step("c", depends_on=["a"]),
            _step("d", depends_on=["b", "c"]),
        ],
        max_concurrency=4,
    )
    executor = ScriptedExecutor(
        {"a": Succeed(delay=0.02), "b": Succeed(delay=0.1), "c": Succeed(delay=0.02)}
    )
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.state is RunState.SUCCEEDED
    assert result.exit_code == 0
    assert {s.state for s in result.steps.values()} == {StepState.SUCCEEDED}
    _assert_after_deps(plan, executor)
    (b,), (c,) = executor.of_step("b"), executor.of_step("c")
    # b and c are independent of each other: they ran side by side.
    assert c.started < _ended(b)


async def test_chain_runs_strictly_in_sequence(state_dir: Path) -> None:
    """In a chain s0 -> s1 -> ... -> s5 each step starts after its predecessor ended."""
    steps = [_step("s0")]
    steps += [_step(f"s{i}", depends_on=[f"s{i - 1}"]) for i in range(1, 6)]
    plan = _plan(steps, max_concurrency=6)
    executor = ScriptedExecutor(default=Succeed(delay=0.01))
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.ok
    _assert_after_deps(plan, executor)
    assert executor.started_order() == [f"s{i}" for i in range(6)]
    assert executor.peak == 1


@pytest.mark.parametrize("via", ["argument", "globals"])
async def test_concurrency_bound_is_never_exceeded(state_dir: Path, via: str) -> None:
    """Twelve independent steps under a bound of 3 never overlap more than 3 at once."""
    steps = [_step(f"s{i:02d}") for i in range(12)]
    executor = ScriptedExecutor(default=Succeed(delay=0.05))
    log = EventLog()
    if via == "globals":
        plan = _plan(steps, max_concurrency=3)
        result = await run_plan(plan, state_dir=state_dir, on_event=log, executor=executor)
    else:
        # The argument overrides a larger value in globals.
        plan = _plan(steps, max_concurrency=12)
        result = await run_plan(
            plan, state_dir=state_dir, max_concurrency=3, on_event=log, executor=executor
        )
    assert result.ok
    assert log.of_type(RunStarted)[0].max_concurrency == 3
    assert len(executor.attempts) == 12
    assert executor.peak <= 3
    assert executor.peak >= 2, "the steps did not run in parallel at all"


async def test_ready_steps_start_in_plan_order_when_slots_are_scarce(state_dir: Path) -> None:
    """With one slot, ready steps start in plan order, including one that became ready late."""
    plan = _plan(
        [
            _step("gate"),
            _step("after-gate", depends_on=["gate"]),
            _step("p1"),
            _step("p2"),
            _step("p3"),
            _step("p4"),
        ],
        max_concurrency=1,
    )
    executor = ScriptedExecutor({"gate": Succeed(delay=0.02)})
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.ok
    # after-gate is ready when gate ends, while p1..p4 are still waiting: it comes first.
    assert executor.started_order() == ["gate", "after-gate", "p1", "p2", "p3", "p4"]
    assert executor.peak == 1


async def test_each_step_is_evaluated_about_once_not_once_per_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Layers of 6 steps, each depending on every step of the layer before (180 edges):
    a dependent's rule is looked at when its last dependency ends, not at every one
    (the layered shape was slow for that: O(edges x in-degree) per run)."""
    import planrun.policy

    width, layers = 6, 6
    steps = []
    for layer in range(layers):
        before = [f"l{layer - 1}_{i}" for i in range(width)] if layer else []
        steps += [_step(f"l{layer}_{i}", depends_on=before) for i in range(width)]
    calls: list[int] = []
    real = planrun.policy.trigger

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(planrun.policy, "trigger", counting)
    result = await run_plan(
        _plan(steps, max_concurrency=3), state_dir=tmp_path, executor=ScriptedExecutor()
    )
    assert result.ok
    # Once at the start and once when ready: 2 per step (once per edge would be 180+).
    assert len(calls) <= 2 * width * layers
