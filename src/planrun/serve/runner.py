"""Starting a plan's runs when its triggers fire, per its ``on_overlap``.

Contract: :meth:`PlanRunner.offer` decides what a firing does (start, skip, queue,
cancel the running run and start), stores the trigger's slot with that decision in
``trigger_state`` *before* any run is created (so a restart never fires the slot
again), then starts the run in the serve's task group. A run is an ordinary run of
the store (``api.execute``): its ``run_started`` event and ``runs.trigger`` say what
started it, and its steps see ``PLANRUN_TRIGGER`` (JSON) and friends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from ..api import execute
from ..cancel import SERVE_OWNER, request_path
from ..errors import PlanrunError
from ..model_triggers import OnOverlap
from ..options import RunOptions
from ..prepare import new_run_id
from ..prune import apply_retention
from ..store.sqlite import SqliteStore
from ..store.trigger_state import save_trigger_state
from ..trigger_env import with_trigger_env
from .loader import LoadedPlan

__all__ = ["PlanRunner"]


class PlanRunner:
    """The runs of one plan: which are running, which one waits (``queue``)."""

    def __init__(
        self,
        loaded: LoadedPlan,
        store: SqliteStore,
        state_dir: Path,
        tg: TaskGroup,
        log: Callable[[str], None],
        results: list[tuple[str, int]],
    ) -> None:
        self.loaded = loaded
        self._store = store
        self._state_dir = state_dir
        self._tg = tg
        self._log = log
        self._results = results
        self._running: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}
        self._waiting: dict[str, Any] | None = None
        #: What each trigger's last skipped firing was (a git trigger is offered again
        #: at each poll while a run runs: logged once).
        self._skipped: dict[str, str | None] = {}

    @property
    def running_ids(self) -> list[str]:
        """The ids of the plan's running runs, oldest first."""
        return list(self._running)

    @property
    def waiting(self) -> dict[str, Any] | None:
        """The queued firing (``queue``), if one waits."""
        return self._waiting

    def replace(self, loaded: LoadedPlan) -> None:
        """Carry on with a reloaded version of the plan. A firing queued under
        ``queue`` is dropped (logged) when the new version's ``on_overlap`` is not
        ``queue``: the plan no longer asks for it to wait (under ``allow`` or
        ``cancel_previous`` it might otherwise wait for ever or start late)."""
        self.loaded = loaded
        policy = loaded.prepared.plan.on_overlap
        if self._waiting is not None and policy is not OnOverlap.QUEUE:
            what = _short(self._waiting)
            self._waiting = None
            self._log(
                f"plan {loaded.plan_key}: {what}: dropped from the queue (on_overlap is now"
                f" {policy.value})"
            )

    async def offer(self, trigger_key: str, info: dict[str, Any], slot: str | None) -> str:
        """Fire ``info`` (what triggered: kind, slot, paths, shas): returns what was
        done, ``started``, ``skipped``, ``queued`` or ``cancelled_previous``."""
        policy = self.loaded.prepared.plan.on_overlap
        decision = "started"
        if self._running and policy is OnOverlap.SKIP:
            decision = "skipped"
        elif self._running and policy is OnOverlap.QUEUE:
            decision = "skipped" if self._waiting is not None else "queued"
        elif self._running and policy is OnOverlap.CANCEL_PREVIOUS:
            decision = "cancelled_previous"
        key = self.loaded.plan_key
        if decision == "skipped" and info.get("kind") == "git":
            # A commit is not a moment that passes: keep the last sha a run saw, so the
            # trigger fires again at its next poll once nothing runs (and after a restart).
            slot = info.get("old_sha")
        await save_trigger_state(self._store, key, trigger_key, slot, decision)
        what = _short(info)
        if decision == "skipped" and self._skipped.get(trigger_key) != what:
            later = "; it fires once the run ended" if info.get("kind") == "git" else ""
            self._log(f"plan {key}: {what}: skipped (a run of the plan is running{later})")
        self._skipped[trigger_key] = what if decision == "skipped" else None
        if decision == "queued":
            self._waiting = info
            self._log(f"plan {key}: {what}: queued (starts when the running run ends)")
        elif decision != "skipped":
            if decision == "cancelled_previous":
                self._log(f"plan {key}: {what}: cancelling {', '.join(self._running)}")
            self.start(info)
        return decision

    def start(self, info: dict[str, Any]) -> str:
        """Start a run for ``info`` now (after the runs a ``cancel_previous`` cancels)."""
        previous: list[anyio.Event] = []
        if self.loaded.prepared.plan.on_overlap is OnOverlap.CANCEL_PREVIOUS:
            for scope, done in self._running.values():
                scope.cancel()
                previous.append(done)
        run_id = new_run_id()
        self._running[run_id] = (anyio.CancelScope(), anyio.Event())
        self._tg.start_soon(self._run, run_id, info, previous)
        return run_id

    async def _run(self, run_id: str, info: dict[str, Any], previous: list[anyio.Event]) -> None:
        scope, done = self._running[run_id]
        plan = self.loaded
        ended = False
        try:
            with scope:
                for event in previous:  # cancel_previous: they end first
                    await event.wait()
                self._log(f"plan {plan.plan_key}: {_short(info)}: starting run {run_id}")
                options = RunOptions(
                    state_dir=self._state_dir, run_id=run_id, trigger=info, owner_kind=SERVE_OWNER
                )
                try:
                    result = await execute(with_trigger_env(plan.prepared, info), options)
                except PlanrunError as exc:
                    self._log(f"plan {plan.plan_key}: run {run_id} could not run: {exc}")
                    self._results.append((run_id, 1))
                else:
                    state = result.state.value
                    code = result.exit_code
                    self._log(f"plan {plan.plan_key}: run {run_id} {state} (exit code {code})")
                    self._results.append((run_id, code))
                ended = True
                await self._retain()
        finally:
            if not ended:
                self._log(f"plan {plan.plan_key}: run {run_id} cancelled")
            del self._running[run_id]
            done.set()
            waiting, self._waiting = self._waiting, None
            if waiting is not None and not self._running and not scope.cancel_called:
                self.start(waiting)
            elif waiting is not None:
                self._waiting = waiting

    async def _retain(self) -> None:
        """Apply the plan's ``retention`` (if any) after one of its runs ended: its
        finished runs beyond it are deleted (``planrun prune``'s rules); a store error
        is logged, never fatal to serve."""
        plan = self.loaded.prepared.plan
        if plan.retention is None:
            return
        try:
            deleted = await apply_retention(
                self._store, plan.plan_id, plan.retention, now=datetime.now(UTC)
            )
        except PlanrunError as exc:
            self._log(f"plan {self.loaded.plan_key}: retention failed: {exc}")
            return
        if deleted:
            self._log(
                f"plan {self.loaded.plan_key}: retention deleted {len(deleted)} run(s): "
                + ", ".join(sorted(deleted)[:5])
                + (" ..." if len(deleted) > 5 else "")
            )

    def cancel_requested(self) -> None:
        """Cancel each running run that ``planrun cancel`` asked to (a request file in
        its run directory, see :func:`planrun.cancel.request_path`); serve's SIGUSR1."""
        for run_id, (scope, _) in self._running.items():
            request = request_path(self._state_dir, run_id)
            if request.exists():
                request.unlink(missing_ok=True)
                self._log(f"plan {self.loaded.plan_key}: run {run_id}: cancel requested")
                scope.cancel()

    def cancel_all(self) -> None:
        """Cancel every running run (serve is stopping); nothing queued starts."""
        self._waiting = None
        for scope, _ in self._running.values():
            scope.cancel()


def _short(info: Mapping[str, Any]) -> str:
    """``schedule slot 2026-...``, ``watch src/a.py``, ``git main abc1234``."""
    kind = info.get("kind")
    if kind in ("schedule", "every"):
        return f"{kind} trigger, slot {info.get('slot')}"
    if kind == "watch":
        paths = list(info.get("paths") or [])
        return f"watch trigger ({len(paths)} changed: {', '.join(paths[:3])})"
    if kind == "git":
        return f"git trigger ({info.get('branch')} at {str(info.get('sha'))[:12]})"
    return str(kind)
