"""The monitor API read while a real run (``run_plan`` in a task) is being written."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from planrun import monitor, run_plan
from planrun.api import RunResult
from planrun.errors import StoreError
from planrun.events import Event, RunFinished, RunStarted
from planrun.model import RunState

from .helpers import make_plan, sh_step, unique_run_id

pytestmark = pytest.mark.anyio

FLAKY = 'sleep 0.2; [ "$PLANRUN_ATTEMPT" -ge 2 ] || exit 3'


def _plan() -> dict[str, Any]:
    """Four steps finishing one after another over ~1.2 s, one of them retried."""
    return make_plan(
        [
            sh_step("first", "echo first; sleep 0.3"),
            sh_step("flaky", FLAKY, retries=1, depends_on=["first"]),
            sh_step("third", "sleep 0.3", depends_on=["flaky"]),
            sh_step("fourth", "sleep 0.2", depends_on=["third"]),
        ],
        plan_id="monitored",
        max_concurrency=1,
    )


class LiveRun:
    """A run_plan task and a way to wait until its store row exists."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.state_dir = state_dir
        self.run_id = run_id
        self.started = anyio.Event()
        self.result: RunResult | None = None

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started.set()  # create_run committed before the engine's first event

    async def run(self, plan: dict[str, Any]) -> None:
        self.result = await run_plan(
            plan, state_dir=self.state_dir, run_id=self.run_id, on_event=self.on_event
        )


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


async def test_progress_while_the_run_goes(state_dir: Path) -> None:
    """progress() polled during a run: below 100 at first, never going down, 100 at the
    end; every timeline is in seq order without gaps; running lists include the run
    only while it runs."""
    live = LiveRun(state_dir, unique_run_id("progress"))
    polls: list[monitor.Progress] = []
    running_seen: list[bool] = []
    after_checks = 0
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(live.run, _plan())
            await live.started.wait()
            while live.result is None:
                p = await monitor.progress(live.run_id, state_dir=state_dir)
                assert p is not None
                polls.append(p)
                if p.run.state is RunState.RUNNING:
                    running = await monitor.list_runs(state="running", state_dir=state_dir)
                    still = await monitor.get_run(live.run_id, state_dir=state_dir)
                    assert still is not None
                    if still.state is RunState.RUNNING:  # running before and after the list
                        running_seen.append(live.run_id in [r.run_id for r in running])
                # get_events(after_seq=k) mid-run: only the events after k, in order.
                if len(p.timeline) >= 2 and live.result is None:
                    k = len(p.timeline) // 2
                    later = await monitor.get_events(live.run_id, k, state_dir=state_dir)
                    seqs = [e.seq for e in later]
                    assert seqs
                    assert all(s > k for s in seqs)
                    assert seqs == list(range(k + 1, k + 1 + len(seqs)))
                    after_checks += 1
                await anyio.sleep(0.05)

    assert live.result is not None
    assert live.result.ok
    final = await monitor.progress(live.run_id, state_dir=state_dir)
    assert final is not None
    polls.append(final)

    assert len(polls) >= 5
    assert polls[0].progress_pct < 100
    assert not polls[0].finished
    pcts = [p.progress_pct for p in polls]
    assert pcts == sorted(pcts), pcts
    assert len(set(pcts)) >= 3, pcts  # it moved in steps while we watched
    assert final.progress_pct == 100
    assert final.finished
    assert final.run.state is RunState.SUCCEEDED
    assert final.run.exit_code == 0
    for p in polls:
        seqs = [entry.seq for entry in p.timeline]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        assert [entry.event.seq for entry in p.timeline] == seqs
        assert [s.step_id for s in p.steps] == ["first", "flaky", "third", "fourth"]
        done = sum(s.state.terminal for s in p.steps)
        assert p.progress_pct == done * 100 // 4
    lengths = [len(p.timeline) for p in polls]
    assert lengths == sorted(lengths)
    types = [entry.type for entry in final.timeline]
    assert types[0] == "run_started"
    assert types[-1] == "run_finished"
    assert isinstance(final.timeline[-1].event, RunFinished)
    assert types.count("retry_scheduled") == 1
    assert [e.step_id for e in final.timeline if e.type == "step_finished"] == [
        "first",
        "flaky",
        "third",
        "fourth",
    ]
    assert [a.exit_code for a in final.steps[1].attempts] == [3, 0]

    assert running_seen
    assert all(running_seen)
    assert after_checks >= 1
    running = await monitor.list_runs(state=RunState.RUNNING, state_dir=state_dir)
    assert live.run_id not in [r.run_id for r in running]
    succeeded = await monitor.list_runs(state="succeeded", state_dir=state_dir)
    assert [r.run_id for r in succeeded] == [live.run_id]

    # After the run: get_events(after_seq=k) is exactly the tail of the timeline.
    events = await monitor.get_events(live.run_id, state_dir=state_dir)
    assert _builtins(events) == _builtins([e.event for e in final.timeline])
    for k in (0, 1, len(events) // 2, len(events) - 1, len(events)):
        tail = await monitor.get_events(live.run_id, after_seq=k, state_dir=state_dir)
        assert _builtins(tail) == _builtins(events[k:])


async def test_unknown_runs_and_missing_stores(state_dir: Path, tmp_path: Path) -> None:
    """get_run/progress of an unknown id are None (get_steps/get_events empty); a dir
    without a store has no runs to list, and raises StoreError for a run id, rather than
    creating one."""
    live = LiveRun(state_dir, unique_run_id("known"))
    with anyio.fail_after(10):
        await live.run(make_plan([sh_step("only", "true")]))
    assert await monitor.get_run("no-such-run", state_dir=state_dir) is None
    assert await monitor.progress("no-such-run", state_dir=state_dir) is None
    assert await monitor.get_steps("no-such-run", state_dir=state_dir) == []
    assert await monitor.get_events("no-such-run", state_dir=state_dir) == []
    known = await monitor.get_run(live.run_id, state_dir=state_dir)
    assert known is not None
    assert known.owner_kind == "api"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert await monitor.list_runs(state_dir=empty) == []  # no run yet: none to list
    with pytest.raises(StoreError, match="no run store"):
        await monitor.get_run("any", state_dir=empty)
    assert list(empty.iterdir()) == []


async def test_list_runs_filters_and_order(state_dir: Path) -> None:
    """list_runs is newest first and filters by state, plan id and limit."""
    ids: list[str] = []
    with anyio.fail_after(10):
        for plan_id, script in (("pa", "true"), ("pb", "exit 1"), ("pa", "true")):
            run_id = unique_run_id(plan_id)
            ids.append(run_id)
            await run_plan(
                make_plan([sh_step("s", script)], plan_id=plan_id),
                state_dir=state_dir,
                run_id=run_id,
            )
    runs = await monitor.list_runs(state_dir=state_dir)
    assert [r.run_id for r in runs] == ids[::-1]
    assert [r.state for r in runs] == [RunState.SUCCEEDED, RunState.FAILED, RunState.SUCCEEDED]
    assert [(r.steps_done, r.step_count) for r in runs] == [(1, 1)] * 3
    assert [r.run_id for r in await monitor.list_runs(plan_id="pa", state_dir=state_dir)] == [
        ids[2],
        ids[0],
    ]
    failed = await monitor.list_runs(state=RunState.FAILED, state_dir=state_dir)
    assert [r.run_id for r in failed] == [ids[1]]
    assert [r.run_id for r in await monitor.list_runs(limit=1, state_dir=state_dir)] == [ids[2]]
    assert await monitor.list_runs(state="cancelled", state_dir=state_dir) == []


async def test_sync_monitor_from_a_thread(state_dir: Path) -> None:
    """SyncMonitor, called from a plain worker thread, works during a run and returns
    the same data as the async API once the run is over."""
    live = LiveRun(state_dir, unique_run_id("sync"))
    sync = monitor.SyncMonitor(state_dir)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(live.run, _plan())
            await live.started.wait()
            mid = await anyio.to_thread.run_sync(sync.progress, live.run_id)
            assert mid is not None
            assert mid.run.run_id == live.run_id
            assert mid.progress_pct < 100
            assert live.run_id in [
                r.run_id
                for r in await anyio.to_thread.run_sync(lambda: sync.list_runs(state="running"))
            ]
    assert live.result is not None

    async_side = (
        await monitor.progress(live.run_id, state_dir=state_dir),
        await monitor.list_runs(state_dir=state_dir),
        await monitor.get_run(live.run_id, state_dir=state_dir),
        await monitor.get_steps(live.run_id, state_dir=state_dir),
        await monitor.get_events(live.run_id, 3, state_dir=state_dir),
    )

    def sync_side() -> tuple[Any, ...]:
        return (
            sync.progress(live.run_id),
            sync.list_runs(),
            sync.get_run(live.run_id),
            sync.get_steps(live.run_id),
            sync.get_events(live.run_id, 3),
        )

    with anyio.fail_after(10):
        from_thread = await anyio.to_thread.run_sync(sync_side)
    assert _builtins(from_thread) == _builtins(async_side)
    progress = from_thread[0]
    assert isinstance(progress, monitor.Progress)
    assert progress.progress_pct == 100
    assert await anyio.to_thread.run_sync(sync.get_run, "no-such-run") is None


async def test_progress_is_one_consistent_snapshot(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """progress() is a coherent snapshot even when the run finishes while it is being
    read: `finished`, `last_seq` and the timeline agree."""
    from planrun.records import StepRecord
    from planrun.store.reader import RunReader

    live = LiveRun(state_dir, unique_run_id("torn"))
    run_over = anyio.Event()
    original = RunReader.get_steps

    async def slow_get_steps(self: RunReader, run_id: str) -> list[StepRecord]:
        # A slow reader: the run ends (and commits) between two of its statements.
        await run_over.wait()
        return await original(self, run_id)

    async def run_then_signal() -> None:
        await live.run(make_plan([sh_step("only", "sleep 0.3")]))
        run_over.set()

    monkeypatch.setattr(RunReader, "get_steps", slow_get_steps)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_then_signal)
            await live.started.wait()
            p = await monitor.progress(live.run_id, state_dir=state_dir)
    assert p is not None
    # The snapshot may be taken before the first batch of events is committed.
    last_seq = p.timeline[-1].seq if p.timeline else 0
    assert p.run.last_seq == last_seq
    assert p.finished == bool(p.timeline and p.timeline[-1].type == "run_finished")
    assert (p.progress_pct == 100) == all(s.state.terminal for s in p.steps)


async def test_list_runs_filters_by_trigger_in_both_apis(state_dir: Path) -> None:
    """``trigger=`` (as ``planrun list --trigger``): the kind that started a run, or
    ``manual``; ``SyncMonitor.list_runs`` takes it like ``monitor.list_runs``."""
    from planrun.options import RunOptions

    plan = make_plan([sh_step("ok", "true")], plan_id="kinds")
    by_hand, timed = unique_run_id("manual"), unique_run_id("every")
    assert (await run_plan(plan, state_dir=state_dir, run_id=by_hand)).ok
    info = {"kind": "every", "key": "0-every-x", "slot": "2026-12-01T00:00:00Z"}
    options = RunOptions(state_dir=state_dir, run_id=timed, trigger=info)
    assert (await run_plan(plan, options=options)).ok
    sync = monitor.SyncMonitor(state_dir)
    for kind, wanted in (("every", [timed]), ("manual", [by_hand]), ("git", [])):
        mine = await monitor.list_runs(trigger=kind, state_dir=state_dir)
        assert [r.run_id for r in mine] == wanted, kind
        theirs = await anyio.to_thread.run_sync(functools.partial(sync.list_runs, trigger=kind))
        assert [r.run_id for r in theirs] == wanted, kind
