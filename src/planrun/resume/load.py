"""Resume, the I/O half: read a finished run back, check nothing changed, decide.

:func:`load_resume` does the reading and deciding (no process is started, nothing is
written but a crashed mark) with the pure :func:`planrun.resume.decide.choose`;
:func:`planrun.api.execute` then takes the run over with the returned
:class:`~planrun.prepare.Resume`. ``planrun resume --explain`` stops after
:func:`load_resume`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import anyio
import msgspec

from .. import crash
from ..errors import LockConflict, UsageError
from ..events import Event
from ..model import Plan, RunState
from ..paths import state_dir_or_default
from ..prepare import PreparedRun, Resume, prepare, secret_hint, secrets_from_env
from ..records import RunRecord, StepRecord
from ..store.reader import RunReader
from ..trigger_env import with_trigger_env
from .decide import PriorStep, choose, plan_changes, variable_changes
from .instances import base_of, instance_choices

__all__ = ["LoadedResume", "load_resume"]

PlanSource = Plan | Mapping[str, Any] | str | os.PathLike[str]


class LoadedResume(msgspec.Struct, frozen=True):
    """A run ready to be resumed: the prepared plan, the decisions, what changed."""

    run: RunRecord
    prepared: PreparedRun
    resume: Resume
    #: What differs from the run (empty unless ``allow_changed``).
    changes: list[str]


class _Stored(msgspec.Struct, frozen=True):
    """What the store holds about the run being resumed."""

    run: RunRecord
    plan: dict[str, Any] | None
    steps: list[StepRecord]
    history: list[Event]


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
    state_dir: str | os.PathLike[str] | None = None,
    *,
    plan: PlanSource | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    from_step: str | None = None,
    only: str | None = None,
    allow_changed: bool = False,
    allow_undeclared: bool = False,
) -> LoadedResume:
    """Read run ``run_id`` and decide what a resume reruns.

    The plan defaults to the file the run was started from; the run's variables are
    used again, ``variables`` overriding some; the run's secrets are read from the
    environment again (or taken from ``secrets``). ``state_dir`` defaults as for
    every run. Raises ``UsageError`` (no such run, nothing to resume from, the plan or
    variables changed without ``allow_changed``), ``LockConflict`` (the run is
    running), ``PlanError`` (the plan is no longer valid, or a new variable is not
    declared and not ``allow_undeclared``: the run's own were accepted when it started).
    """
    if from_step is not None and only is not None:
        raise UsageError("from_step and only cannot be combined", field="from_step")
    stored = await _read(run_id, state_dir_or_default(state_dir))
    run = stored.run
    source = await _plan_source(run, plan)
    given = {k: v for k, v in run.variables.items() if k != "PLAN_DIR"}
    given.update(variables or {})
    prepared = prepare(
        source,
        given,
        _secrets(run, secrets),
        allow_undeclared=allow_undeclared,
        known_variables=run.variables.keys(),
    )
    changes = _changes(stored, prepared)
    if changes and not allow_changed:
        raise UsageError(
            f"cannot resume run {run_id}: it would not run the same thing:\n  - "
            + "\n  - ".join(changes)
            + "\nstart a new run, or pass allow_changed=True to resume anyway",
            field="allow_changed",
        )
    prior = {s.step_id: _prior(s) for s in stored.steps}
    refs = {rs.step.id: rs.step_refs for rs in prepared.steps}
    base_from, base_only = base_of("--from", from_step, prior), base_of("--only", only, prior)
    choices = choose(prepared.plan, prior, refs, from_step=base_from, only=base_only)
    choices = instance_choices(prepared.plan, choices, prior, from_step=from_step, only=only)
    resume = Resume(run_id, choices, prior, stored.history, run.last_seq)
    if run.trigger:  # started by `planrun serve`: rerun steps see what the first ones saw
        prepared = with_trigger_env(prepared, run.trigger)
    return LoadedResume(run, prepared, resume, changes)


async def _read(run_id: str, state_dir: os.PathLike[str]) -> _Stored:
    """The run, its stored plan, steps and events (``UsageError``: no such run;
    ``LockConflict``: it is running)."""
    async with RunReader.open(state_dir) as reader:
        run = await crash.get_run(reader, run_id)
        if run is None:
            raise UsageError(f"no run '{run_id}' in {state_dir}", field="run_id")
        if run.state is RunState.RUNNING:
            raise LockConflict(
                f"run {run_id} is running (pid {run.owner_pid} on {run.owner_host}); "
                "resume it when it has ended"
            )
        return _Stored(
            run,
            await reader.get_plan(run_id),
            await reader.get_steps(run_id),
            await reader.get_events(run_id),
        )


async def _plan_source(run: RunRecord, plan: PlanSource | None) -> PlanSource:
    """The plan to resume with: ``plan`` if given, else the file the run came from."""
    source = plan if plan is not None else run.plan_path
    if source is None:
        raise UsageError(
            f"run {run.run_id} was started from plan data, not a file (e.g. read from "
            "standard input): pass the plan again (plan=...) to resume it",
            field="plan",
        )
    if isinstance(source, (str, os.PathLike)) and not await anyio.Path(source).exists():
        raise UsageError(
            f"the plan file of run {run.run_id} is gone: {source}; pass the plan again "
            "(plan=...) to resume it",
            field="plan",
        )
    return source


def _changes(stored: _Stored, prepared: PreparedRun) -> list[str]:
    """What differs between the run as recorded and ``prepared`` (plan, variables)."""
    changes = variable_changes(stored.run.variables, prepared.masked_variables)
    if stored.plan is None:
        changes.insert(0, "the run was recorded without its plan (an older planrun)")
    else:
        now = msgspec.json.decode(prepared.plan_json())
        changes[:0] = plan_changes(stored.plan, msgspec.convert(now, Plan))
    return changes


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
