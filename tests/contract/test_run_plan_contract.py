"""The executor contract through ``run_plan(..., executor=...)``: the engine's retries,
success codes, variables, env, outputs between steps and secrets behave the same on
every executor."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.model import AttemptState, StepState
from planrun.ports import Executor

from ..integration.helpers import (
    live_processes_with,
    make_plan,
    poll_until,
    read_text,
    sh_step,
    unique_run_id,
)
from .conftest import MARK_VAR

pytestmark = pytest.mark.anyio


def plan(mark: str, *steps: dict[str, Any], **globals_: Any) -> dict[str, Any]:
    """A plan whose every step carries the test's mark (through globals.env)."""
    env = {MARK_VAR: mark, **globals_.pop("env", {})}
    return make_plan(list(steps), env=env, **globals_)


async def test_success_codes_retries_and_backoff(
    executor: Executor, tmp_path: Path, state_dir: Path, mark: str
) -> None:
    """A step failing twice then exiting 3 (a success code) succeeds on attempt 3, the
    engine waiting between attempts; a step exiting 3 without that rule fails."""
    counter = tmp_path / "count"
    flaky = (
        'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; '
        "[ $n -ge 3 ] && exit 3; exit 1"
    )
    result = await run_plan(
        plan(
            mark,
            sh_step(
                "flaky",
                flaky,
                str(counter),
                retries=3,
                retry_delay_sec=0.05,
                retry_backoff=2,
                success_exit_codes=[0, 3],
            ),
            sh_step("strict", "exit 3", critical=False),
        ),
        state_dir=state_dir,
        run_id=unique_run_id("codes"),
        executor=executor,
    )
    flaky_step = result.steps["flaky"]
    assert flaky_step.state is StepState.SUCCEEDED
    assert [a.state for a in flaky_step.attempts] == [
        AttemptState.FAILED,
        AttemptState.FAILED,
        AttemptState.SUCCEEDED,
    ]
    assert result.steps["strict"].state is StepState.FAILED


async def test_variables_env_and_outputs(executor: Executor, state_dir: Path, mark: str) -> None:
    """Variables, globals.env and step env reach the step; an output feeds the next."""
    p = plan(
        mark,
        sh_step(
            "a", 'echo "k=$PR_G-$PR_S-$1" >> "$PLANRUN_OUTPUT"', "${WHO}", env={"PR_S": "step"}
        ),
        sh_step("b", 'echo "got $1"', "${steps.a.outputs.k}", depends_on=["a"]),
        env={"PR_G": "global"},
    )
    p["variables"] = {"WHO": "nobody"}
    result = await run_plan(
        p, {"WHO": "me"}, state_dir=state_dir, run_id=unique_run_id("env"), executor=executor
    )
    assert result.ok, result
    assert read_text(result.steps["b"].attempts[0].log_path) == "got global-step-me\n"


async def test_secret_masked_in_the_log(executor: Executor, state_dir: Path, mark: str) -> None:
    """A secret reaches the step and never its log."""
    p = plan(mark, sh_step("s", 'echo "t=$TOKEN"', env={"TOKEN": "${TOKEN}"}))
    p["secrets"] = ["TOKEN"]
    result = await run_plan(
        p,
        state_dir=state_dir,
        run_id=unique_run_id("secret"),
        executor=executor,
        secrets={"TOKEN": "s3cr3t-v4lue"},
    )
    assert result.ok, result
    assert read_text(result.steps["s"].attempts[0].log_path) == "t=***\n"


async def test_timeout_through_the_engine(executor: Executor, state_dir: Path, mark: str) -> None:
    """A step over its timeout ends timed_out, its tree gone (checked after the test)."""
    result = await run_plan(
        plan(mark, sh_step("slow", "sleep 30 & setsid sleep 30 & wait", timeout_sec=0.5)),
        state_dir=state_dir,
        run_id=unique_run_id("timeout"),
        executor=executor,
    )
    assert result.steps["slow"].state is StepState.TIMED_OUT


async def test_cancelled_run_plan_stops_every_tree(
    executor: Executor, state_dir: Path, mark: str
) -> None:
    """Cancelling the caller of run_plan stops both running steps' trees (escapees
    included), by TERM, well before their 30 s grace."""
    tree = "sleep 30 & setsid sleep 30 & wait"
    p = plan(mark, sh_step("a", tree), sh_step("b", tree), kill_grace_sec=30)
    took = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            functools.partial(
                run_plan,
                p,
                state_dir=state_dir,
                run_id=unique_run_id("cancel"),
                executor=executor,
            )
        )
        with anyio.fail_after(20):
            await poll_until(lambda: len(live_processes_with(f"{MARK_VAR}={mark}")) >= 6)
        begin = time.monotonic()
        tg.cancel_scope.cancel()
    took = time.monotonic() - begin
    assert live_processes_with(f"{MARK_VAR}={mark}") == []
    assert took < 10
