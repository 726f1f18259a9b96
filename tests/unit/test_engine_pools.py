"""Pools, ``max_parallel`` and ``fail_fast`` in the scheduler, on the scripted executor:
how many members run at once, who overtakes a step waiting for a pool slot, and which
siblings a failing instance cancels.

Named pools go through ``run_plan`` (a real store). Instances (``base[label]`` ids,
made by the matrix and ``for_each`` expansion) cannot be written in a plan, so those
tests build the steps directly and drive the engine.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.engine import Engine, EngineConfig
from planrun.events import Event, StepFinished
from planrun.model import OnFailure, Plan, Step, StepState
from planrun.plan import resolve_steps
from planrun.testing import Action, Fail, Hang, ScriptedExecutor, Succeed

pytestmark = pytest.mark.anyio


def _step(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "command": "scripted", **fields}


def _plan(steps: list[dict[str, Any]], **globals_: Any) -> dict[str, Any]:
    return {"plan_id": "pools", "globals": globals_, "steps": steps}


async def test_a_pool_of_two_never_runs_more_than_two(tmp_path: Path) -> None:
    """Six members of a pool of 2 (and room for 10): two at a time, all succeed."""
    plan = _plan([_step(f"s{i}", pool="db") for i in range(6)], max_concurrency=10, pools={"db": 2})
    executor = ScriptedExecutor(default=Succeed(delay=0.05))
    result = await run_plan(plan, state_dir=tmp_path, executor=executor)
    assert result.state.value == "succeeded"
    assert executor.peak == 2
    assert len(executor.attempts) == 6


async def test_a_step_waiting_for_its_pool_holds_no_run_slot(tmp_path: Path) -> None:
    """Run slots 2, pool 1: d2 and d3 wait for the pool, and x (written after them)
    takes the second run slot at once instead of waiting behind them."""
    plan = _plan(
        [_step("d1", pool="db"), _step("d2", pool="db"), _step("d3", pool="db"), _step("x")],
        max_concurrency=2,
        pools={"db": 1},
    )
    executor = ScriptedExecutor(default=Succeed(delay=0.05))
    result = await run_plan(plan, state_dir=tmp_path, executor=executor)
    assert result.state.value == "succeeded"
    assert executor.started_order() == ["d1", "x", "d2", "d3"]
    # The pool members never overlapped.
    db = [a for a in executor.attempts if a.step_id != "x"]
    for earlier, later in itertools.pairwise(db):
        assert earlier.ended is not None
        assert earlier.ended <= later.started


async def test_pool_members_start_in_plan_order(tmp_path: Path) -> None:
    """Parked members go back in plan order as slots free."""
    plan = _plan([_step(f"s{i}", pool="p") for i in range(5)], pools={"p": 1})
    executor = ScriptedExecutor(default=Succeed(delay=0.01))
    await run_plan(plan, state_dir=tmp_path, executor=executor)
    assert executor.started_order() == [f"s{i}" for i in range(5)]


async def test_an_abort_lets_a_parked_cleanup_step_run(tmp_path: Path) -> None:
    """A critical failure aborts the run while a member waits for the pool and a
    cleanup step (all_done) waits too: the member is cancelled, the cleanup runs (it is
    not stranded behind the cancelled one)."""
    plan = _plan(
        [
            _step("fails", pool="p"),
            _step("waits", pool="p"),
            _step("cleanup", pool="p", when="all_done"),
        ],
        pools={"p": 1},
    )
    executor = ScriptedExecutor({"fails": Fail(delay=0.05)})
    with anyio.fail_after(30):
        result = await run_plan(plan, state_dir=tmp_path, executor=executor)
    states = {k: v.state for k, v in result.steps.items()}
    assert states == {
        "fails": StepState.FAILED,
        "waits": StepState.CANCELLED,
        "cleanup": StepState.SUCCEEDED,
    }


async def test_a_retry_gives_its_pool_slot_back_while_it_waits(tmp_path: Path) -> None:
    """Between attempts a step holds no pool slot: the other member runs meanwhile."""
    plan = _plan(
        [_step("flaky", pool="p", retries=1, retry_delay_sec=0.2), _step("other", pool="p")],
        pools={"p": 1},
    )
    executor = ScriptedExecutor({"flaky": [Fail(), Succeed()]}, default=Succeed())
    result = await run_plan(plan, state_dir=tmp_path, executor=executor)
    assert result.state.value == "succeeded"
    assert executor.started_order() == ["flaky", "other", "flaky"]


# --- instances: max_parallel and fail_fast -----------------------------------------


async def _run_steps(
    steps: list[Step], script: dict[str, Any], max_concurrency: int = 10
) -> tuple[list[Event], ScriptedExecutor]:
    """Run ``steps`` (not validated: instance ids) on the engine with a scripted executor."""
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)

    plan = Plan(plan_id="p", steps=steps)
    executor = ScriptedExecutor(script, default=Succeed(delay=0.05))
    engine = Engine(
        resolve_steps(plan, {}, None),
        EngineConfig(run_id="r", plan_id="p", max_concurrency=max_concurrency),
        executor,
        sink,
    )
    with anyio.fail_after(30):
        await engine.run()
    return events, executor


def _finished(events: list[Event]) -> dict[str, tuple[StepState, str | None]]:
    return {e.step_id: (e.state, e.reason) for e in events if isinstance(e, StepFinished)}


def _instances(n: int, **fields: Any) -> list[Step]:
    return [Step(id=f"test[i={i}]", command="x", **fields) for i in range(n)]


async def test_max_parallel_bounds_the_instances_of_one_step() -> None:
    """Five instances with max_parallel 2: two at a time; another step is not counted."""
    steps = [*_instances(5, max_parallel=2), Step(id="other", command="x")]
    events, executor = await _run_steps(steps, {})
    assert all(state is StepState.SUCCEEDED for state, _ in _finished(events).values())
    tests = [a for a in executor.attempts if a.step_id.startswith("test[")]
    for a in tests:
        overlapping = [
            b for b in tests if b.started < (a.ended or 0) and a.started < (b.ended or 0)
        ]
        assert len(overlapping) <= 2  # itself and at most one other
    assert executor.peak == 3  # two instances and "other"


async def test_max_parallel_is_per_base_step() -> None:
    """Two matrix steps with max_parallel 1 each run one instance each at a time,
    both at once."""
    steps = [
        *[Step(id=f"a[i={i}]", command="x", max_parallel=1) for i in range(3)],
        *[Step(id=f"b[i={i}]", command="x", max_parallel=1) for i in range(3)],
    ]
    _, executor = await _run_steps(steps, {})
    assert executor.peak == 2
    assert executor.started_order()[:2] == ["a[i=0]", "b[i=0]"]


async def test_fail_fast_cancels_the_siblings_only() -> None:
    """An instance fails: its running sibling, the one waiting for a retry and the one
    not started yet end cancelled with the fail_fast reason; an unrelated step and its
    dependent are not affected."""
    fields: dict[str, Any] = {"fail_fast": True, "on_failure": OnFailure.SKIP_DEPENDENTS}
    steps = [
        Step(id="test[i=0]", command="x", **fields),
        Step(id="test[i=1]", command="x", **fields),
        Step(id="test[i=2]", command="x", retries=1, retry_delay_sec=100, **fields),
        Step(id="test[i=3]", command="x", depends_on=["setup"], **fields),
        Step(id="setup", command="x"),
        Step(id="other", command="x"),
        Step(id="after", command="x", depends_on=["other"]),
    ]
    script: dict[str, Action | list[Action]] = {
        "test[i=0]": Fail(delay=0.1),
        "test[i=1]": Hang(),
        "test[i=2]": Fail(),
        "setup": Succeed(delay=1),
        "other": Succeed(delay=0.2),
    }
    events, executor = await _run_steps(steps, script)
    reason = "fail_fast: 'test[i=0]' failed"
    done = _finished(events)
    assert done["test[i=0]"] == (StepState.FAILED, "exit code 1")
    assert done["test[i=1]"] == (StepState.CANCELLED, reason)
    assert done["test[i=2]"] == (StepState.CANCELLED, reason)
    assert done["test[i=3]"][0] is StepState.CANCELLED
    assert done["test[i=3]"][1] == reason
    assert done["other"][0] is StepState.SUCCEEDED
    assert done["after"][0] is StepState.SUCCEEDED
    assert done["setup"][0] is StepState.SUCCEEDED
    assert [a.cancelled for a in executor.of_step("test[i=1]")] == [True]
    assert len(executor.of_step("test[i=2]")) == 1  # its retry never ran


async def test_without_fail_fast_siblings_go_on() -> None:
    """fail_fast is off by default: a failing instance leaves its siblings running."""
    steps = _instances(3, on_failure=OnFailure.SKIP_DEPENDENTS)
    events, _ = await _run_steps(steps, {"test[i=0]": Fail()})
    done = _finished(events)
    assert done["test[i=0]"][0] is StepState.FAILED
    assert done["test[i=1]"][0] is StepState.SUCCEEDED
    assert done["test[i=2]"][0] is StepState.SUCCEEDED


async def test_fail_fast_ignores_steps_that_are_not_instances() -> None:
    """A plain step with fail_fast has no siblings: the others run on."""
    steps = [
        Step(id="a", command="x", fail_fast=True, on_failure=OnFailure.CONTINUE),
        Step(id="a2", command="x", fail_fast=True),
    ]
    events, _ = await _run_steps(steps, {"a": Fail()})
    assert _finished(events)["a2"][0] is StepState.SUCCEEDED


async def test_a_sibling_failing_in_the_same_instant_is_not_retried() -> None:
    """Two instances fail at once: if the sibling's failure is already on its way when
    fail_fast stops it, it ends failed (its own result) without its retry; if it came
    first, its retry is cancelled. Either way it makes one attempt."""
    fail_fast: dict[str, Any] = {"fail_fast": True, "on_failure": OnFailure.SKIP_DEPENDENTS}
    steps = [
        Step(id="test[i=0]", command="x", **fail_fast),
        Step(id="test[i=1]", command="x", retries=2, **fail_fast),
    ]
    events, executor = await _run_steps(steps, {"test[i=0]": Fail(), "test[i=1]": Fail()})
    done = _finished(events)
    assert done["test[i=0]"][0] is StepState.FAILED
    assert done["test[i=1]"][0] in (StepState.FAILED, StepState.CANCELLED)
    assert len(executor.of_step("test[i=1]")) == 1
