"""Resume: read a finished run back, check nothing changed, decide what reruns.

:func:`load_resume` does the reading and deciding (no process is started, nothing is
written but a crashed mark); :func:`planrun.api.execute` then takes the run over with
the returned :class:`~planrun.api.Resume`. ``planrun resume --explain`` stops after
:func:`load_resume`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec

from . import crash
from .api import PreparedRun, Resume, prepare, secret_hint, secrets_from_env
from .errors import LockConflict, UsageError
from .model import Plan, RunState
from .records import RunRecord, StepRecord
from .resume import PriorStep, choose, plan_changes, variable_changes
from .store.reader import RunReader

__all__ = ["LoadedResume", "load_resume"]


@dataclass(frozen=True)
class LoadedResume:
    """A run ready to be resumed: the prepared plan, the decisions, what changed."""

    run: RunRecord
    prepared: PreparedRun
    resume: Resume
    #: What differs from the run (empty unless ``allow_changed``).
    changes: list[str]


def _prior(step: StepRecord) -> PriorStep:
    return PriorStep(
        state=step.state,
        attempts=max((a.attempt for a in step.attempts), default=0),
        exit_code=step.exit_code,
        reason=step.reason,
        outputs=dict(step.outputs or {}),
        masked_outputs=tuple(step.masked_outputs),
    )


async def load_resume(
    run_id: str,
    state_dir: str | os.PathLike[str],
    *,
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    from_step: str | None = None,
    only: str | None = None,
    allow_changed: bool = False,
) -> LoadedResume:
    """Read run ``run_id`` and decide what a resume reruns.

    The plan defaults to the file the run was started from; the run's variables are
    used again, ``variables`` overriding some; the run's secrets are read from the
    environment again (or taken from ``secrets``). Raises
    ``UsageError`` (no such run, nothing to resume from, the plan or variables
    changed without ``allow_changed``), ``LockConflict`` (the run is running),
    ``PlanError`` (the plan is no longer valid).
    """
    if from_step is not None and only is not None:
        raise UsageError("--from and --only cannot be combined")
    async with RunReader.open(state_dir) as reader:
        run = await crash.get_run(reader, run_id)
        if run is None:
            raise UsageError(f"no run '{run_id}' in {state_dir}; see `planrun list`")
        if run.state is RunState.RUNNING:
            raise LockConflict(
                f"run {run_id} is running (pid {run.owner_pid} on {run.owner_host}); "
                "resume it when it has ended"
            )
        stored_plan = await reader.get_plan(run_id)
        steps = await reader.get_steps(run_id)
        history = await reader.get_events(run_id)
    source = plan if plan is not None else run.plan_path
    if source is None:
        raise UsageError(
            f"run {run_id} was started from plan data, not a file: pass the plan to resume"
        )
    if isinstance(source, (str, os.PathLike)) and not await anyio.Path(source).exists():
        raise UsageError(f"the plan file of run {run_id} is gone: {source}")
    given = {k: v for k, v in run.variables.items() if k != "PLAN_DIR"}
    given.update(variables or {})
    prepared = prepare(source, given, _secrets(run, secrets))
    changes = variable_changes(run.variables, prepared.masked_variables)
    if stored_plan is None:
        changes.insert(0, "the run was recorded without its plan (an older planrun)")
    else:
        now = msgspec.json.decode(prepared.plan_json())
        changes[:0] = plan_changes(stored_plan, msgspec.convert(now, Plan))
    if changes and not allow_changed:
        raise UsageError(
            f"cannot resume run {run_id}: it would not run the same thing:\n  - "
            + "\n  - ".join(changes)
            + "\nstart a new run, or pass --allow-changed to resume anyway"
        )
    prior = {s.step_id: _prior(s) for s in steps}
    refs = {rs.step.id: rs.step_refs for rs in prepared.steps}
    choices = choose(prepared.plan, prior, refs, from_step=from_step, only=only)
    resume = Resume(run_id, choices, prior, history, run.last_seq)
    return LoadedResume(run, prepared, resume, changes)


def _secrets(run: RunRecord, given: Mapping[str, str] | None) -> dict[str, str]:
    """The run's secrets: those given, else from the environment (``--secret`` names
    were recorded; the plan's own are read by ``prepare``)."""
    out = dict(given or {})
    found, missing = secrets_from_env(n for n in run.secret_names if n not in out)
    if missing:
        name, why = next(iter(missing.items()))
        raise UsageError(
            f"secret '{name}' of run {run.run_id} is {why}: {secret_hint(name, why)} "
            "and resume again"
        )
    return out | found
