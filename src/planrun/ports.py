"""The Protocols the engine talks to the outside through.

The engine never imports a subprocess or SQLite module; it is handed an
:class:`Executor` (runs one attempt) and an :class:`EventSink` (receives events).
Unit tests give it fakes; the CLI and ``run_plan`` give it the real adapters.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import msgspec

from .events import Event
from .masking import Masker
from .model import Step

__all__ = [
    "AttemptSpec",
    "ChildStarted",
    "EventSink",
    "Executor",
    "OutputLine",
    "OutputSink",
    "ProcessResult",
    "RunChild",
]


class AttemptSpec(msgspec.Struct, frozen=True):
    """Everything needed to run one attempt of one step."""

    run_id: str
    step_id: str
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    timeout: float | None
    kill_grace: float
    log_path: str | None
    #: Masks the run's secrets in the log (None: the run has no secrets).
    masker: Masker | None = None
    #: Keep at most this many bytes of the log: head, marker, tail (None: all of it).
    max_log_bytes: int | None = None
    #: The run across state dirs (``RUN_ID@SCOPE``, see ``proc.run_key``): what the
    #: run's processes are tagged with and found by. Empty: ``run_id`` in a scope of
    #: its own (a spec made by hand, e.g. in a test).
    run_key: str = ""
    #: Variables of planrun's own environment the attempt must not inherit (a child
    #: run's steps: the parent's secrets the ``uses`` step did not pass).
    hidden_env: frozenset[str] = frozenset()
    #: What asks the process group to stop (a cancel, a timeout) before the SIGKILL
    #: that follows ``kill_grace`` seconds later: the step's ``stop_signal``.
    stop_signal: int = signal.SIGTERM
    #: How :class:`OutputLine` names the step when not ``step_id``: a child run's step
    #: as ``PARENT_STEP/STEP`` (the parent's front end sees the lines of both).
    output_name: str | None = None
    #: Worker resources the step asks for (``Step.resources``): where a distributed
    #: executor may run it; the local executor ignores them.
    resources: Mapping[str, float] = msgspec.field(default_factory=dict)

    @property
    def key(self) -> str:
        """``run_key``, or one made from ``run_id`` when none was given."""
        return self.run_key or f"{self.run_id}@{'0' * 12}"


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line a step wrote (stdout and stderr interleaved, as its log has them),
    secrets masked, without its line ending (``\\n``, or ``\\r\\n``).

    ``cut`` is True when the line was longer than the executor delivers whole (8 KiB
    for the local executor): ``text`` is then its start and the rest of the line is
    not delivered (the log keeps it). A last line without a newline is delivered when
    the attempt ends. ``text`` is decoded as UTF-8 (invalid bytes replaced) and may
    hold control characters: a front end that draws it decides what to do with them.
    """

    step_id: str
    attempt: int
    text: str
    cut: bool = False


#: Receives an attempt's lines as they are written, in order per attempt, on the event
#: loop thread (see ``RunOptions.on_output``). Must be fast and must not block.
OutputSink = Callable[[OutputLine], None]


class ProcessResult(msgspec.Struct, frozen=True, gc=False):
    """How an attempt's process ended.

    ``exit_code`` is the process's exit status, negative when a signal ended it, and
    None when the process never started (``error`` then says why). ``outputs`` is what
    the process wrote to ``$PLANRUN_OUTPUT`` (None if it did not run to its end);
    ``output_error`` says why that file could not be used. ``lost``: the attempt's end
    was not seen (its worker was lost; ``error`` says which): it may have run, and the
    retry policy may run it again (unlike an attempt that could not start).
    """

    exit_code: int | None
    timed_out: bool = False
    error: str | None = None
    outputs: dict[str, str] | None = None
    output_error: str | None = None
    lost: bool = False


class Executor(Protocol):
    """Runs one attempt to completion.

    Contract: ``run`` returns only when the attempt and everything it started are gone.
    The process may write to the (new) file named by ``$PLANRUN_OUTPUT``; after a normal
    exit its parsed content is the result's ``outputs``.
    It calls ``on_started(pid)`` once the process exists. On expiry of
    ``spec.timeout`` it stops the process tree and returns ``timed_out=True``. When
    cancelled it stops the process tree (within ``kill_grace`` plus a short margin) and
    re-raises the cancellation.
    """

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult: ...


class EventSink(Protocol):
    """Receives every event, in ``seq`` order. Must not block or raise."""

    def __call__(self, event: Event) -> None: ...


class ChildStarted(Protocol):
    """What a :data:`RunChild` calls once the child run exists (``pid`` None: the
    attempt is no process of its own)."""

    def __call__(self, pid: int | None, child_run_id: str | None = None) -> None: ...


#: Runs one attempt of a ``uses`` step as a child run: ``(step, spec, on_started)``,
#: where ``spec.argv`` is the child plan's path alone and ``spec.env`` the bound
#: ``with`` values. It reports the child run's id through ``on_started``, returns the
#: child's result as a :class:`ProcessResult` (exit code 0: the child succeeded;
#: otherwise ``error`` says why) and, when cancelled, cancels the child run (its
#: processes stopped, recorded ``cancelled``) and re-raises. The API supplies it.
RunChild = Callable[[Step, AttemptSpec, ChildStarted], Awaitable[ProcessResult]]
