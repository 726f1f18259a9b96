"""Sub-plans at run time: a ``uses`` step's attempt runs its plan as a child run.

The child is a run of its own in the same store, in this process: it is prepared
like any run (:func:`~planrun.prepare.prepare`, with the step's bound ``with`` values
as its variables and only the secrets the step names) and executed by the parent's
API path on the parent's executor, so the parent's watchdog guards the child's
processes too (``kill -9`` of planrun leaves none) and cancelling the parent cancels
the child (recorded ``cancelled``, its processes stopped).

Its id is ``PARENT.STEP.ATTEMPT`` (:func:`child_run_id`): readable, unique per
attempt (a retry or a resume starts a new child run), stable across nothing else. The
child's result decides the attempt: succeeded -> exit code 0; otherwise the child's
exit code with the error ``child run ID failed: REASON``. The step has no outputs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import anyio

from .digest import sha256_hex
from .errors import PlanError, PlanrunError
from .masking import Masker
from .model import RunState, Step
from .ports import AttemptSpec, ChildStarted, ProcessResult
from .prepare import PreparedRun, prepare
from .results import RunResult

__all__ = ["ChildContext", "child_run_id", "run_child"]

_MAX_RUN_ID = 128
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]")

#: Runs a prepared child plan: ``(prepared, child run id, parent step id, hidden
#: environment variables)``.
ExecuteChild = Callable[[PreparedRun, str, str, frozenset[str]], Awaitable[RunResult]]


@dataclass(frozen=True)
class ChildContext:
    """What a parent run gives its ``uses`` steps: its id, its secret values (each
    step passes on only those it names), the environment variables its own steps do
    not inherit, and how to execute a prepared child."""

    parent_run_id: str
    execute: ExecuteChild
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    hidden_env: frozenset[str] = frozenset()
    #: Masks ``secrets`` (the parent's own masker: built once per run, not per attempt).
    masker: Masker | None = field(default=None, repr=False)

    def hidden_from(self, step: Step) -> frozenset[str]:
        """What a child run of ``step`` must not see in planrun's environment: the
        parent's secrets the step does not pass (secrets are read from planrun's
        environment, which steps inherit) and what the parent does not see itself."""
        return self.hidden_env | (set(self.secrets) - set(step.pass_secrets))


def child_run_id(parent_run_id: str, step_id: str, attempt: int) -> str:
    """``PARENT.STEP.ATTEMPT``. A step id that is no run id as it is (an instance id
    such as ``restore[0:doc-17]``) has its other characters replaced by ``_`` and a
    short hash added, so two instances never share a child id; an id that would be
    longer than 128 characters keeps its start and the hash."""
    tail = f".{attempt}"
    step = _NOT_IN_ID.sub("_", step_id)
    digest = sha256_hex(f"{parent_run_id}/{step_id}".encode())[:8]
    if step != step_id:
        step = f"{step}-{digest}"
    text = f"{parent_run_id}.{step}{tail}"
    if len(text) <= _MAX_RUN_ID:
        return text
    return f"{text[: _MAX_RUN_ID - len(tail) - 9]}-{digest}{tail}"


async def run_child(
    ctx: ChildContext, step: Step, spec: AttemptSpec, on_started: ChildStarted
) -> ProcessResult:
    """One attempt of ``step`` as a child run (the :data:`~planrun.ports.RunChild`
    contract): ``spec.argv[0]`` is the child plan, ``spec.env`` its variables."""
    run_id = child_run_id(ctx.parent_run_id, spec.step_id, spec.attempt)
    leak = _secret_in_with(ctx, spec)
    if leak is not None:
        on_started(None)
        return ProcessResult(exit_code=None, error=leak)
    secrets = {name: ctx.secrets[name] for name in step.pass_secrets if name in ctx.secrets}
    try:
        # environ={}: a child reads no secret from the environment, it gets only these.
        prepared = prepare(spec.argv[0], dict(spec.env), secrets, environ={})
    except PlanrunError as exc:
        on_started(None)
        return ProcessResult(exit_code=None, error=_not_started(exc))
    on_started(None, run_id)
    timeout = spec.timeout if spec.timeout is not None else math.inf
    try:
        with anyio.move_on_after(timeout) as scope:
            result = await ctx.execute(prepared, run_id, spec.step_id, ctx.hidden_from(step))
    except PlanrunError as exc:
        return ProcessResult(exit_code=None, error=f"child run {run_id}: {exc}")
    if scope.cancelled_caught:
        return ProcessResult(exit_code=None, timed_out=True)
    if result.state is RunState.SUCCEEDED:
        return ProcessResult(exit_code=0, outputs={})
    why = f": {result.reason}" if result.reason else ""
    return ProcessResult(
        exit_code=result.exit_code, error=f"child run {run_id} {result.state.value}{why}"
    )


def _secret_in_with(ctx: ChildContext, spec: AttemptSpec) -> str | None:
    """Why the bound ``with`` values cannot go to a child run: one holds a secret of
    the parent (an output bound late: validation refuses ``${SECRET}`` itself), and a
    child stores its variables in clear. None if none does."""
    if not ctx.secrets:
        return None
    masker = ctx.masker if ctx.masker is not None else Masker(ctx.secrets.values())
    for key, value in spec.env.items():
        if masker.text(value) != value:
            return (
                f"with.{key} holds a secret of this run; a child run's variables are "
                "stored in clear: pass the secret by name in the step's 'secrets'"
            )
    return None


def _not_started(exc: PlanrunError) -> str:
    """Why a child plan could not start, on one line."""
    if isinstance(exc, PlanError):
        first = exc.problems[0].render(exc.source) if exc.problems else str(exc)
        more = len(exc.problems) - 1
        return f"child plan not started: {first}" + (f" (and {more} more)" if more else "")
    return f"child plan not started: {exc}"
