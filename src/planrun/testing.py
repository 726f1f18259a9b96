"""Test plans, and the services that embed planrun, without running any process.

:class:`ScriptedExecutor` implements the :class:`~planrun.ports.Executor` port: each
attempt of a step does what a script says — succeed (with outputs), fail with an exit
code, time out, hang until cancelled, or fail to start — after an optional delay. The
real scheduler, policies, events and store do everything else::

    from planrun import run_plan
    from planrun.testing import Fail, Hang, ScriptedExecutor, Succeed

    executor = ScriptedExecutor(
        {
            "build": Succeed(outputs={"version": "1.2.3"}),
            "test": [Fail(exit_code=2), Succeed()],  # attempt 1 fails, attempt 2 succeeds
            "deploy": Hang(),  # runs until cancelled (or its timeout_sec)
        }
    )
    result = await run_plan("plan.json", state_dir=tmp_path, executor=executor)
    assert executor.started_order() == ["build", "test", "test", "deploy"]

The run is recorded as usual (a real SQLite store under ``state_dir``); an attempt has
no pid (``None``). Delays run on anyio's clock, in real time: an event loop with a
virtual clock would also have to fake the store's worker threads and the events'
wall-clock timestamps, so keep scripted delays short (they only order things).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import assert_never

import anyio
import anyio.lowlevel

from .ports import AttemptSpec, ProcessResult

__all__ = [
    "Action",
    "Fail",
    "Hang",
    "NotStarted",
    "Script",
    "ScriptedAttempt",
    "ScriptedExecutor",
    "Succeed",
    "TimeOut",
]

#: How a process stopped by SIGTERM exits (what a timed-out or hung attempt reports).
_SIGTERM_EXIT = -15


@dataclass(frozen=True, slots=True)
class Succeed:
    """The attempt exits ``exit_code`` (0) after ``delay`` seconds, having written
    ``outputs`` to ``$PLANRUN_OUTPUT`` and ``log`` to its log. A delay longer than the
    step's ``timeout_sec`` times out at it, as a process stopped by SIGTERM.

    ``output_error`` plays an outputs file planrun refused (the attempt then fails
    with that error, as a real one would).
    """

    outputs: Mapping[str, str] | None = None
    exit_code: int = 0
    log: str = ""
    delay: float = 0.0
    output_error: str | None = None


@dataclass(frozen=True, slots=True)
class Fail:
    """The attempt exits ``exit_code`` (1; negative: killed by that signal) after
    ``delay`` seconds, having written ``log`` to its log (a delay longer than the step's
    ``timeout_sec`` times out at it, as for :class:`Succeed`)."""

    exit_code: int = 1
    log: str = ""
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class TimeOut:
    """The attempt times out after ``after`` seconds (at once by default), whatever the
    step's ``timeout_sec``, ending as a process stopped by SIGTERM (``exit_code``)."""

    after: float = 0.0
    exit_code: int = _SIGTERM_EXIT
    log: str = ""


@dataclass(frozen=True, slots=True)
class Hang:
    """The attempt never exits by itself: it runs until it is cancelled (an abort, the
    run's deadline, the caller) or, if the step has a ``timeout_sec``, until that
    expires and it times out as a process stopped by SIGTERM."""

    log: str = ""


@dataclass(frozen=True, slots=True)
class NotStarted:
    """The process cannot start (like a missing program): no exit code, ``error`` as
    the attempt's error, and ``planrun: <error>`` in its log."""

    error: str = "cannot start: scripted"


#: What one attempt does.
Action = Succeed | Fail | TimeOut | Hang | NotStarted

#: A step's script: one action for every attempt; a sequence (the n-th attempt this
#: executor runs of the step takes the n-th action, the last one repeats); or a
#: function called with each attempt's spec when the attempt starts.
Script = Action | Sequence[Action] | Callable[[AttemptSpec], Action]


@dataclass(slots=True)
class ScriptedAttempt:
    """One attempt the executor ran, for assertions. Times are ``anyio.current_time()``."""

    spec: AttemptSpec
    action: Action
    started: float
    #: None while it runs.
    ended: float | None = None
    #: What it returned (None while it runs, or if it was cancelled).
    result: ProcessResult | None = None
    cancelled: bool = False

    @property
    def step_id(self) -> str:
        return self.spec.step_id

    @property
    def attempt(self) -> int:
        return self.spec.attempt


@dataclass(eq=False)
class ScriptedExecutor:
    """An :class:`~planrun.ports.Executor` that runs no process: every attempt does
    what ``script[step_id]`` says (steps not in the script: ``default``).

    Pass it as ``run_plan(..., executor=ScriptedExecutor(...))`` (or to the engine).
    It keeps the executor's contract: ``on_started`` is called once per attempt (with
    pid None), a timeout returns ``timed_out=True``, and a cancelled attempt records
    itself ``cancelled`` and re-raises the cancellation. When the spec has a log path
    it creates the log (a new file, mode 0600) holding the action's ``log`` text,
    masked with the run's secrets.

    Every attempt is recorded in :attr:`attempts`, in start order; :attr:`peak` is the
    most attempts that ran at once.
    """

    script: Mapping[str, Script] = field(default_factory=dict)
    default: Action = field(default_factory=Succeed)
    attempts: list[ScriptedAttempt] = field(default_factory=list, init=False)
    running: int = field(default=0, init=False)
    peak: int = field(default=0, init=False)
    _counts: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def action_for(self, spec: AttemptSpec) -> Action:
        """What this attempt does (counts it: call once per attempt)."""
        n = self._counts.get(spec.step_id, 0)
        self._counts[spec.step_id] = n + 1
        entry = self.script.get(spec.step_id, self.default)
        if callable(entry):
            return entry(spec)
        if isinstance(entry, Sequence):
            if not entry:
                raise ValueError(f"the script of step '{spec.step_id}' is empty")
            return entry[min(n, len(entry) - 1)]
        return entry

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        """Run one attempt as scripted; see :class:`~planrun.ports.Executor`."""
        on_started(None)
        # A real process starts asynchronously: let the other ready attempts start too.
        await anyio.lowlevel.checkpoint()
        record = ScriptedAttempt(spec, self.action_for(spec), anyio.current_time())
        self.attempts.append(record)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            record.result = await self._perform(spec, record.action)
            return record.result
        except anyio.get_cancelled_exc_class():
            record.cancelled = True
            raise
        finally:
            self.running -= 1
            record.ended = anyio.current_time()

    async def _perform(self, spec: AttemptSpec, action: Action) -> ProcessResult:
        if isinstance(action, NotStarted):
            failed = _write_log(spec, f"planrun: {action.error}\n")
            return ProcessResult(exit_code=None, error=failed or action.error)
        failed = _write_log(spec, action.log)
        if failed is not None:
            return ProcessResult(exit_code=None, error=failed)
        match action:
            case Succeed(outputs, exit_code, _, delay, output_error):
                if not await _lasts(delay, spec.timeout):
                    return ProcessResult(_SIGTERM_EXIT, timed_out=True)
                return ProcessResult(
                    exit_code, outputs=dict(outputs or {}), output_error=output_error
                )
            case Fail(exit_code, _, delay):
                if not await _lasts(delay, spec.timeout):
                    return ProcessResult(_SIGTERM_EXIT, timed_out=True)
                return ProcessResult(exit_code)
            case TimeOut(after, exit_code):
                await _lasts(after, None)
                return ProcessResult(exit_code, timed_out=True)
            case Hang():
                await _lasts(math.inf, spec.timeout)
                return ProcessResult(_SIGTERM_EXIT, timed_out=True)
            case _:
                assert_never(action)

    def started_order(self) -> list[str]:
        """The step ids of the attempts, in the order they started."""
        return [a.step_id for a in self.attempts]

    def of_step(self, step_id: str) -> list[ScriptedAttempt]:
        """The attempts of one step, in order."""
        return [a for a in self.attempts if a.step_id == step_id]


async def _lasts(seconds: float, limit: float | None) -> bool:
    """Wait ``seconds`` (forever: ``math.inf``); False if the step's timeout ``limit``
    (None: none) expired first.

    No delay: no checkpoint either, so the result is reported in the same instant.
    """
    if seconds <= 0:
        return True
    with anyio.move_on_after(math.inf if limit is None else limit) as scope:
        await anyio.sleep(seconds)
    return not scope.cancelled_caught


def _write_log(spec: AttemptSpec, text: str) -> str | None:
    """Create the attempt's log holding ``text`` (masked); the error if it cannot."""
    if spec.log_path is None:
        return None
    if spec.masker:
        text = spec.masker.text(text)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(spec.log_path, flags, 0o600)
    except OSError as exc:
        return f"cannot create the attempt's log {spec.log_path}: {exc.strerror or exc}"
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return None
