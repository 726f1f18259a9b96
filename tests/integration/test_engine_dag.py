"""DAG scheduling with real processes: dependency order, the concurrency bound, plan order."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.events import RunStarted
from planrun.model import RunState, StepState

from .helpers import (
    EventLog,
    make_plan,
    max_overlap,
    read_intervals,
    read_text,
    start_order,
    timed_step,
)

pytestmark = pytest.mark.anyio


def _assert_after_deps(plan: dict[str, object], times: Path) -> None:
    intervals = read_intervals(times)
    steps = plan["steps"]
    assert isinstance(steps, list)
    for step in steps:
        for dep in step.get("depends_on", []):
            assert intervals[step["id"]].start >= intervals[dep].end, (
                f"{step['id']} started before its dependency {dep} ended"
            )


async def test_diamond_dependents_start_after_all_dependencies(
    tmp_path: Path, state_dir: Path
) -> None:
    """In a diamond a -> (b, c) -> d, no step starts before every dependency has ended."""
    times = tmp_path / "times"
    plan = make_plan(
        [
            timed_step("a", 0.1),
            timed_step("b", 0.3, depends_on=["a"]),
            timed_step("c", 0.1, depends_on=["a"]),
            timed_step("d", 0.0, depends_on=["b", "c"]),
        ],
        max_concurrency=4,
        env={"TIMES": str(times)},
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert result.state is RunState.SUCCEEDED
    assert result.exit_code == 0
    assert {s.state for s in result.steps.values()} == {StepState.SUCCEEDED}
    _assert_after_deps(plan, times)
    intervals = read_intervals(times)
    # b and c are independent of each other: they ran side by side.
    assert intervals["c"].start < intervals["b"].end


async def test_chain_runs_strictly_in_sequence(tmp_path: Path, state_dir: Path) -> None:
    """In a chain s0 -> s1 -> ... -> s5 each step starts after its predecessor ended."""
    times = tmp_path / "times"
    steps = [timed_step("s0", 0.05)]
    steps += [timed_step(f"s{i}", 0.05, depends_on=[f"s{i - 1}"]) for i in range(1, 6)]
    plan = make_plan(steps, max_concurrency=6, env={"TIMES": str(times)})
    result = await run_plan(plan, state_dir=state_dir)
    assert result.ok
    _assert_after_deps(plan, times)
    assert start_order(times) == [f"s{i}" for i in range(6)]
    assert max_overlap(read_intervals(times).values()) == 1


@pytest.mark.parametrize("via", ["argument", "globals"])
async def test_concurrency_bound_is_never_exceeded(
    tmp_path: Path, state_dir: Path, via: str
) -> None:
    """Twelve independent 0.2 s steps under a bound of 3 never overlap more than 3 at once."""
    times = tmp_path / "times"
    steps = [timed_step(f"s{i:02d}", 0.2) for i in range(12)]
    log = EventLog()
    if via == "globals":
        plan = make_plan(steps, max_concurrency=3, env={"TIMES": str(times)})
        result = await run_plan(plan, state_dir=state_dir, on_event=log)
    else:
        # The argument overrides a larger value in globals.
        plan = make_plan(steps, max_concurrency=12, env={"TIMES": str(times)})
        result = await run_plan(plan, state_dir=state_dir, max_concurrency=3, on_event=log)
    assert result.ok
    assert log.of_type(RunStarted)[0].max_concurrency == 3
    intervals = read_intervals(times)
    assert len(intervals) == 12
    overlap = max_overlap(intervals.values())
    assert overlap <= 3
    assert overlap >= 2, "the steps did not run in parallel at all"


async def test_ready_steps_start_in_plan_order_when_slots_are_scarce(
    tmp_path: Path, state_dir: Path
) -> None:
    """With one slot, ready steps start in plan order, including one that became ready late."""
    times = tmp_path / "times"
    plan = make_plan(
        [
            timed_step("gate", 0.05),
            timed_step("after-gate", 0.0, depends_on=["gate"]),
            timed_step("p1", 0.0),
            timed_step("p2", 0.0),
            timed_step("p3", 0.0),
            timed_step("p4", 0.0),
        ],
        max_concurrency=1,
        env={"TIMES": str(times)},
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert result.ok
    # after-gate is ready when gate ends, while p1..p4 are still waiting: it comes first.
    assert start_order(times) == ["gate", "after-gate", "p1", "p2", "p3", "p4"]
    assert max_overlap(read_intervals(times).values()) == 1


async def test_original_design_example_runs(state_dir: Path) -> None:
    """The original design's TEST-001 example succeeds and its log holds "hello"."""
    plan = {
        "plan_id": "TEST-001",
        "globals": {"max_concurrency": 1},
        "steps": [{"id": "echo", "command": "echo", "args": ["hello"], "depends_on": []}],
    }
    result = await run_plan(plan, state_dir=state_dir)
    assert result.ok
    assert result.plan_id == "TEST-001"
    step = result.steps["echo"]
    assert step.state is StepState.SUCCEEDED
    assert step.exit_code == 0
    assert len(step.attempts) == 1
    assert "hello" in read_text(step.attempts[0].log_path)
