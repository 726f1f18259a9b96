"""Resume decisions: which steps of an earlier run to reuse, rerun or keep. Pure.

A step's earlier result can be reused only if everything it depends on is reused
too, so the rerun set is always closed downstream:

- default: every step that did not succeed, plus everything downstream of one;
- ``--from STEP``: that, plus STEP and everything downstream of it;
- ``--only STEP``: just STEP (its dependencies must have succeeded); every other
  step keeps its earlier result, whatever it was.

A reused step whose output held a secret has no usable stored value (outputs are
stored masked), so it reruns when a rerunning step needs that output. A step marked
``"resume": "ephemeral"`` (its effect does not outlive the run, e.g. a temporary work
tree that a cleanup step removes) reruns whenever a step downstream of it reruns; with
``--only`` a step downstream of one is refused (``--from`` that step instead).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from .. import graph
from ..errors import UsageError
from ..model import Plan, ResumeRule, Step, StepState
from ..subst import StepRef

__all__ = [
    "Action",
    "Choice",
    "PriorStep",
    "choose",
    "plan_changes",
    "variable_changes",
]


class Action(enum.StrEnum):
    """What a resume does with one step."""

    REUSE = "reuse"  # succeeded before: its result (exit code, outputs) stands
    RERUN = "rerun"  # runs again, with new attempts
    KEEP = "keep"  # --only: did not succeed and is left as it was


class PriorStep(msgspec.Struct, frozen=True):
    """A step as the store recorded it before the resume."""

    state: StepState
    attempts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    outputs: dict[str, str] = msgspec.field(default_factory=dict)
    masked_outputs: tuple[str, ...] = ()


class Choice(msgspec.Struct, frozen=True):
    """The decision for one step and why."""

    step_id: str
    action: Action
    why: str


def _describe(prior: PriorStep | None) -> str:
    if prior is None:
        return "new in the plan"
    if prior.state is StepState.PENDING:
        return "never started"
    text = prior.state.value
    if prior.state is StepState.SUCCEEDED:
        return f"succeeded (attempt {prior.attempts})" if prior.attempts else text
    return f"{text}: {prior.reason}" if prior.reason else text


def choose(
    plan: Plan,
    prior: Mapping[str, PriorStep],
    refs: Mapping[str, Sequence[StepRef]],
    *,
    from_step: str | None = None,
    only: str | None = None,
) -> list[Choice]:
    """Decide, for every step of ``plan`` in plan order, what a resume does.

    ``refs`` maps a step id to the step references it uses. Raises
    :class:`UsageError` for an unknown ``from_step``/``only`` or an ``only`` step
    whose dependencies did not all succeed.
    """
    ids = [s.id for s in plan.steps]
    for flag, value in (("--from", from_step), ("--only", only)):
        if value is not None and value not in ids:
            raise UsageError(f"{flag} {value}: no such step in plan '{plan.plan_id}'")
    deps = {s.id: list(s.depends_on) for s in plan.steps}
    succeeded = {sid for sid in ids if sid in prior and prior[sid].state is StepState.SUCCEEDED}
    if only is not None:
        return _choose_only(plan, prior, refs, only, succeeded)
    why: dict[str, str] = {}
    seeds = [sid for sid in ids if sid not in succeeded]
    for sid in seeds:
        why[sid] = _describe(prior.get(sid))
    if from_step is not None:
        seeds.append(from_step)
        why.setdefault(from_step, f"--from {from_step}")
    rerun = graph.downstream(deps, seeds)
    ephemeral = [s.id for s in plan.steps if s.resume is ResumeRule.EPHEMERAL]
    # Outputs stored masked cannot be reused, nor can an ephemeral step's effect: rerun
    # the producer (and so on), until nothing more is added.
    changed = True
    while changed:
        changed = _add_ephemeral(ids, deps, ephemeral, rerun, why)
        for sid in sorted(rerun):
            for ref in refs.get(sid, ()):
                producer = prior.get(ref.step_id)
                if ref.step_id in rerun or producer is None or ref.key is None:
                    continue
                if ref.key in producer.masked_outputs:
                    why[ref.step_id] = (
                        f"its output '{ref.key}' held a secret, so it was not stored, "
                        f"and '{sid}' needs it"
                    )
                    rerun |= graph.downstream(deps, [ref.step_id])
                    changed = True
    choices = []
    for sid in ids:
        if sid not in rerun:
            choices.append(Choice(sid, Action.REUSE, _describe(prior.get(sid))))
            continue
        reason = why.get(sid)
        if reason is None:
            upstream = next(d for d in deps[sid] if d in rerun)
            was = prior[sid].state.value if sid in prior else "new"
            reason = f"depends on '{upstream}', which reruns (was {was})"
        choices.append(Choice(sid, Action.RERUN, reason))
    return choices


def _add_ephemeral(
    ids: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    ephemeral: Sequence[str],
    rerun: set[str],
    why: dict[str, str],
) -> bool:
    """Add to ``rerun`` (with what follows them) the ephemeral steps that something
    downstream of them reruns after; True if any was added."""
    added = False
    for sid in ephemeral:
        if sid in rerun:
            continue
        after = graph.downstream(deps, [sid]) - {sid}
        first = next((d for d in ids if d in after and d in rerun), None)
        if first is None:
            continue
        why[sid] = (
            f"its effect does not outlive a run (resume: ephemeral) and '{first}', "
            "which comes after it, reruns"
        )
        rerun |= graph.downstream(deps, [sid])
        added = True
    return added


def _choose_only(
    plan: Plan,
    prior: Mapping[str, PriorStep],
    refs: Mapping[str, Sequence[StepRef]],
    only: str,
    succeeded: set[str],
) -> list[Choice]:
    step = plan.step(only)
    deps = {s.id: list(s.depends_on) for s in plan.steps}
    for s in plan.steps:
        if s.resume is ResumeRule.EPHEMERAL and s.id in graph.ancestors(deps, only):
            raise UsageError(
                f"--only {only}: it comes after '{s.id}', whose effect does not outlive a "
                f"run (resume: ephemeral) and would have to rerun too; use --from {s.id}"
            )
    for dep in step.depends_on:
        if dep not in succeeded:
            state = prior[dep].state.value if dep in prior else "new"
            raise UsageError(
                f"--only {only}: its dependency '{dep}' did not succeed ({state}); "
                f"use --from {dep} to rerun both"
            )
    for ref in refs.get(only, ()):
        producer = prior.get(ref.step_id)
        if producer is not None and ref.key in producer.masked_outputs:
            raise UsageError(
                f"--only {only}: it uses output '{ref.key}' of '{ref.step_id}', which held "
                f"a secret and was not stored; use --from {ref.step_id}"
            )
    choices = []
    for s in plan.steps:
        if s.id == only:
            choices.append(Choice(s.id, Action.RERUN, f"--only {only}"))
        elif s.id in succeeded:
            choices.append(Choice(s.id, Action.REUSE, _describe(prior.get(s.id))))
        else:
            choices.append(Choice(s.id, Action.KEEP, f"left {_describe(prior.get(s.id))} (--only)"))
    return choices


# --- what changed since the run -----------------------------------------------------


@functools.cache  # on first use: it resolves the type hints of the whole plan model
def _step_defaults() -> dict[str, Any]:
    """Each step field's default as builtins, by its JSON name."""
    out: dict[str, Any] = {}
    for info in msgspec.structs.fields(Step):
        default = info.default
        if default is msgspec.NODEFAULT and info.default_factory is not msgspec.NODEFAULT:
            default = info.default_factory()
        if default is not msgspec.NODEFAULT:
            out[info.encode_name] = _as_json(default)
    return out


def _as_json(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists), as a stored plan is."""
    return msgspec.json.decode(msgspec.json.encode(value))


def _canonical(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` (a plan as builtins) with every step's fields that hold their default
    left out, however the plan spelled them (``"depends_on": []``) and whichever
    planrun version stored it (defaults an older one wrote out, such as
    ``"success_exit_codes": [0]``): what the comparison compares."""
    defaults = _step_defaults()

    def step(raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        return {k: v for k, v in raw.items() if defaults.get(k, _MISSING) != v}

    out = dict(doc)
    if isinstance(out.get("steps"), list):
        out["steps"] = [step(s) for s in out["steps"]]
    if isinstance(out.get("handlers"), dict):
        out["handlers"] = {
            k: [step(s) for s in v] if isinstance(v, list) else v
            for k, v in out["handlers"].items()
        }
    return out


_MISSING = object()


def plan_changes(old: Mapping[str, Any], new: Plan) -> list[str]:
    """Human-readable differences between a stored plan (builtins) and ``new``
    (fields at their default are no difference, however either spells them)."""
    old = _canonical(old)
    now = _canonical(_as_json(new))
    out = []
    for key in sorted(set(old) | set(now)):
        if key == "steps" or old.get(key) == now.get(key):
            continue
        out.append(f"'{key}' changed")
    before = {s["id"]: s for s in old.get("steps", [])}
    after = {s["id"]: s for s in now.get("steps", [])}
    for sid in before:
        if sid not in after:
            out.append(f"step '{sid}' was removed")
    for sid, step in after.items():
        if sid not in before:
            out.append(f"step '{sid}' was added")
            continue
        fields = sorted(
            k for k in set(step) | set(before[sid]) if step.get(k) != before[sid].get(k)
        )
        if fields:
            out.append(f"step '{sid}' changed ({', '.join(fields)})")
    if not out and list(before) != list(after):
        out.append("the steps were reordered")
    return out


def variable_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """Differences between the variables of the run and those of the resume."""
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append(f"variable {name} is no longer set (was {old[name]!r})")
        elif name not in old:
            out.append(f"variable {name} is new ({new[name]!r})")
        elif old[name] != new[name]:
            out.append(f"variable {name}: {old[name]!r} -> {new[name]!r}")
    return out
