"""The one exception root of planrun, and the exit codes the CLI maps them to.

::

    PlanrunError
    ├── PlanError        the plan is invalid (carries every Problem found)    exit 2
    ├── UsageError       bad arguments: --var syntax, a bad run id, ...         exit 2
    │   └── RunExists    the run id is taken in this state dir
    ├── LockConflict     the plan's lock is held by another live run            exit 3
    │   └── ResumeConflict  another process resumed the run meanwhile
    ├── ClusterError     the Dask cluster cannot run the plan (unreachable,     exit 2
    │                    no workers, version mismatch, a resource none has)
    ├── StoreError       the run store could not be opened, read or written    exit 1
    │   └── NoRunStore   there is no run store where a reader looked
    └── HelperError      a helper process (the watchdog) could not be started   exit 1

A failed *step* is not an exception: it is an outcome recorded in the run.
Exceptions are for bad input, storage failures and bugs.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from .exitcodes import ExitCode

__all__ = [
    "CancelError",
    "ClusterError",
    "HelperError",
    "LockConflict",
    "NoRunStore",
    "PlanError",
    "PlanrunError",
    "Problem",
    "ResumeConflict",
    "RunExists",
    "StoreError",
    "UsageError",
]


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong (or suspicious, when ``warning``) with a plan.

    ``path`` is a JSON path such as ``$.steps[3].depends_on[0]`` (or ``line:column``
    for syntax errors); ``step_id`` names the step when there is one; ``hint`` says
    what to do about it.
    """

    path: str
    message: str
    step_id: str | None = None
    hint: str | None = None
    warning: bool = False

    def render(self, source: str | None = None) -> str:
        """Format as one line: ``file: path (step 'x'): message; hint``."""
        where = f"{source}: {self.path}" if source else self.path
        if self.step_id is not None:
            where += f" (step '{self.step_id}')"
        kind = "warning: " if self.warning else ""
        text = f"{where}: {kind}{self.message}"
        return f"{text}; {self.hint}" if self.hint else text


class PlanrunError(Exception):
    """Root of every error planrun raises on purpose."""

    exit_code: int = ExitCode.FAILED


class PlanError(PlanrunError):
    """The plan cannot run: every problem found is in ``problems``."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        lines = [p.render(source) for p in self.problems]
        count = sum(not p.warning for p in self.problems)
        head = f"invalid plan ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([head, *lines]))


class LockConflict(PlanrunError):
    """The plan's lock is held by another live run (``on_lock_conflict: fail``), or
    could not be had within ``lock_timeout_sec``."""

    exit_code = ExitCode.LOCKED


class UsageError(PlanrunError):
    """The caller passed something unusable (a malformed variable, an invalid run id).

    ``field`` names the library parameter at fault (``"max_concurrency"``,
    ``"run_id"``, ``"allow_changed"``...), so a front end can point at its own way of
    setting it (the CLI: a flag) without the library using its words.
    """

    exit_code = ExitCode.INVALID

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CancelError(PlanrunError):
    """:func:`planrun.api.cancel_run` could not cancel the run: it is not running, it
    runs on another host or inside a service, or it did not stop in time. ``state``
    is the run's state when it gave up."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class ClusterError(PlanrunError):
    """The chosen cluster cannot run this plan, found before anything runs: the Dask
    scheduler is unreachable, has no workers, a worker runs another planrun version,
    a step asks for a resource no worker has, or the ``dask`` extra is not installed."""

    exit_code = ExitCode.INVALID


class StoreError(PlanrunError):
    """The run store failed: the database could not be opened, read or written."""

    exit_code = ExitCode.FAILED


class HelperError(PlanrunError):
    """A process planrun needs beside the steps (the watchdog) could not be started;
    the run is recorded ``failed`` before any step starts."""

    exit_code = ExitCode.FAILED


# Store errors a front end words with its own hint (which flag to pass): the library
# says what is wrong and carries what the hint needs.


class RunExists(UsageError):
    """``run_id`` is already taken in the state dir (a run id names one run, forever)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run id '{run_id}' already exists", field="run_id")


class ResumeConflict(LockConflict):
    """Another process resumed ``run_id`` after this resume read it (and decided what
    to rerun from what it read): look at the run again before resuming it."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} was resumed by another process since this resume read it")


class NoRunStore(StoreError):
    """There is no run store at ``path`` (``<state dir>/runs.db``): readers never create one."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no run store at {path}")
