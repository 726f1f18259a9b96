"""``planrun serve``: one process that fires the triggers of the plans it serves.

Contract:

- One ``serve`` per state dir: a machine-wide ``flock`` (``locks.py``) named
  ``planrun-serve`` on the state dir; a second one raises ``LockConflict`` naming the
  first (pid, host, since when).
- Each trigger is one task in one task group; a firing goes through the plan's
  :class:`~.runner.PlanRunner` (overlap policy, slot stored before the run starts).
- SIGTERM/SIGINT: stop firing, cancel the running runs (their processes are stopped
  and the runs recorded ``cancelled``), return once nothing runs. SIGHUP, or a changed
  plan file: reload; a plan that became invalid keeps its last good version (logged).
- ``once``: evaluate every trigger once, fire what is due, return after the started
  runs end (1 if one failed).
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from .. import triggers as arith
from ..errors import LockConflict, PlanrunError, UsageError
from ..events import utc_now
from ..locks import HeldLock, LockKey, try_lock
from ..model_triggers import Trigger
from ..paths import state_dir_or_default
from ..store.sqlite import SqliteStore
from ..store.trigger_state import load_trigger_state, save_trigger_state
from .board import Board
from .loader import PLAN_SUFFIXES, LoadedPlan, describe_error, load_plan_file, plan_files
from .runner import PlanRunner
from .sources import run_git, run_timed, run_watch, timed_info

__all__ = ["serve"]

Log = Callable[[str], None]


@dataclass(eq=False)
class _Served:
    loaded: LoadedPlan
    runner: PlanRunner
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    stops: list[anyio.Event] = field(default_factory=list)

    def stop_triggers(self) -> None:
        for event in self.stops:
            event.set()  # a watch thread notices it at once
        self.scope.cancel()


def take_serve_lock(state_dir: Path) -> HeldLock:
    """The state dir's serve lock, or ``LockConflict`` naming who holds it."""
    key = LockKey("planrun-serve", str(state_dir.resolve()))
    held, holder = try_lock(key, "serve", state_dir.resolve(), utc_now())
    if held is None:
        who = (
            f"pid {holder.pid} on {holder.host}, since {holder.acquired_at}"
            if holder is not None
            else "a process that is starting"
        )
        raise LockConflict(f"planrun serve is already running for state dir {state_dir} ({who})")
    return held


async def serve(
    targets: Sequence[Path],
    state_dir: str | Path | None = None,
    *,
    once: bool,
    log: Log,
    board: Board | None = None,
) -> int:
    """Serve the plans in ``targets`` (files or directories) until SIGTERM/SIGINT, or
    evaluate their triggers once (``once``). Returns the exit code: 0, or 1 if a run
    started by ``once`` failed. Raises ``UsageError``/``PlanError`` (nothing to serve,
    a named plan invalid), ``LockConflict`` (another serve), ``StoreError``.
    ``board``: attached while serving, so a dashboard can show the served plans."""
    root = state_dir_or_default(state_dir).absolute()
    service = _Service(list(targets), root, log)
    held = take_serve_lock(root)
    try:
        async with SqliteStore.open(root) as store:
            service.store = store
            if board is not None:
                board.attach(service.plans, store)
            try:
                return await service.run(once)
            finally:
                if board is not None:
                    board.detach()
    finally:
        held.release()


class _Service:
    def __init__(self, targets: list[Path], state_dir: Path, log: Log) -> None:
        self.targets = targets
        self.state_dir = state_dir
        self.log = log
        self.store: SqliteStore
        self.tg: TaskGroup
        self.served: dict[Path, _Served] = {}
        #: The plan files the last scan could not load (each keeps its last good version).
        self.invalid: set[Path] = set()
        self.results: list[tuple[str, int]] = []
        self.stopping = False

    async def run(self, once: bool) -> int:
        found = self._scan(initial=True)
        self.log(f"state dir {self.state_dir}; {len(found)} plan(s) with triggers")
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._signals)
            async with anyio.create_task_group() as tg:
                self.tg = tg
                for loaded in found:
                    self._add(loaded, once)
                if not once:
                    tg.start_soon(self._watch_plan_files)
            outer.cancel_scope.cancel()
        failed = [run_id for run_id, code in self.results if code != 0]
        if once:
            self.log(f"--once: {len(self.results)} run(s) started, {len(failed)} failed")
        else:
            self.log("stopped; nothing is running")
        return 1 if once and failed else 0

    # --- plans --------------------------------------------------------------------

    def plans(self) -> list[tuple[LoadedPlan, PlanRunner]]:
        """The plans served now, each with its runner (read by ``board.Board``)."""
        return [(served.loaded, served.runner) for served in self.served.values()]

    def _scan(self, *, initial: bool) -> list[LoadedPlan]:
        """The plans with triggers among the targets; on the first scan a named file
        that is invalid or has no triggers is an error (exit 2)."""
        found: list[LoadedPlan] = []
        ids: dict[str, Path] = {}
        self.invalid = set()
        for path, named in plan_files(self.targets):
            try:
                loaded = load_plan_file(path)
            except PlanrunError as exc:
                if initial and named:
                    raise
                self._bad_plan(path, exc)
                self.invalid.add(path)
                continue
            plan_id = loaded.plan_key
            if not loaded.prepared.plan.triggers:
                if initial and named:
                    raise UsageError(
                        f'{path}: the plan has no triggers; add "triggers" (see README "Triggers")'
                    )
                continue
            if plan_id in ids:
                self.log(f"skipping {path}: plan id {plan_id!r} is also {ids[plan_id]}")
                continue
            ids[plan_id] = path
            found.append(loaded)
        if initial and not found:
            names = ", ".join(str(t) for t in self.targets)
            raise UsageError(f"nothing to serve: no plan with triggers in {names}")
        return found

    def _bad_plan(self, path: Path, exc: PlanrunError) -> None:
        if path in self.served:
            self.log(
                f"plan {path} is invalid now, keeping its last good version: {describe_error(exc)}"
            )
        else:
            self.log(f"skipping {path}: {describe_error(exc)}")

    def _add(self, loaded: LoadedPlan, once: bool = False) -> None:
        runner = PlanRunner(loaded, self.store, self.state_dir, self.tg, self.log, self.results)
        served = _Served(loaded, runner)
        self.served[loaded.path] = served
        plan = loaded.prepared.plan
        self.log(
            f"serving plan {loaded.plan_key} from {loaded.path}: "
            f"{len(plan.triggers)} trigger(s), on_overlap {plan.on_overlap.value}"
        )
        self.tg.start_soon(self._triggers, served, once)

    def reload(self) -> None:
        """Load the plans again: changed ones restart their triggers (running runs go
        on), invalid ones keep their last good version, removed ones stop firing."""
        self.log("reloading the plans")
        fresh = {loaded.path: loaded for loaded in self._scan(initial=False)}
        for path, served in list(self.served.items()):
            if path in fresh or path in self.invalid:  # invalid: its last good version
                continue
            why = "no triggers now, or its plan id is another plan's"
            if not (path.exists() and _still_a_plan(path, self.targets)):
                why = f"{path} is gone"
            self.log(f"no longer serving plan {served.loaded.plan_key} ({why})")
            served.stop_triggers()
            del self.served[path]
        for path, loaded in fresh.items():
            old = self.served.get(path)
            if old is not None and old.loaded.digest == loaded.digest:
                continue
            if old is not None:
                old.stop_triggers()
                self.log(f"plan {loaded.plan_key} changed: its triggers restart")
                old.runner.replace(loaded)
                served = _Served(loaded, old.runner)
                self.served[path] = served
                self.tg.start_soon(self._triggers, served, False)
            else:
                self._add(loaded)

    # --- triggers -----------------------------------------------------------------

    async def _triggers(self, served: _Served, once: bool) -> None:
        loaded = served.loaded
        stored = await load_trigger_state(self.store, loaded.plan_key)
        with served.scope:
            async with anyio.create_task_group() as tg:
                for index, trigger in enumerate(loaded.prepared.plan.triggers):
                    key = arith.trigger_key(index, trigger)
                    last = stored.get(key, (None, None))[0]
                    tg.start_soon(self._trigger, served, trigger, key, last, once)

    async def _trigger(
        self, served: _Served, trigger: Trigger, key: str, last: str | None, once: bool
    ) -> None:
        loaded = served.loaded
        what = f"plan {loaded.plan_key} trigger {key}"
        fire = functools.partial(served.runner.offer, key)
        kind = arith.kind_of(trigger)
        if kind in (arith.TriggerKind.SCHEDULE, arith.TriggerKind.EVERY):
            slot = arith.parse_slot(last)
            if once:
                await self._once_timed(trigger, key, slot, served, what)
            else:
                await run_timed(trigger, key, slot, fire, self.log, what)
        elif kind is arith.TriggerKind.WATCH:
            root = (loaded.base_dir / (trigger.cwd or ".")).resolve()
            self.log(f"{what}: watching {root} for {', '.join(trigger.watch or [])}")
            if once:
                self.log(f"{what}: a watch trigger has nothing to do with --once")
                return
            stop = anyio.Event()
            served.stops.append(stop)
            try:
                await run_watch(trigger, key, root, [self.state_dir], fire, stop)
            except OSError as exc:  # e.g. the directory was removed: this trigger stops
                self.log(f"{what}: cannot watch {root}: {exc}; this trigger stops")
        else:
            assert trigger.git is not None
            repo = (loaded.base_dir / trigger.git.repo).resolve()
            self.log(
                f"{what}: polling {repo} branch {trigger.git.branch}"
                f" every {trigger.git.poll_sec:g}s"
            )

            async def remember(sha: str) -> None:
                await save_trigger_state(self.store, loaded.plan_key, key, sha, "seen")

            await run_git(trigger, key, repo, last, fire, remember, self.log, what, once=once)

    async def _once_timed(
        self, trigger: Trigger, key: str, last: datetime | None, served: _Served, what: str
    ) -> None:
        now = datetime.now(UTC)
        due = arith.due_slot(trigger, now, last)
        if due is None:
            upcoming = arith.next_fire(trigger, now)
            when = arith.format_slot(upcoming) if upcoming else "never"
            self.log(f"{what}: nothing due (next at {when})")
            return
        await served.runner.offer(key, timed_info(trigger, key, due), arith.format_slot(due))

    # --- signals and plan files ----------------------------------------------------

    async def _signals(self) -> None:
        wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        with anyio.open_signal_receiver(*wanted) as received:
            async for signum in received:
                if signum == signal.SIGHUP:
                    self.reload()
                    continue
                if signum == signal.SIGUSR1:  # `planrun cancel RUN` of one of our runs
                    for served in self.served.values():
                        served.runner.cancel_requested()
                    continue
                self.log(f"{signal.Signals(signum).name}: stopping; cancelling running runs")
                self.stop()

    def stop(self) -> None:
        self.stopping = True
        for served in self.served.values():
            served.stop_triggers()
            served.runner.cancel_all()
        self.tg.cancel_scope.cancel()

    async def _watch_plan_files(self) -> None:
        """Reload when a served plan file (or a plan file in a served directory)
        changes."""
        from watchfiles import awatch

        dirs = sorted({t.resolve() if t.is_dir() else t.resolve().parent for t in self.targets})
        stop = anyio.Event()
        try:
            async for changes in awatch(
                *dirs, recursive=False, stop_event=stop, rust_timeout=500, step=200
            ):
                paths = {Path(p) for _, p in changes}
                if any(p in self.served or _still_a_plan(p, self.targets) for p in paths):
                    self.reload()
        finally:
            stop.set()


def _still_a_plan(path: Path, targets: Sequence[Path]) -> bool:
    """``path`` is a plan file a target names (itself, or in a directory given)."""
    for target in targets:
        resolved = target.resolve()
        if resolved == path or (
            resolved.is_dir() and path.parent == resolved and path.suffix in PLAN_SUFFIXES
        ):
            return True
    return False
