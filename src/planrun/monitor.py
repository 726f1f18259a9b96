"""The monitor API: read runs from any process, for programs and dashboards.

Every function opens the store, runs short read statements and closes it again, so
it is safe to call from any number of processes while runs are being written::

    from planrun import monitor

    runs = await monitor.list_runs(state="running")
    p = await monitor.progress(runs[0].run_id)
    print(p.progress_pct, [e.type for e in p.timeline])

For a GUI thread without an event loop, :class:`SyncMonitor` wraps the same calls.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import msgspec

from . import crash
from .events import Event, event_type
from .model import RunState
from .records import RunRecord, StepRecord
from .store.reader import RunReader
from .store.sqlite import default_state_dir

__all__ = [
    "Progress",
    "SyncMonitor",
    "TimelineEntry",
    "get_events",
    "get_run",
    "get_steps",
    "list_runs",
    "progress",
]

StateDir = str | os.PathLike[str] | None


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event, flattened for display: ``seq``, ``ts``, ``type`` and its ids."""

    seq: int
    ts: str
    type: str
    step_id: str | None
    event: Event


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """A run, its steps, its events in ``seq`` order and ``progress_pct`` (0-100)."""

    run: RunRecord
    steps: list[StepRecord]
    timeline: list[TimelineEntry]
    progress_pct: int

    @property
    def finished(self) -> bool:
        return self.run.state is not RunState.RUNNING


def _dir(state_dir: StateDir) -> str | os.PathLike[str]:
    return state_dir if state_dir is not None else default_state_dir()


async def list_runs(
    *,
    state: RunState | str | None = None,
    plan_id: str | None = None,
    limit: int | None = None,
    state_dir: StateDir = None,
) -> list[RunRecord]:
    """Runs, newest first (filtered by ``state`` and ``plan_id`` when given)."""
    async with RunReader.open(_dir(state_dir)) as reader:
        return await crash.list_runs(reader, state=state, plan_id=plan_id, limit=limit)


async def get_run(run_id: str, *, state_dir: StateDir = None) -> RunRecord | None:
    """One run, or None if there is no such run."""
    async with RunReader.open(_dir(state_dir)) as reader:
        return await crash.get_run(reader, run_id)


async def get_steps(run_id: str, *, state_dir: StateDir = None) -> list[StepRecord]:
    """A run's steps in plan order, each with its attempts."""
    async with RunReader.open(_dir(state_dir)) as reader:
        return await reader.get_steps(run_id)


async def get_events(run_id: str, after_seq: int = 0, *, state_dir: StateDir = None) -> list[Event]:
    """A run's events after ``after_seq``, in ``seq`` order (poll with the last seq)."""
    async with RunReader.open(_dir(state_dir)) as reader:
        return await reader.get_events(run_id, after_seq)


async def progress(run_id: str, *, state_dir: StateDir = None) -> Progress | None:
    """The run, its steps, its timeline and ``progress_pct`` = finished steps * 100 / all."""
    async with RunReader.open(_dir(state_dir)) as reader:
        if await crash.get_run(reader, run_id) is None:
            return None
        async with reader.snapshot():
            run = await reader.get_run(run_id)
            steps = await reader.get_steps(run_id)
            events = await reader.get_events(run_id)
    assert run is not None  # runs are never deleted
    done = sum(step.state.terminal for step in steps)
    timeline = [
        TimelineEntry(
            seq=e.seq, ts=e.ts, type=event_type(e), step_id=getattr(e, "step_id", None), event=e
        )
        for e in events
    ]
    pct = done * 100 // len(steps) if steps else 100
    return Progress(run=run, steps=steps, timeline=timeline, progress_pct=pct)


class SyncMonitor:
    """The monitor API for code without an event loop (e.g. a GUI thread).

    Each call runs its own short event loop; do not call it from async code.
    """

    def __init__(self, state_dir: StateDir = None) -> None:
        self.state_dir = state_dir

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await func(*args, state_dir=self.state_dir, **kwargs)

        return anyio.run(call, backend="asyncio")

    def list_runs(
        self,
        *,
        state: RunState | str | None = None,
        plan_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        result: list[RunRecord] = self._call(list_runs, state=state, plan_id=plan_id, limit=limit)
        return result

    def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = self._call(get_run, run_id)
        return result

    def get_steps(self, run_id: str) -> list[StepRecord]:
        result: list[StepRecord] = self._call(get_steps, run_id)
        return result

    def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        result: list[Event] = self._call(get_events, run_id, after_seq)
        return result

    def progress(self, run_id: str) -> Progress | None:
        result: Progress | None = self._call(progress, run_id)
        return result
