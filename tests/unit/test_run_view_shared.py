"""``RunOptions.on_view`` (issue 16, memory): a front end that draws a run reads the
run's own view instead of folding every event into a second one (the CLI did: a
second view of 100,000 steps, ~35 MB)."""

from __future__ import annotations

from pathlib import Path

import anyio

from planrun import run_plan
from planrun.events import Event, RunStarted, StepFinished
from planrun.model import StepState
from planrun.options import RunOptions
from planrun.results import RunResult
from planrun.state import RunView, replay
from planrun.testing import Fail, ScriptedExecutor


def _plan() -> dict[str, object]:
    return {"plan_id": "v", "steps": [{"id": "a", "command": "true"}, {"id": "b", "command": "x"}]}


def test_the_view_is_given_once_before_the_first_event_and_kept_current(
    tmp_path: Path,
) -> None:
    views: list[RunView] = []
    seen: list[tuple[int, int]] = []  # (event seq, the view's last_seq when it came)

    def on_event(event: Event) -> None:
        events.append(event)
        assert len(views) == 1  # given before the first event
        seen.append((event.seq, views[0].last_seq))
        if isinstance(event, StepFinished):  # the view already holds the event
            assert views[0].steps[event.step_id].state is event.state

    events: list[Event] = []
    opts = RunOptions(on_view=views.append, state_dir=tmp_path / "st")

    async def main() -> RunResult:
        ex = ScriptedExecutor({"b": Fail(exit_code=4)})
        return await run_plan(_plan(), options=opts, executor=ex, on_event=on_event)

    result = anyio.run(main)
    assert len(views) == 1
    assert all(seq == last for seq, last in seen)
    assert isinstance(events[0], RunStarted)
    # Not consumed by the result: the caller still reads it after the run.
    view = views[0]
    assert list(view.steps) == ["a", "b"]
    assert view.steps["b"].state is StepState.FAILED
    assert RunResult.from_view(view) == result
    again = replay(events)
    assert again is not None
    assert RunResult.from_view(again) == result
