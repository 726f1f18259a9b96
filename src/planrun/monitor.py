"""The monitor API: read and follow runs from any process, for programs and dashboards.

Every function opens the store, runs short read statements and closes it again, so
it is safe to call from any number of processes while runs are being written::

    from planrun import monitor

    runs = await monitor.list_runs(state="running")
    p = await monitor.progress(runs[0].run_id)
    print(p.progress_pct, [e.type for e in p.timeline])

    async with contextlib.aclosing(monitor.follow(run_id)) as events:
        async for event in events:  # through resumes, until the run ends
            print(event.seq, type(event).__name__)

:func:`open_session` keeps one connection for many reads (a loop that polls).
For a GUI thread without an event loop, :class:`SyncMonitor` wraps the same calls.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from typing import Any

import anyio
import msgspec

from . import crash
from .errors import NoRunStore, UsageError
from .events import Event, RunCrashed, RunFinished, event_type
from .model import RunState
from .paths import state_dir_or_default
from .records import RunRecord, StepRecord
from .store.reader import RunReader

__all__ = [
    "FOLLOW_POLL_SEC",
    "PLAN_HISTORY_LIMIT",
    "Progress",
    "RunSteps",
    "Session",
    "SyncMonitor",
    "TimelineEntry",
    "follow",
    "get_events",
    "get_plan",
    "get_run",
    "get_steps",
    "list_runs",
    "open_session",
    "percent_done",
    "plan_history",
    "progress",
]

StateDir = str | os.PathLike[str] | None

#: Seconds between two reads of the store while following a run.
FOLLOW_POLL_SEC = 0.1
#: Events :func:`follow` reads at once.
FOLLOW_PAGE = 2000
#: Runs :func:`plan_history` reads at most (the newest): bounds the work of a plan's page.
PLAN_HISTORY_LIMIT = 200
#: Reads without a new event between two checks that the run's owner is alive.
_OWNER_CHECK_EVERY = 10


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


class RunSteps(msgspec.Struct, frozen=True, kw_only=True):
    """One run and its steps (with their attempts and ``duration_sec``), as stored."""

    run: RunRecord
    steps: list[StepRecord]


class Session:
    """Reads of one state dir over one connection (see :func:`open_session`).

    Runs read through it are checked first: a ``running`` run whose owner process is
    verifiably gone is marked ``crashed`` (see :mod:`planrun.crash`).
    """

    def __init__(self, reader: RunReader) -> None:
        self._reader = reader
        self.state_dir = reader.state_dir

    async def list_runs(
        self,
        *,
        state: RunState | str | None = None,
        plan_id: str | None = None,
        limit: int | None = None,
        trigger: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (filtered by ``state``, ``plan_id`` and ``trigger``, the
        kind that started them or ``"manual"``, when given)."""
        return await crash.list_runs(
            self._reader, state=state, plan_id=plan_id, limit=limit, trigger=trigger
        )

    async def get_run(self, run_id: str, *, check_owner: bool = True) -> RunRecord | None:
        """One run, or None. ``check_owner=False``: as stored, without the crash
        check (see :meth:`mark_if_crashed`)."""
        if check_owner:
            return await crash.get_run(self._reader, run_id)
        return await self._reader.get_run(run_id)

    async def mark_if_crashed(self, run: RunRecord) -> bool:
        """Mark ``run`` crashed if it is running and its owner is gone; True if so."""
        return await crash.reap_crashed(self.state_dir, [run])

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """A run's steps in plan order, each with its attempts."""
        return await self._reader.get_steps(run_id)

    async def get_events(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """A run's events after ``after_seq``, in ``seq`` order (at most ``limit``)."""
        return await self._reader.get_events(run_id, after_seq, limit)

    async def count_steps(self, run_id: str) -> dict[str, int]:
        """How many steps of the run are in each state (a state with none left out)."""
        return await self._reader.count_steps(run_id)

    async def get_some_steps(
        self, run_id: str, *, limit: int, states: Collection[str] | None = None
    ) -> list[StepRecord]:
        """The first ``limit`` steps in plan order (only those in ``states`` when
        given), with their attempts: a page of a large run."""
        return await self._reader.get_some_steps(run_id, limit=limit, states=states)

    def iter_steps(self, run_id: str) -> AsyncIterator[StepRecord]:
        """Every step in plan order with its attempts, read as it is consumed (bounded
        memory for any size of run); inside :meth:`snapshot` for a consistent view."""
        return self._reader.iter_steps(run_id)

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The reads inside are one consistent view (a short read transaction)."""
        return self._reader.snapshot()

    async def get_plan(self, run_id: str) -> dict[str, Any] | None:
        """The plan the run ran (secrets masked), as JSON builtins; None if the run
        was recorded without it (an older planrun)."""
        return await self._reader.get_plan(run_id)

    async def run_and_steps(self, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
        """The run and its steps as one consistent snapshot (None: no such run)."""
        # Crash marking first, outside the snapshot: a snapshot begun before the mark
        # was written would still show the run (and its steps) running.
        if await self.get_run(run_id) is None:
            return None
        async with self._reader.snapshot():
            run = await self._reader.get_run(run_id)
            steps = await self._reader.get_steps(run_id)
        return (run, steps) if run is not None else None  # None: pruned meanwhile

    async def plan_history(
        self, plan_id: str, *, limit: int = PLAN_HISTORY_LIMIT
    ) -> list[RunSteps]:
        """See :func:`plan_history`."""
        runs = await self.list_runs(plan_id=plan_id, limit=max(1, limit))
        return [RunSteps(run=run, steps=await self.get_steps(run.run_id)) for run in runs]

    async def progress(self, run_id: str) -> Progress | None:
        """See :func:`progress`."""
        if await self.get_run(run_id) is None:
            return None
        async with self._reader.snapshot():
            run = await self._reader.get_run(run_id)
            steps = await self._reader.get_steps(run_id)
            events = await self._reader.get_events(run_id)
        if run is None:  # pruned meanwhile
            return None
        done = sum(step.state.terminal for step in steps)
        timeline = [
            TimelineEntry(
                seq=e.seq,
                ts=e.ts,
                type=event_type(e),
                step_id=getattr(e, "step_id", None),
                event=e,
            )
            for e in events
        ]
        pct = percent_done(done, len(steps))
        return Progress(run=run, steps=steps, timeline=timeline, progress_pct=pct)


def percent_done(done: int, total: int) -> int:
    """``progress_pct``: finished steps * 100 // all steps (100 for a run of none).
    :attr:`RunRecord.steps_done` / ``step_count`` give it without reading the steps."""
    return done * 100 // total if total else 100


@contextlib.asynccontextmanager
async def open_session(state_dir: StateDir = None) -> AsyncIterator[Session]:
    """One connection to ``state_dir``'s store for many reads (``StoreError`` if
    there is no store there). Hold it only as long as a loop polls."""
    async with RunReader.open(state_dir_or_default(state_dir)) as reader:
        yield Session(reader)


async def list_runs(
    *,
    state: RunState | str | None = None,
    plan_id: str | None = None,
    limit: int | None = None,
    state_dir: StateDir = None,
    trigger: str | None = None,
) -> list[RunRecord]:
    """Runs, newest first (filtered by ``state``, ``plan_id`` and ``trigger`` when
    given); an empty list where no run was ever started (no store in ``state_dir`` yet)."""
    try:
        async with open_session(state_dir) as session:
            return await session.list_runs(
                state=state, plan_id=plan_id, limit=limit, trigger=trigger
            )
    except NoRunStore:
        return []


async def get_run(run_id: str, *, state_dir: StateDir = None) -> RunRecord | None:
    """One run, or None if there is no such run."""
    async with open_session(state_dir) as session:
        return await session.get_run(run_id)


async def get_steps(run_id: str, *, state_dir: StateDir = None) -> list[StepRecord]:
    """A run's steps in plan order, each with its attempts."""
    async with open_session(state_dir) as session:
        return await session.get_steps(run_id)


async def get_events(run_id: str, after_seq: int = 0, *, state_dir: StateDir = None) -> list[Event]:
    """A run's events after ``after_seq``, in ``seq`` order (poll with the last seq)."""
    async with open_session(state_dir) as session:
        return await session.get_events(run_id, after_seq)


async def get_plan(run_id: str, *, state_dir: StateDir = None) -> dict[str, Any] | None:
    """The plan run ``run_id`` ran (secrets masked) as JSON builtins, or None if the
    run is unknown or was recorded without its plan."""
    async with open_session(state_dir) as session:
        return await session.get_plan(run_id)


async def progress(run_id: str, *, state_dir: StateDir = None) -> Progress | None:
    """The run, its steps, its timeline and ``progress_pct`` = finished steps * 100 / all."""
    async with open_session(state_dir) as session:
        return await session.progress(run_id)


async def plan_history(
    plan_id: str, *, limit: int = PLAN_HISTORY_LIMIT, state_dir: StateDir = None
) -> list[RunSteps]:
    """The last ``limit`` runs of plan ``plan_id`` (newest first, at most
    :data:`PLAN_HISTORY_LIMIT` by default), each with its steps: what a plan's
    durations and failures over time are computed from. Empty if the plan never ran
    (or no run was ever started in ``state_dir``). Reads one run list and one step
    list per run: the work grows with ``limit``, not with the store."""
    try:
        async with open_session(state_dir) as session:
            return await session.plan_history(plan_id, limit=limit)
    except NoRunStore:
        return []


async def follow(
    run_id: str,
    *,
    state_dir: StateDir = None,
    after_seq: int = 0,
    on_notice: Callable[[str], None] | None = None,
) -> AsyncGenerator[Event, None]:
    """Every event of run ``run_id`` after ``after_seq``, in ``seq`` order, as it is
    written, from any process; the iterator ends when the run ends (``run_finished``
    or ``run_crashed``), unless a resume has taken it over since (its events follow).

    Polls the store (the writer is another process, which cannot wake this one),
    holding one connection and no transaction. While no event comes, it checks about
    every second that the run's owner is alive: one verifiably gone is marked
    ``crashed`` (``on_notice`` is told), and the ``run_crashed`` event ends the
    iterator. ``UsageError`` (``field="run_id"``) if there is no such run. Close it
    when stopping early: ``async with contextlib.aclosing(follow(...)) as events``.
    """
    async with open_session(state_dir) as session:
        run = await session.get_run(run_id)
        if run is None:
            raise UsageError(f"no run '{run_id}' in {session.state_dir}", field="run_id")
        idle = 0
        last: Event | None = None
        while True:
            # A page at a time: a finished run of 100,000 steps is read in bounded memory.
            events = await session.get_events(run_id, after_seq, FOLLOW_PAGE)
            for event in events:
                after_seq = event.seq
                yield event
            # The last event read, in this page or the one before (a full page may
            # end with the run's last event).
            last = events[-1] if events else last
            if len(events) == FOLLOW_PAGE:
                continue  # more may be stored already: no poll interval
            if isinstance(last, RunFinished | RunCrashed) and not await _resumed(
                session, run_id, after_seq
            ):
                return
            idle = 0 if events else idle + 1
            if idle and idle % _OWNER_CHECK_EVERY == 0:
                await _check_owner(session, run_id, on_notice)
            await anyio.sleep(FOLLOW_POLL_SEC)


async def _resumed(session: Session, run_id: str, seen: int) -> bool:
    """Whether the run is running again (a resume) or has events after ``seen``."""
    current = await session.get_run(run_id, check_owner=False)
    return current is not None and (current.state is RunState.RUNNING or current.last_seq > seen)


async def _check_owner(
    session: Session, run_id: str, on_notice: Callable[[str], None] | None
) -> None:
    """Mark the run crashed if its owner is gone (its ``run_crashed`` event follows)."""
    current = await session.get_run(run_id, check_owner=False)
    if current is not None and await session.mark_if_crashed(current) and on_notice is not None:
        on_notice(
            f"the process running {run_id} (pid {current.owner_pid}) is gone: "
            "the run is marked crashed"
        )


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
        trigger: str | None = None,
    ) -> list[RunRecord]:
        result: list[RunRecord] = self._call(
            list_runs, state=state, plan_id=plan_id, limit=limit, trigger=trigger
        )
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
