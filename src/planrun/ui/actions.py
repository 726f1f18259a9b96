"""The dashboard's actions: cancel a run, resume one (in this server's process).

A resumed run is owned by the server: it runs as a task in the server's task group
(:class:`Runner`), is recorded with ``owner_kind="ui"``, and is cancelled by cancelling
that task (the engine then stops every step: TERM, grace, KILL). Runs other processes
own are cancelled with :func:`planrun.api.cancel_run`, under the CLI's rules. When the
server stops, the task group is cancelled: the runs it owns are recorded ``cancelled``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..api import cancel_run, run_plan
from ..errors import PlanrunError, UsageError
from ..events import Event
from ..options import RunOptions

__all__ = ["OWNER_KIND", "ActionResult", "Runner", "ui_words"]

_LOG = logging.getLogger("planrun.ui")

#: ``owner_kind`` of the runs this server resumes.
OWNER_KIND = "ui"
#: Seconds a cancel waits for the run to be recorded ``cancelled``.
CANCEL_WAIT_SEC = 60.0

#: Library words for a parameter, and the command line's words for it: the dashboard
#: says what to do in the same words as ``planrun resume`` (its hints name its flags).
_FLAG_WORDS = {"allow_changed": ("allow_changed=True", "--allow-changed")}


def ui_words(exc: PlanrunError) -> str:
    """``exc``'s message as the CLI words it (library parameter names -> its flags)."""
    message = str(exc)
    field = exc.field if isinstance(exc, UsageError) else None
    if field in _FLAG_WORDS:
        library, flag = _FLAG_WORDS[field]
        return message.replace(library, flag, 1)
    return message


@dataclass(frozen=True)
class ActionResult:
    """What an action did: ``ok``, a sentence for a person, the HTTP status."""

    ok: bool
    message: str
    status: int = 200


class Runner:
    """The runs this server owns, each a task in ``task_group`` with its cancel scope."""

    def __init__(self, task_group: TaskGroup, state_dir: Path) -> None:
        self._tg = task_group
        self._state_dir = state_dir
        #: run id -> (its task's cancel scope, set when the task has ended).
        self._runs: dict[str, tuple[anyio.CancelScope, anyio.Event]] = {}

    @property
    def owned(self) -> frozenset[str]:
        return frozenset(self._runs)

    async def cancel(self, run_id: str) -> ActionResult:
        """Cancel ``run_id``: this server's own by its scope (then wait for its task
        to end: it records ``cancelled``), another process's with :func:`cancel_run`
        (which waits until the store says ``cancelled``)."""
        own = self._runs.get(run_id)
        if own is not None:
            scope, ended = own
            scope.cancel()
            with anyio.move_on_after(CANCEL_WAIT_SEC):
                await ended.wait()
            return ActionResult(True, f"run {run_id} cancelled")
        try:
            await cancel_run(run_id, state_dir=self._state_dir, wait_sec=CANCEL_WAIT_SEC)
        except PlanrunError as exc:
            return ActionResult(False, ui_words(exc), _status(exc))
        return ActionResult(True, f"run {run_id} cancelled")

    async def resume(self, run_id: str, *, allow_changed: bool = False) -> ActionResult:
        """Resume ``run_id`` in this process; refused (with the CLI's words) if the
        plan or variables changed, the run is running, or anything else is wrong."""
        if run_id in self._runs:
            return ActionResult(False, f"run {run_id} is already running here", 409)
        try:
            started = await self._tg.start(self._run_resume, run_id, allow_changed)
        except PlanrunError as exc:
            return ActionResult(False, ui_words(exc), _status(exc))
        if not started:
            return ActionResult(
                True,
                f"nothing to rerun: every step of run {run_id} succeeded "
                "(use `planrun resume --from STEP` to run steps again)",
            )
        return ActionResult(True, f"run {run_id} resumed")

    async def _run_resume(
        self, run_id: str, allow_changed: bool, *, task_status: TaskStatus[bool]
    ) -> None:
        """Run the resume; report ``started(True)`` at its first event, ``False`` if it
        had nothing to rerun. An error before the first event goes to the caller."""
        reported = False

        def on_event(_: Event) -> None:
            nonlocal reported
            if not reported:
                reported = True
                task_status.started(True)

        options = RunOptions(state_dir=self._state_dir, owner_kind=OWNER_KIND, on_event=on_event)
        ended = anyio.Event()
        with anyio.CancelScope() as scope:
            self._runs[run_id] = (scope, ended)
            try:
                await run_plan(None, resume=run_id, options=options, allow_changed=allow_changed)
            except Exception as exc:
                if not reported:
                    raise  # to the request that asked for the resume
                # The run is recorded as it ended; one run's failure must not stop
                # the server (and with it every other run it owns).
                _LOG.warning("resumed run %s ended with an error: %r", run_id, exc)
            finally:
                del self._runs[run_id]
                ended.set()
        if not reported:
            task_status.started(False)


def _status(exc: PlanrunError) -> int:
    """The HTTP status for a refused action: 404 no such run, 409 otherwise."""
    if isinstance(exc, UsageError) and exc.field == "run_id" and str(exc).startswith("no run "):
        return 404
    return 409
