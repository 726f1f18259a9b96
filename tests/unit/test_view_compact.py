"""The reducer's view keeps no empty containers it can do without (issue 16, memory):
a step that wrote no outputs holds None, not a dict of its own (its result still says
``{}``), and a step's one attempt is a list of one."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from planrun import run_plan
from planrun.events import Event, StepFinished
from planrun.model import StepState
from planrun.results import RunResult
from planrun.state import replay
from planrun.testing import Fail, ScriptedExecutor, Succeed


def test_no_dict_per_step_without_outputs_and_the_result_unchanged(tmp_path: Path) -> None:
    events: list[Event] = []
    steps: list[dict[str, object]] = [{"id": i, "command": "x"} for i in ("quiet", "says", "fails")]

    async def main() -> RunResult:
        script: dict[str, Succeed | Fail] = {
            "says": Succeed(outputs={"k": "v"}),
            "fails": Fail(exit_code=2),
        }
        plan = {"plan_id": "o", "steps": steps}
        ex = ScriptedExecutor(script)
        return await run_plan(plan, state_dir=tmp_path / "st", executor=ex, on_event=events.append)

    result = anyio.run(main)
    view = replay(events)
    assert view is not None
    assert view.steps["quiet"].state is StepState.SUCCEEDED
    assert view.steps["quiet"].outputs is None
    assert view.steps["says"].outputs == {"k": "v"}
    one = view.steps["quiet"].attempts
    assert len(one) == 1
    assert sys.getsizeof(one) == sys.getsizeof([None])
    # The result is as it was: {} for a succeeded step that wrote nothing, None else.
    assert result.steps["quiet"].outputs == {}
    assert result.steps["says"].outputs == {"k": "v"}
    assert result.steps["fails"].outputs is None
    assert RunResult.from_view(view) == result
    finished = [e for e in events if isinstance(e, StepFinished) and e.step_id == "quiet"]
    assert [e.outputs for e in finished] == [{}]  # recorded as before
