"""The ``for_each`` rules of a decoded plan (dynamic fan-out, :mod:`planrun.fanout`).

- ``${item}`` / ``${item.KEY}`` only in a ``for_each`` step's command, args, env and
  cwd (``${item}`` elsewhere is a variable of that name if the plan declares one);
- the ``for_each`` template itself cannot use the item, nor secrets (instance ids
  and the recorded items are shown in clear);
- its step references name ancestors (:func:`.checks.check_step_refs`) and, when it
  uses none, its value is known now and must be a JSON array within ``max_items``;
- no step uses the outputs of a ``for_each`` step (its instances have them);
- ``for_each`` and ``matrix`` do not go together.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import msgspec

from .. import fanout, subst
from ..errors import Problem
from ..model import Plan
from .checks import Indexed, Template

__all__ = ["check_for_each", "without_item_names"]


def without_item_names(plan: Plan, indexed: Indexed, parsed: Sequence[Template]) -> list[Template]:
    """``parsed`` without the ``item``/``item.KEY`` names that are not variables: the
    variable rules must not call them undefined (:func:`check_for_each` has rules for
    them)."""
    declared = set(plan.variables)
    return [
        msgspec.structs.replace(t, names=tuple(n for n in t.names if not _is_item(n, declared)))
        if any(_is_item(n, declared) for n in t.names)
        else t
        for t in parsed
    ]


def _is_item(name: str, declared: Collection[str]) -> bool:
    return fanout.is_item_name(name) and name not in declared


def check_for_each(
    plan: Plan, indexed: Indexed, parsed: Sequence[Template], given: Mapping[str, str]
) -> list[Problem]:
    """Every ``for_each`` rule (see the module docstring)."""
    groups = {s.id for _, s in indexed if s.for_each is not None}
    declared = set(plan.variables)
    problems: list[Problem] = []
    for template in parsed:
        items = [n for n in dict.fromkeys(template.names) if _is_item(n, declared)]
        if template.path.endswith(".for_each"):
            problems += _in_for_each(plan, template, items)
        elif items and template.step_id not in groups:
            problems.append(_item_outside(template, items[0]))
        problems += [
            Problem(
                template.path,
                f"'{ref.text}': step '{ref.step_id}' is a for_each step, whose instances "
                "have the outputs, not the step",
                template.step_id,
                f"read what its instances write from a step they all feed, or use "
                f"'{ref.step_id}' in depends_on only",
            )
            for ref in dict.fromkeys(template.refs)
            if ref.key is not None and ref.step_id in groups
        ]
    for i, step in indexed:
        if step.for_each is not None and step.matrix is not None:
            problems.append(
                Problem(
                    f"$.steps[{i}].for_each",
                    "a step takes 'for_each' or 'matrix', not both",
                    step.id,
                    "split it into two steps",
                )
            )
        if step.for_each is not None:
            problems += _known_value(i, step.id, step.for_each, step.max_items, plan, given)
    return problems


def _item_outside(template: Template, name: str) -> Problem:
    where = "in a step without 'for_each'" if template.step_id else "outside a step"
    message = f"'${{{name}}}' is used {where}"
    return Problem(
        template.path,
        message,
        template.step_id,
        'add "for_each": "${steps.ID.outputs.KEY}" to the step (the item is given to '
        "its instances' command, args, env and cwd), or declare a variable of that name",
    )


def _in_for_each(plan: Plan, template: Template, items: Sequence[str]) -> list[Problem]:
    problems: list[Problem] = []
    if items:
        problems.append(
            Problem(
                template.path,
                f"'for_each' cannot use '${{{items[0]}}}': the items come from it",
                template.step_id,
                "use a step's output (${steps.ID.outputs.KEY}) or a variable",
            )
        )
    secret = next((n for n in template.names if n in plan.secrets), None)
    if secret is not None:
        problems.append(
            Problem(
                template.path,
                f"'for_each' uses secret '{secret}'",
                template.step_id,
                "instance ids and the items are stored and shown in clear: use a variable",
            )
        )
    return problems


def _known_value(
    i: int, sid: str, template: str, max_items: int, plan: Plan, given: Mapping[str, str]
) -> list[Problem]:
    """A for_each without step references: its value is known now, check it."""
    try:
        pieces = subst.parse(template)
    except subst.SubstError:
        return []  # reported by the variable rules
    if any(isinstance(p, subst.StepRef) for p in pieces):
        return []
    values = {k: str(v) for k, v in plan.variables.items() if isinstance(v, str)} | dict(given)
    if any(isinstance(p, subst.Ref) and p.name not in values for p in pieces):
        return []  # not known yet (or undefined: reported by the variable rules)
    text = "".join(
        values[p.name] if isinstance(p, subst.Ref) else p
        for p in pieces
        if not isinstance(p, subst.StepRef)
    )
    names = [p.name for p in pieces if isinstance(p, subst.Ref)]
    what = f"variable '{names[0]}'" if len(names) == 1 and len(pieces) == 1 else "the value"
    try:
        fanout.parse_items(text, what, max_items)
    except fanout.FanoutError as exc:
        hint = 'write a JSON array, e.g. "for_each": "${steps.list.outputs.ITEMS}"'
        return [Problem(f"$.steps[{i}].for_each", str(exc), sid, hint)]
    return []
