"""Resume decisions for the instances of for_each steps. Pure.

:func:`~planrun.resume.decide.choose` decides for the plan's own steps; the
instances a run made (``process[1:b]``) follow their step:

- the step is reused or kept: so are its instances;
- the step reruns because something it depends on reruns (its items, or what its
  instances use, may change): every instance reruns (a fresh expansion);
- the step reruns because some of its instances did not succeed: the succeeded ones
  are reused (re-expanded from the recorded items), the others rerun;
- ``--from STEP`` / ``--only STEP``: every instance reruns; ``--from``/``--only`` an
  instance: that one reruns (with ``--only``, the others keep their result, whatever
  it was).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import UsageError
from ..model import Plan, StepState, base_id
from .decide import Action, Choice, PriorStep

__all__ = ["base_of", "instance_choices"]


def base_of(flag: str, value: str | None, prior: Mapping[str, PriorStep]) -> str | None:
    """The step ``choose`` is given for ``--from``/``--only`` ``value``: the for_each
    step of an instance id (which the run must have made), else ``value`` itself."""
    if value is None or base_id(value) == value:
        return value
    if value not in prior:
        made = [sid for sid in prior if base_id(sid) == base_id(value) and sid != base_id(value)]
        known = ", ".join(made[:5]) + (", ..." if len(made) > 5 else "") if made else "none"
        raise UsageError(f"{flag} {value}: the run made no such instance (it made: {known})")
    return base_id(value)


def instance_choices(
    plan: Plan,
    choices: Sequence[Choice],
    prior: Mapping[str, PriorStep],
    *,
    from_step: str | None = None,
    only: str | None = None,
) -> list[Choice]:
    """``choices`` with, after each for_each step's, the choices for the instances the
    run made of it (in the order it made them)."""
    groups = {s.id: s for s in plan.steps if s.for_each is not None}
    made: dict[str, list[str]] = {}
    for sid in prior:
        if base_id(sid) != sid:
            made.setdefault(base_id(sid), []).append(sid)
    action = {c.step_id: c.action for c in choices}
    out: list[Choice] = []
    for choice in choices:
        out.append(choice)
        step = groups.get(choice.step_id)
        if step is None:
            continue
        fresh = any(action.get(d) is Action.RERUN for d in step.depends_on)
        for iid in made.get(step.id, ()):
            out.append(_one(choice, iid, prior[iid], fresh, from_step, only))
    return out


def _one(
    group: Choice,
    iid: str,
    prior: PriorStep,
    fresh: bool,
    from_step: str | None,
    only: str | None,
) -> Choice:
    was = _was(prior)
    if group.action is not Action.RERUN:
        return Choice(iid, group.action, f"{was} ({group.step_id}: {group.action.value})")
    if iid in (from_step, only):
        return Choice(iid, Action.RERUN, f"--{'from' if iid == from_step else 'only'} {iid}")
    if group.step_id in (from_step, only):
        return Choice(iid, Action.RERUN, f"{group.step_id} reruns all of its instances")
    if fresh:
        return Choice(iid, Action.RERUN, f"'{group.step_id}' is expanded again (was {was})")
    if prior.state is StepState.SUCCEEDED:
        return Choice(iid, Action.REUSE, was)
    if only is not None:
        return Choice(iid, Action.KEEP, f"left {was} (--only)")
    return Choice(iid, Action.RERUN, was)


def _was(prior: PriorStep) -> str:
    text = prior.state.value
    if prior.state is StepState.SUCCEEDED and prior.attempts:
        return f"succeeded (attempt {prior.attempts})"
    return f"{text}: {prior.reason}" if prior.reason else text
