"""The plan model: msgspec structs that define (and decode) the plan format.

Field names follow the original design so existing plans keep working. Constraints
that msgspec can express live here; the cross-field and cross-step checks live in
``plan.py``. This module is pure data: no I/O.
"""

from __future__ import annotations

import enum
import os
from typing import Annotated, Any

import msgspec
from msgspec import Meta

__all__ = [
    "AttemptState",
    "Globals",
    "OnFailure",
    "OnLockConflict",
    "Plan",
    "RunState",
    "Step",
    "StepState",
    "When",
]

STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

StepId = Annotated[str, Meta(pattern=STEP_ID_PATTERN, description="Step id")]
PosSeconds = Annotated[float, Meta(gt=0)]
NonNegSeconds = Annotated[float, Meta(ge=0)]
VarValue = str | int | float | bool | None
LogBytes = Annotated[
    int,
    Meta(
        ge=1,
        description="Keep at most this many bytes of an attempt's log: the first and the "
        "last half, with a line saying how many bytes were dropped between them",
    ),
]


class OnFailure(enum.StrEnum):
    """What happens after a step's last attempt fails."""

    ABORT = "abort"
    SKIP_DEPENDENTS = "skip_dependents"
    CONTINUE = "continue"


class OnLockConflict(enum.StrEnum):
    """What a run does when its lock is held by another live run."""

    FAIL = "fail"
    WAIT = "wait"


class When(enum.StrEnum):
    """Trigger rule: which dependency outcomes let a step start."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"


class RunState(enum.StrEnum):
    """A run's state; the values are the strings stored and shown."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CRASHED = "crashed"


class StepState(enum.StrEnum):
    """A step's state; the values are the strings stored and shown."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def terminal(self) -> bool:
        """Finished, one way or another (``crashed``: its planrun process died)."""
        return self not in (StepState.PENDING, StepState.RUNNING)

    @property
    def failed(self) -> bool:
        """True for the states that count as a failure (``one_failed``, run outcome)."""
        return self in (StepState.FAILED, StepState.TIMED_OUT)


class AttemptState(enum.StrEnum):
    """One attempt's state; the values are the strings stored and shown."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CRASHED = "crashed"


class Step(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """One step: a program started with an argv, never through a shell."""

    id: StepId
    command: Annotated[str, Meta(description="Program to run (looked up in PATH)")]
    name: str | None = None
    args: list[str] = msgspec.field(default_factory=list)
    depends_on: list[str] = msgspec.field(default_factory=list)
    timeout_sec: PosSeconds | None = None
    retries: Annotated[int, Meta(ge=0)] = 0
    retry_delay_sec: NonNegSeconds = 0.0
    retry_backoff: Annotated[float, Meta(ge=1)] = 1.0
    retry_max_delay_sec: NonNegSeconds | None = None
    retry_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.0
    retry_on_exit_codes: list[int] | None = None
    retry_on_timeout: bool = True
    critical: bool = True
    on_failure: OnFailure = OnFailure.ABORT
    when: When = When.ALL_SUCCESS
    success_exit_codes: list[int] = msgspec.field(default_factory=lambda: [0])
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    max_log_bytes: LogBytes | None = None

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else self.id


def _cpu_count() -> int:
    return os.cpu_count() or 1


class Globals(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Settings for the whole run."""

    max_concurrency: Annotated[int, Meta(ge=1)] | None = None
    default_timeout_sec: PosSeconds | None = None
    kill_grace_sec: NonNegSeconds = 5.0
    timeout_sec: PosSeconds | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    lock: Annotated[str, Meta(min_length=1)] | None = None
    on_lock_conflict: OnLockConflict = OnLockConflict.FAIL
    lock_timeout_sec: PosSeconds | None = None
    max_log_bytes: LogBytes | None = None

    @property
    def concurrency(self) -> int:
        """``max_concurrency``, defaulting to the CPU count."""
        return self.max_concurrency if self.max_concurrency is not None else _cpu_count()


class Plan(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A plan: a DAG of steps plus variables and global settings."""

    plan_id: Annotated[str, Meta(min_length=1)]
    steps: list[Step]
    version: str = "1"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    variables: dict[str, VarValue] = msgspec.field(default_factory=dict)
    secrets: Annotated[
        list[Annotated[str, Meta(pattern=VAR_NAME_PATTERN)]],
        Meta(description="Names of secrets, read from planrun's environment; masked as ***"),
    ] = msgspec.field(default_factory=list)
    globals: Globals = msgspec.field(default_factory=Globals)
    schema: str | None = msgspec.field(default=None, name="$schema")

    def step(self, step_id: str) -> Step:
        """The step with this id (``KeyError`` when there is none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the plan format, generated from the model."""
    schema = msgspec.json.schema(Plan)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "planrun plan"
    return schema
