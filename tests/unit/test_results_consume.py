"""A run's result is built by consuming the reducer's view (issue 16, memory): each
step's view is dropped as its result is made, so a 100,000-step run never holds both
in full. The result must be the same as one built from an intact view, and in order."""

from __future__ import annotations

from pathlib import Path

import anyio

from planrun import run_plan
from planrun.events import Event
from planrun.results import RunResult
from planrun.state import replay
from planrun.testing import Fail, ScriptedExecutor


def test_a_consumed_view_gives_the_same_result_in_plan_order(tmp_path: Path) -> None:
    steps: list[dict[str, object]] = [{"id": f"s{i}", "command": "true"} for i in (3, 1, 2, 0)]
    steps[1]["retries"] = 1
    events: list[Event] = []

    async def main() -> RunResult:
        ex = ScriptedExecutor({"s1": Fail(exit_code=2)})
        plan = {"plan_id": "c", "steps": steps}
        return await run_plan(plan, state_dir=tmp_path / "st", executor=ex, on_event=events.append)

    result = anyio.run(main)
    view = replay(events)
    assert view is not None
    whole = RunResult.from_view(view)
    assert result == whole
    assert list(result.steps) == ["s3", "s1", "s2", "s0"]
    assert len(result.steps["s1"].attempts) == 2
    consumed = RunResult.from_view(view, consume=True)
    assert consumed == whole
    assert list(consumed.steps) == ["s3", "s1", "s2", "s0"]
    assert view.steps == {}
