"""``monitor.follow`` and the library's own wording, against real runs: ``run_plan`` in
one task writing a real SQLite store, a follower in another."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import CancelError, RunOptions, cancel_run, load_plan, monitor, run_plan
from planrun.errors import UsageError
from planrun.events import Event, RunFinished, RunResumed, RunStarted
from planrun.model import RunState
from planrun.results import RunResult

from .helpers import make_plan, sh_step, unique_run_id

pytestmark = pytest.mark.anyio


def _plan(marker: Path | None = None) -> dict[str, Any]:
    """Three steps in a row; ``second`` fails while ``marker`` does not exist."""
    second = f'[ -e "{marker}" ]' if marker is not None else "sleep 0.2"
    return make_plan(
        [
            sh_step("first", "sleep 0.3"),
            sh_step("second", second, depends_on=["first"]),
            sh_step("third", "sleep 0.2", depends_on=["second"]),
        ],
        plan_id="followed",
    )


class Embedded:
    """A ``run_plan`` task; ``started`` is set once its row and first event exist."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.result: RunResult | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted | RunResumed):
            self.started.set()

    async def run(self, plan: dict[str, Any] | None, options: RunOptions, **kw: Any) -> None:
        self.result = await run_plan(plan, options=options, on_event=self.on_event, **kw)


async def _follow(run_id: str, state_dir: Path, out: list[Event]) -> None:
    async with contextlib.aclosing(monitor.follow(run_id, state_dir=state_dir)) as events:
        async for event in events:
            out.append(event)


async def test_follow_an_embedded_run_from_another_task(state_dir: Path) -> None:
    """follow() started while the run goes yields every event once, in seq order, ending
    by itself with the run's run_finished; the same events the store holds."""
    run_id = unique_run_id("follow")
    run = Embedded()
    seen: list[Event] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.run, _plan(), RunOptions(state_dir=state_dir, run_id=run_id))
            await run.started.wait()
            await _follow(run_id, state_dir, seen)  # returns only when the run ended
            assert run.result is None or run.result.ok
    assert run.result is not None
    assert run.result.ok
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert isinstance(seen[0], RunStarted)
    assert isinstance(seen[-1], RunFinished)
    assert seen[-1].state is RunState.SUCCEEDED
    assert seen == await monitor.get_events(run_id, state_dir=state_dir)


async def test_follow_goes_on_through_a_resume(state_dir: Path, tmp_path: Path) -> None:
    """A follower of a failed run that a resume has taken over does not stop at the
    first run_finished: it yields the resume's events until the resumed run ends."""
    run_id = unique_run_id("follow-resume")
    marker = tmp_path / "fixed"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_plan(marker)))
    failed = await run_plan(plan_file, options=RunOptions(state_dir=state_dir, run_id=run_id))
    assert failed.state is RunState.FAILED
    marker.touch()
    resumed = Embedded()
    seen: list[Event] = []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: resumed.run(None, RunOptions(state_dir=state_dir), resume=run_id))
            await resumed.started.wait()
            await _follow(run_id, state_dir, seen)
    assert resumed.result is not None
    assert resumed.result.ok
    finished = [e for e in seen if isinstance(e, RunFinished)]
    assert [f.state for f in finished] == [RunState.FAILED, RunState.SUCCEEDED]
    assert any(isinstance(e, RunResumed) for e in seen)
    assert seen[-1] == finished[-1]
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))


async def test_follow_of_an_unknown_run_names_it(state_dir: Path) -> None:
    """follow() of a run id the store does not know raises UsageError(field="run_id")."""
    await run_plan(_plan(), options=RunOptions(state_dir=state_dir, run_id="known"))
    with pytest.raises(UsageError, match="no run 'unknown'") as caught:
        await _follow("unknown", state_dir, [])
    assert caught.value.field == "run_id"


async def test_cancel_run_refuses_an_embedded_run(state_dir: Path) -> None:
    """cancel_run() of a run owned by run_plan in a service refuses (SIGTERM would stop
    the whole service) and leaves it running; cancelling its task is the way."""
    run_id = unique_run_id("embedded")
    plan = make_plan([sh_step("long", "sleep 1000")], plan_id="embedded")
    run = Embedded()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run.run, plan, RunOptions(state_dir=state_dir, run_id=run_id))
            await run.started.wait()
            with pytest.raises(CancelError, match="embedded in process") as caught:
                await cancel_run(run_id, state_dir=state_dir, wait_sec=5)
            assert caught.value.state == "running"
            current = await monitor.get_run(run_id, state_dir=state_dir)
            assert current is not None
            assert current.state is RunState.RUNNING
            tg.cancel_scope.cancel()
    current = await monitor.get_run(run_id, state_dir=state_dir)
    assert current is not None
    assert current.state is RunState.CANCELLED


async def test_cancel_run_of_a_finished_or_unknown_run(state_dir: Path) -> None:
    """cancel_run() of a finished run raises CancelError carrying its state; of an
    unknown run id, UsageError(field="run_id")."""
    done = await run_plan(_plan(), options=RunOptions(state_dir=state_dir, run_id="done"))
    assert done.ok
    with pytest.raises(CancelError, match=r"run done is not running \(state: succeeded\)") as c:
        await cancel_run("done", state_dir=state_dir)
    assert c.value.state == "succeeded"
    with pytest.raises(UsageError, match="no run 'nope'") as u:
        await cancel_run("nope", state_dir=state_dir)
    assert u.value.field == "run_id"


async def test_library_errors_use_library_words(state_dir: Path) -> None:
    """The library names its own parameters, never the CLI's flags."""
    with pytest.raises(UsageError) as caught:
        await run_plan(_plan(), state_dir=state_dir, max_concurrency=0)
    assert str(caught.value) == "max_concurrency must be between 1 and 10000"
    assert caught.value.field == "max_concurrency"
    await run_plan(_plan(), state_dir=state_dir, run_id="taken")
    with pytest.raises(UsageError, match="already exists") as caught:
        await run_plan(_plan(), state_dir=state_dir, run_id="taken")
    assert "--" not in str(caught.value)
    assert caught.value.field == "run_id"
    with pytest.raises(UsageError) as caught:
        await run_plan(None, state_dir=state_dir, resume="taken", from_step="a", only="b")
    assert str(caught.value) == "from_step and only cannot be combined"


async def test_run_options_and_keywords_agree(state_dir: Path) -> None:
    """RunOptions decides the defaults once: keyword arguments given beside it win, and
    an unset concurrency is the plan's globals.max_concurrency."""
    options = RunOptions(state_dir=state_dir / "ignored", run_id="from-options")
    result = await run_plan(_plan(), options=options, state_dir=state_dir)
    assert result.run_id == "from-options"
    run = await monitor.get_run("from-options", state_dir=state_dir)
    assert run is not None
    plan = make_plan([sh_step("a", "true")], max_concurrency=3)
    assert RunOptions().resolve(load_plan(plan)).max_concurrency == 3
    assert RunOptions(max_concurrency=2).resolve(load_plan(plan)).max_concurrency == 2
