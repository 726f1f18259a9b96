"""The plan model: msgspec structs that define (and decode) the plan format.

Field names follow the original design so existing plans keep working. Constraints
that msgspec can express live here; the cross-field and cross-step checks live in
the ``plan`` package. This module is pure data: no I/O.
"""

# No ``from __future__ import annotations``: msgspec reads these Structs' field types
# when it first decodes a plan, and string annotations are compiled and evaluated
# then, one by one (~2 ms of every validate and run).

import enum
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from .model_triggers import CatchUp, GitTrigger, OnOverlap, Retention, Trigger

__all__ = [
    "AttemptState",
    "CatchUp",
    "GitTrigger",
    "Globals",
    "Handlers",
    "Lock",
    "LockResolve",
    "OnFailure",
    "OnLockConflict",
    "OnOverlap",
    "Plan",
    "Retention",
    "ResumeRule",
    "RunState",
    "Step",
    "StepState",
    "Trigger",
    "When",
    "base_id",
    "instance_id",
]

# ``\Z``, not ``$``: Python's ``$`` also matches before a final newline, so ``"abc\n"``
# would pass (msgspec applies patterns with ``re.search``). ``json_schema`` turns
# ``\Z`` back into ``$``, which means end of input in JSON Schema's ECMA-262 regexes.
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z"
VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\Z"

#: Upper bounds of the numeric fields (README "Limits"): finite, and far beyond any
#: real use, so that no timer, delay or counter can overflow or run "forever".
MAX_SECONDS = 30 * 24 * 3600
MAX_RETRIES = 1000
MAX_BACKOFF = 100
MAX_CONCURRENCY = 10_000

StepId = Annotated[str, Meta(pattern=STEP_ID_PATTERN, description="Step id")]
PosSeconds = Annotated[float, Meta(gt=0, le=MAX_SECONDS)]
NonNegSeconds = Annotated[float, Meta(ge=0, le=MAX_SECONDS)]
ExitCode = Annotated[int, Meta(ge=0, le=255)]
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


class LockResolve(enum.StrEnum):
    """How a lock's ``path`` becomes the thing it locks (always absolute, symlinks
    resolved first)."""

    PATH = "path"  # the path itself
    GIT = "git"  # the git dir of the repository the path is in (every spelling, one lock)


class ResumeRule(enum.StrEnum):
    """What ``resume`` does with a step that succeeded in the run being resumed."""

    REUSE = "reuse"  # its result stands (unless something upstream of it reruns)
    # Its effect does not outlive the run (e.g. a temporary work tree that a cleanup
    # step removes): it reruns whenever a step downstream of it reruns.
    EPHEMERAL = "ephemeral"


class When(enum.StrEnum):
    """Trigger rule: which dependency outcomes let a step start."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    ONE_SUCCESS = "one_success"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ALL_FAILED = "all_failed"


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
    #: It exited with one of the step's ``skip_exit_codes``: not a failure, not retried.
    SKIPPED = "skipped"


class Step(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True, gc=False):
    """One step: a program started with an argv, never through a shell."""

    id: StepId
    #: Exactly one of ``command`` and ``uses`` (checked in ``plan.uses``).
    command: Annotated[str, Meta(description="Program to run (looked up in PATH)")] | None = None
    name: str | None = None
    # The sequences default to the shared empty tuple, not a list per step: a decoded
    # list when the plan gives one (100,000 steps: 5 empty lists each were 28 MB).
    args: Sequence[str] = ()
    depends_on: Sequence[str] = ()
    timeout_sec: PosSeconds | None = None
    retries: Annotated[int, Meta(ge=0, le=MAX_RETRIES)] = 0
    retry_delay_sec: NonNegSeconds = 0.0
    retry_backoff: Annotated[float, Meta(ge=1, le=MAX_BACKOFF)] = 1.0
    retry_max_delay_sec: NonNegSeconds | None = None
    retry_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.0
    retry_on_exit_codes: list[ExitCode] | None = None
    retry_on_timeout: bool = True
    critical: bool = True
    on_failure: OnFailure = OnFailure.ABORT
    when: When = When.ALL_SUCCESS
    success_exit_codes: Sequence[ExitCode] = (0,)
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    resume: ResumeRule = ResumeRule.REUSE
    max_log_bytes: LogBytes | None = None
    #: A condition (``planrun.expr``), checked after ``when``: false ends it ``skipped``.
    if_: (
        Annotated[
            str,
            Meta(
                min_length=1,
                description="Run only if this expression is true, e.g. "
                "\"vars.TARGET == 'prod' && steps.build.outputs.changed == 'yes'\"",
            ),
        ]
        | None
    ) = msgspec.field(default=None, name="if")
    #: Axes (name -> values) plus ``include``/``exclude`` (lists of objects).
    matrix: (
        Annotated[
            dict[str, list[Any]],
            Meta(
                description="Run one instance per combination of the axes' values, "
                'e.g. {"python": ["3.11", "3.12"]}; \'include\' and \'exclude\' '
                "take lists of objects"
            ),
        ]
        | None
    ) = None
    for_each: (
        Annotated[
            str,
            Meta(
                description="Run one instance per item of a JSON array, e.g. "
                '"${steps.list.outputs.ITEMS}"',
            ),
        ]
        | None
    ) = None
    max_items: Annotated[int, Meta(ge=1, le=1_000_000)] = 10_000
    max_parallel: Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)] | None = None
    fail_fast: bool = False
    uses: (
        Annotated[
            str,
            Meta(
                min_length=1,
                description="Run this plan file (relative to this plan's directory) "
                "as a child run, instead of a command",
            ),
        ]
        | None
    ) = None
    #: Values of the ``uses`` plan's variables (templates, like ``args``).
    with_: dict[str, str] = msgspec.field(default_factory=dict, name="with")
    #: Names of the parent's secrets a ``uses`` child run is given (none unless named).
    pass_secrets: Sequence[Annotated[str, Meta(pattern=VAR_NAME_PATTERN)]] = msgspec.field(
        default=(), name="secrets"
    )
    pool: Annotated[str, Meta(min_length=1)] | None = None
    skip_exit_codes: Sequence[ExitCode] = ()
    stop_signal: (
        Annotated[
            str,
            Meta(
                pattern=r"^(SIG)?[A-Z0-9+-]+\Z",
                description="Signal that asks the step to stop (default SIGTERM); "
                "SIGKILL follows after kill_grace_sec",
            ),
        ]
        | None
    ) = None
    #: Worker resources the step needs (the Dask executor's placement, e.g. ``{"gpu": 1}``);
    #: the local executor ignores them.
    resources: dict[Annotated[str, Meta(min_length=1)], Annotated[float, Meta(gt=0)]] = (
        msgspec.field(default_factory=dict)
    )

    def __post_init__(self) -> None:
        # An empty sequence however it was given (``"depends_on": []``, ``args=[]``)
        # is the shared default: equal steps compare equal, and no list is kept per step.
        if not self.args:
            self.args = ()
        if not self.depends_on:
            self.depends_on = ()
        if not self.pass_secrets:
            self.pass_secrets = ()
        if not self.skip_exit_codes:
            self.skip_exit_codes = ()
        if self.success_exit_codes == [0]:
            self.success_exit_codes = (0,)
        # Steps of a big plan mostly share their program: one string, not one per step.
        if self.command is not None:
            self.command = sys.intern(self.command)

    @property
    def display_name(self) -> str:
        return self.name if self.name is not None else self.id


def _cpu_count() -> int:
    return os.cpu_count() or 1


class Lock(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A lock on a thing: ``name``, and the ``path`` it is about (canonicalised)."""

    name: Annotated[str, Meta(min_length=1)]
    path: Annotated[str, Meta(min_length=1)] | None = None
    resolve: LockResolve = LockResolve.PATH


class Globals(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Settings for the whole run."""

    max_concurrency: Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)] | None = None
    default_timeout_sec: PosSeconds | None = None
    kill_grace_sec: NonNegSeconds = 5.0
    timeout_sec: PosSeconds | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    cwd: str | None = None
    lock: Annotated[str, Meta(min_length=1)] | Lock | None = None
    on_lock_conflict: OnLockConflict = OnLockConflict.FAIL
    lock_timeout_sec: PosSeconds | None = None
    max_log_bytes: LogBytes | None = None
    #: Named pools: at most this many of the steps with ``"pool": NAME`` run at once.
    pools: dict[str, Annotated[int, Meta(ge=1, le=MAX_CONCURRENCY)]] = msgspec.field(
        default_factory=dict
    )
    #: How long the run handlers of a cancelled run may take in all.
    handler_timeout_sec: PosSeconds = 60.0

    @property
    def concurrency(self) -> int:
        """``max_concurrency``, defaulting to the CPU count."""
        return self.max_concurrency if self.max_concurrency is not None else _cpu_count()

    def lock_templates(self) -> list[tuple[str, str]]:
        """The lock's strings that take ``${...}``, with their JSON paths."""
        if self.lock is None:
            return []
        if isinstance(self.lock, str):
            return [("$.globals.lock", self.lock)]
        out = [("$.globals.lock.name", self.lock.name)]
        if self.lock.path is not None:
            out.append(("$.globals.lock.path", self.lock.path))
        return out


class Handlers(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Steps that run after the DAG ended in that outcome; they never change it."""

    on_success: list[Step] = msgspec.field(default_factory=list)
    on_failure: list[Step] = msgspec.field(default_factory=list)
    on_cancel: list[Step] = msgspec.field(default_factory=list)
    on_exit: list[Step] = msgspec.field(default_factory=list)


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
    handlers: Handlers = msgspec.field(default_factory=Handlers)
    #: When ``planrun serve`` starts a run of this plan (none: only when asked).
    triggers: list[Trigger] = msgspec.field(default_factory=list)
    on_overlap: OnOverlap = OnOverlap.SKIP
    retention: Retention | None = None
    schema: str | None = msgspec.field(default=None, name="$schema")

    def step(self, step_id: str) -> Step:
        """The step with this id (``KeyError`` when there is none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def instance_id(base: str, label: str) -> str:
    """The id of one instance of a matrix or ``for_each`` step: ``base[label]``
    (``test[python=3.11,db=pg]``, ``process[0:doc-17]``). A plan's own ids cannot hold
    ``[``, so an instance id never collides with a written one."""
    return f"{base}[{label}]"


def base_id(step_id: str) -> str:
    """The step an instance id was expanded from (the id itself if it is not one)."""
    return step_id.partition("[")[0]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the plan format, generated from the model."""
    schema: dict[str, Any] = _ecma_patterns(msgspec.json.schema(Plan))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "planrun plan"
    return schema


def _ecma_patterns(node: Any) -> Any:
    """``node`` with every ``pattern`` ending in ``\\Z`` ending in ``$`` instead: JSON
    Schema regexes are ECMA-262, where ``$`` is the end of input and ``\\Z`` is not
    an anchor."""
    if isinstance(node, dict):
        return {
            k: v[:-2] + "$"
            if k == "pattern" and isinstance(v, str) and v.endswith("\\Z")
            else _ecma_patterns(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_ecma_patterns(v) for v in node]
    return node
