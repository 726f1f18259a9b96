"""Typed run events. One stream of these is the truth about a run.

Every event carries the ``run_id``, a per-run gap-free ``seq`` (1, 2, 3, ...), a UTC
timestamp ``ts`` (ISO 8601) and a ``type`` tag. The same encoded bytes go to the
``events`` table and to ``events.jsonl``. Pure data: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from .model import AttemptState, RunState, StepState

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "ConcurrencyCapped",
    "Event",
    "LockAcquired",
    "RetryScheduled",
    "RunAborting",
    "RunBegan",
    "RunCrashed",
    "RunFinished",
    "RunResumed",
    "RunStarted",
    "StepFinished",
    "StepsExpanded",
    "decode_event",
    "encode_event",
    "event_type",
    "utc_now",
]


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Base(msgspec.Struct, kw_only=True, frozen=True, tag_field="type", gc=False):
    run_id: str
    seq: int
    ts: str


class StepInfo(msgspec.Struct, frozen=True, gc=False):
    """A step as announced in :class:`RunStarted`."""

    id: str
    name: str
    depends_on: list[str]
    retries: int
    critical: bool
    #: The number of this step's first attempt in this run (after a resume: > 1).
    first_attempt: int = 1
    #: A run handler: its list (``on_failure``, ...); None for a step of the DAG.
    handler: str | None = None


class _RunBeganFields(_Base, frozen=True):
    """The positional fields of :class:`RunBegan` (a keyword-only field with a default
    must come after them and after :class:`RunResumed`'s own)."""

    plan_id: str
    plan_path: str | None
    variables: dict[str, str]
    max_concurrency: int
    steps: list[StepInfo]
    pid: int


class RunBegan(_RunBeganFields, frozen=True, kw_only=True, omit_defaults=True):
    """What :class:`RunStarted` and :class:`RunResumed` both say: the plan, its
    variables, the concurrency, every step in plan order, the owner's pid and the
    executor. Never sent itself (``isinstance(event, RunBegan)``: a run started or was
    taken over). Encoded, each is the fields it always had, in the same order, then
    ``executor`` when known (events written before it existed decode with None)."""

    #: A short name of the executor that ran the attempts (``"local"``); None: unknown.
    executor: str | None = None


class RunStarted(RunBegan, frozen=True, tag="run_started"):
    """The run began; lists every step in plan order."""

    #: What started it (``planrun serve``): ``{"kind": "schedule", "slot": ...}`` etc.;
    #: absent for a run started by hand (and in events written before it existed).
    trigger: dict[str, Any] | None = None


class RunResumed(RunBegan, frozen=True, tag="run_resumed"):
    """``planrun resume`` took the run over: the steps in ``rerun`` run again (new
    attempts, numbered after the earlier ones); every other step keeps its result."""

    rerun: list[str]
    #: Every other step, with the state it keeps.
    kept: dict[str, StepState]


class AttemptStarted(_Base, frozen=True, tag="attempt_started", omit_defaults=True):
    """Attempt ``attempt`` (1-based) of a step started as process ``pid``."""

    step_id: str
    attempt: int
    pid: int | None
    log_path: str | None
    #: Something the user should know about this start (e.g. a secret on its command
    #: line that only the bound values revealed); absent when there is nothing.
    warning: str | None = None
    #: A ``uses`` step's attempt is a child run (no process: ``pid`` is None): its id.
    child_run_id: str | None = None


class AttemptFinished(_Base, frozen=True, tag="attempt_finished"):
    """An attempt ended. ``exit_code`` is negative when a signal ended the process."""

    step_id: str
    attempt: int
    state: AttemptState
    exit_code: int | None
    duration_sec: float
    error: str | None = None


class RetryScheduled(_Base, frozen=True, tag="retry_scheduled"):
    """Attempt ``attempt`` of a step starts in ``delay_sec`` seconds."""

    step_id: str
    attempt: int
    delay_sec: float


class StepFinished(_Base, frozen=True, tag="step_finished"):
    """A step reached a terminal state (``reason`` says why for skips and cancels).

    ``outputs`` is what a succeeded step wrote to ``$PLANRUN_OUTPUT``; keys listed in
    ``masked_outputs`` held a secret and are stored masked.
    """

    step_id: str
    state: StepState
    attempts: int
    exit_code: int | None = None
    reason: str | None = None
    outputs: dict[str, str] | None = None
    masked_outputs: list[str] | None = None


class StepsExpanded(_Base, frozen=True, tag="steps_expanded", omit_defaults=True):
    """The ``for_each`` step ``step_id`` may start: its template gave ``items`` (a JSON
    array, recorded so that a resume re-expands from them), one instance per item
    (``steps``, in item order, each depending on what the step depends on). The step
    ends when they all have. On a resume, instances in ``kept`` keep that state (their
    result stands) and the others run again."""

    step_id: str
    items: list[Any]
    steps: list[StepInfo]
    kept: dict[str, StepState] = msgspec.field(default_factory=dict)


class RunCrashed(_Base, frozen=True, tag="run_crashed"):
    """The process running the run died without finishing it (SIGKILL, OOM, reboot).

    Written by whichever planrun command found the owner gone; running steps and
    attempts are ``crashed``.
    """

    reason: str
    owner_pid: int


class LockAcquired(_Base, frozen=True, tag="lock_acquired"):
    """The run took its lock (``globals.lock``) after waiting ``waited_sec``.

    ``reclaimed_from_run``/``reclaimed_from_pid`` name a stale holder whose process was
    gone when the lock was taken over.
    """

    name: str
    waited_sec: float
    #: The canonical path the lock is on (``"lock": {"name": ..., "path": ...}``).
    path: str | None = None
    reclaimed_from_run: str | None = None
    reclaimed_from_pid: int | None = None


class ConcurrencyCapped(_Base, frozen=True, tag="concurrency_capped"):
    """Fewer attempts run at once than asked: ``requested`` (``max_concurrency``, or the
    number of steps if smaller) would not fit in the open-file limit ``fd_limit`` even
    after raising the soft limit, so at most ``effective`` run at once."""

    requested: int
    effective: int
    fd_limit: int


class RunAborting(_Base, frozen=True, tag="run_aborting"):
    """No new step starts except cleanup/rollback; running steps are being stopped."""

    reason: str
    step_id: str | None = None


class RunFinished(_Base, frozen=True, tag="run_finished"):
    """The run ended. ``exit_code`` is what ``planrun run`` exits with."""

    state: RunState
    exit_code: int
    reason: str | None = None
    failed_steps: list[str] = msgspec.field(default_factory=list)


Event = (
    RunStarted
    | AttemptStarted
    | AttemptFinished
    | RetryScheduled
    | StepFinished
    | RunAborting
    | RunFinished
    | LockAcquired
    | RunCrashed
    | RunResumed
    | ConcurrencyCapped
    | StepsExpanded
)

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def event_type(event: Event) -> str:
    """The ``type`` tag of an event (``"run_started"``, ...)."""
    return str(type(event).__struct_config__.tag)


def encode_event(event: Event) -> bytes:
    """The event as compact JSON (the bytes stored in SQLite and JSONL)."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Decode bytes written by :func:`encode_event`."""
    return _decoder.decode(data)
