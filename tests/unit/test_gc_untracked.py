"""The objects a run makes per step are not tracked by the cyclic garbage collector
(msgspec ``gc=False``): each full collection walks every tracked object, and with
100,000 steps those walks stalled an embedding service's loop for half a second each.
They are plain data that never take part in a reference cycle (a plan is a tree:
``plan/read`` refuses cyclic YAML before anything is decoded)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from planrun import run_plan
from planrun.events import Event, RunStarted
from planrun.plan import load_plan
from planrun.policy import dep_outcome
from planrun.ports import ProcessResult
from planrun.state import replay
from planrun.testing import Fail, ScriptedExecutor

pytestmark = pytest.mark.anyio

PLAN = {
    "plan_id": "p",
    "steps": [
        {"id": "a", "command": "x", "args": ["1"], "env": {"K": "v"}},
        {"id": "b", "command": "x", "depends_on": ["a"], "retries": 1},
    ],
}


async def test_a_runs_per_step_objects_are_untracked(tmp_path: Path) -> None:
    events: list[Event] = []
    executor = ScriptedExecutor({"b": [Fail(1), Fail(2)]})
    result = await run_plan(
        PLAN, state_dir=tmp_path / "state", executor=executor, on_event=events.append
    )
    plan = load_plan(PLAN)
    view = replay(events)
    assert view is not None
    started = events[0]
    assert isinstance(started, RunStarted)
    per_step: list[object] = [
        *plan.steps,
        *started.steps,
        *events,
        *view.steps.values(),
        *(a for s in view.steps.values() for a in s.attempts),
        *result.steps.values(),
        *(a for s in result.steps.values() for a in s.attempts),
        dep_outcome(plan.steps[1], view.steps["b"].state),
        ProcessResult(0, outputs={"K": "v"}),
    ]
    assert len(per_step) > 20
    assert [type(o).__name__ for o in per_step if gc.is_tracked(o)] == []
