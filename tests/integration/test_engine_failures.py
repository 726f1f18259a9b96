"""Failure policies, trigger rules and the run outcome, with real processes.

The policy tests share one DAG: a diamond ``a -> (b, c) -> d -> e`` where ``b`` fails,
an independent branch ``x -> y``, a ``when: all_done`` cleanup after ``e`` and ``y``,
and a ``when: one_failed`` rollback after ``b``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planrun import run_plan
from planrun.events import RunAborting, RunFinished
from planrun.model import AttemptState, RunState, StepState

from .helpers import EventLog, live_run_processes, make_plan, sh_step

pytestmark = pytest.mark.anyio

NO_FAILURE = "no dependency failed (when: one_failed)"


def _policy_plan(
    b_fields: dict[str, Any],
    c_script: str = "exit 0",
    x_script: str = "exit 0",
    b_script: str = "exit 1",
    **globals_: Any,
) -> dict[str, Any]:
    return make_plan(
        [
            sh_step("a", "exit 0"),
            sh_step("b", b_script, depends_on=["a"], **b_fields),
            sh_step("c", c_script, depends_on=["a"]),
            sh_step("d", "exit 0", depends_on=["b", "c"]),
            sh_step("e", "exit 0", depends_on=["d"]),
            sh_step("x", x_script),
            sh_step("y", "exit 0", depends_on=["x"]),
            sh_step("cleanup", "exit 0", depends_on=["e", "y"], when="all_done"),
            sh_step("rollback", "exit 0", depends_on=["b"], when="one_failed"),
        ],
        max_concurrency=8,
        **globals_,
    )


def _states(steps: dict[str, Any]) -> dict[str, StepState]:
    return {k: v.state for k, v in steps.items()}


async def test_abort_cancels_running_and_pending_but_runs_cleanup_and_rollback(
    tmp_path: Path, state_dir: Path
) -> None:
    """on_failure abort: a running sibling gets SIGTERM, pending steps end cancelled, and
    the all_done cleanup and one_failed rollback still run."""
    ready_c, ready_x, mark = tmp_path / "ready-c", tmp_path / "ready-x", tmp_path / "term-c"
    # b fails only once c and x are running (and c has its TERM trap installed).
    wait_ready = (
        'i=0; while [ ! -e "$READY_C" ] || [ ! -e "$READY_X" ]; do '
        "i=$((i+1)); [ $i -gt 400 ] && break; sleep 0.05; done; exit 1"
    )
    plan = _policy_plan(
        {"on_failure": "abort"},
        b_script=wait_ready,
        c_script='trap \'echo TERM > "$MARK"; exit 143\' TERM; touch "$READY_C"; sleep 1000 & wait',
        x_script='touch "$READY_X"; sleep 1000',
        env={"READY_C": str(ready_c), "READY_X": str(ready_x), "MARK": str(mark)},
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert live_run_processes(result.run_id) == []
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
    assert mark.read_text() == "TERM\n", "the running sibling did not get SIGTERM"
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


async def test_skip_dependents_skips_only_what_needs_the_failed_step(state_dir: Path) -> None:
    """on_failure skip_dependents: dependents end skipped naming the failed step; the rest
    carries on and the run fails."""
    result = await run_plan(_policy_plan({"on_failure": "skip_dependents"}), state_dir=state_dir)
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
        _policy_plan({"on_failure": "continue"}), state_dir=state_dir, on_event=log
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
        _policy_plan({"on_failure": "abort", "critical": False}), state_dir=state_dir, on_event=log
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
    plan = make_plan(
        [
            sh_step("ok", "exit 0"),
            sh_step("bad", "exit 1", **bad),
            sh_step("slow-bad", "sleep 0.3; exit 1", **bad),
            sh_step("skipped", "exit 0", depends_on=["bad"]),
            sh_step("all-success-ok", "exit 0", depends_on=["ok"]),
            sh_step("all-success-bad", "exit 0", depends_on=["ok", "bad"]),
            sh_step("all-success-skip", "exit 0", depends_on=["ok", "skipped"]),
            sh_step("all-done-bad", "exit 0", depends_on=["ok", "bad"], when="all_done"),
            sh_step("all-done-skip", "exit 0", depends_on=["skipped"], when="all_done"),
            sh_step("one-failed-yes", "exit 0", depends_on=["ok", "bad"], when="one_failed"),
            sh_step("one-failed-no", "exit 0", depends_on=["ok"], when="one_failed"),
            sh_step("one-failed-skip", "exit 0", depends_on=["skipped"], when="one_failed"),
            sh_step("none-failed-ok", "exit 0", depends_on=["ok", "skipped"], when="none_failed"),
            sh_step("none-failed-bad", "exit 0", depends_on=["ok", "bad"], when="none_failed"),
            # one_failed waits for every dependency, even once one has failed.
            sh_step(
                "one-failed-waits",
                'echo "$(date +%s.%N)"',
                depends_on=["bad", "slow-bad"],
                when="one_failed",
            ),
        ],
        max_concurrency=4,
    )
    result = await run_plan(plan, state_dir=state_dir)
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
    # Only non-critical steps failed.
    assert result.state is RunState.SUCCEEDED


async def test_timed_out_dependency_counts_as_failed_for_one_failed(state_dir: Path) -> None:
    """A timed-out dependency triggers a one_failed step and skips an all_success one."""
    plan = make_plan(
        [
            sh_step("slow", "sleep 1000", timeout_sec=0.2, on_failure="skip_dependents"),
            sh_step("rollback", "exit 0", depends_on=["slow"], when="one_failed"),
            sh_step("next", "exit 0", depends_on=["slow"]),
        ]
    )
    result = await run_plan(plan, state_dir=state_dir)
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
    plan = make_plan(
        [
            sh_step("ok", "exit 0"),
            sh_step("bad", "exit 7", critical=critical, on_failure="skip_dependents"),
        ]
    )
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert result.state == state
    assert result.exit_code == code
    assert result.ok is (not critical)
    assert result.steps["bad"].state is StepState.FAILED
    assert result.steps["bad"].exit_code == 7
    assert result.steps["bad"].reason == "exit code 7"
    assert log.of_type(RunFinished)[0].failed_steps == ["bad"]


async def test_success_exit_codes(state_dir: Path) -> None:
    """An exit code listed in success_exit_codes counts as success; 0 then does not."""
    plan = make_plan(
        [
            sh_step("three-ok", "exit 3", success_exit_codes=[0, 3]),
            sh_step("zero-bad", "exit 0", success_exit_codes=[1], on_failure="continue"),
        ]
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert result.steps["three-ok"].state is StepState.SUCCEEDED
    assert result.steps["three-ok"].exit_code == 3
    assert result.steps["zero-bad"].state is StepState.FAILED


async def test_run_deadline_fails_with_124_and_still_runs_cleanup(
    tmp_path: Path, state_dir: Path
) -> None:
    """globals.timeout_sec: running steps are cancelled, pending ones too, the all_done
    cleanup still runs, and the run fails with exit code 124."""
    plan = make_plan(
        [
            sh_step("quick", "exit 0"),
            sh_step("long", "sleep 1000", depends_on=["quick"]),
            sh_step("after", "exit 0", depends_on=["long"]),
            sh_step("cleanup", 'echo cleaned > "$OUT"', depends_on=["after"], when="all_done"),
        ],
        timeout_sec=1.0,
        env={"OUT": str(tmp_path / "cleanup")},
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert live_run_processes(result.run_id) == []
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
    assert (tmp_path / "cleanup").read_text() == "cleaned\n"
    assert len(log.of_type(RunAborting)) == 1
    assert log.of_type(RunAborting)[0].step_id is None
