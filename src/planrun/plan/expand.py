"""Static matrices: one step per combination of its axes' values. Pure: no I/O.

``"matrix": {"python": ["3.11", "3.12"], "db": ["pg", "sqlite"]}`` expands step
``test`` into ``test[python=3.11,db=pg]``, ``test[python=3.11,db=sqlite]``, ... (axes in
the order written, values as strings). ``exclude`` (a list of objects) drops every
combination that matches all of an object's keys; ``include`` then works as in GitHub
Actions: an object whose axis keys match a combination adds its other keys to it (the
original axis values are never overwritten); an object that matches none is a
combination of its own. A combination's keys (axes first, then the keys ``include``
added) make its label; values are shown with every character but letters, digits,
``.``, ``_`` and ``-`` written as ``_``, at most :data:`MAX_LABEL_VALUE` of them.

An instance is an ordinary :class:`~planrun.model.Step` whose id is
``base[label]`` and whose ``matrix`` holds its one combination (each key a one-value
axis): :func:`matrix_values` reads its ``${matrix.K}`` values from it, and
:func:`expand` leaves it as it is, so expanding twice changes nothing. A dependency
on a matrix step means all of its instances. The plan as written is what is stored;
a resume expands it again, to the same ids.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from ..errors import Problem
from ..model import VAR_NAME_PATTERN, Plan, Step, instance_id

__all__ = [
    "MAX_INSTANCES",
    "MAX_LABEL_VALUE",
    "cell",
    "check_matrices",
    "combinations",
    "expand",
    "is_instance",
    "matrix_values",
]

#: The most instances one matrix may expand to (as GitHub Actions' 256 jobs).
MAX_INSTANCES = 256
#: The most characters of one value shown in an instance's label.
MAX_LABEL_VALUE = 32
_RESERVED = ("include", "exclude")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME = re.compile(VAR_NAME_PATTERN)

Combination = dict[str, str]


def _text(value: Any) -> str:
    """A scalar as a string, as variables are (``true``, ``3.11``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def axes(matrix: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The axes of a matrix (every key but ``include``/``exclude``), in order."""
    return {k: v for k, v in matrix.items() if k not in _RESERVED}


def combinations(matrix: Mapping[str, Any]) -> list[Combination]:
    """The combinations of a (checked) matrix, in order: the product of the axes
    (first axis slowest), ``exclude`` applied, then ``include``."""
    ax = axes(matrix)
    names = list(ax)
    product = (
        [
            dict(zip(names, (_text(v) for v in values), strict=True))
            for values in itertools.product(*ax.values())
        ]
        if ax
        else []
    )
    excluded = [{k: _text(v) for k, v in e.items()} for e in matrix.get("exclude", ())]
    kept = [c for c in product if not any(_matches(c, e) for e in excluded)]
    originals = [dict(c) for c in kept]
    for entry in matrix.get("include", ()):
        wanted = {k: _text(v) for k, v in entry.items()}
        matched = False
        for combo, original in zip(kept, originals, strict=False):
            if _matches(original, {k: v for k, v in wanted.items() if k in ax}):
                combo.update({k: v for k, v in wanted.items() if k not in ax})
                matched = True
        if not matched:
            kept.append(wanted)
    return kept


def _matches(combo: Mapping[str, str], entry: Mapping[str, str]) -> bool:
    return all(combo.get(k) == v for k, v in entry.items())


def label(combo: Mapping[str, str], order: Sequence[str]) -> str:
    """``python=3.11,db=pg``: the axes in ``order`` first, then the other keys."""
    keys = [k for k in order if k in combo] + [k for k in combo if k not in order]
    return ",".join(f"{k}={_UNSAFE.sub('_', combo[k])[:MAX_LABEL_VALUE]}" for k in keys)


def is_instance(step: Step) -> bool:
    """An instance of a matrix or ``for_each`` step (its id is ``base[label]``)."""
    return "[" in step.id


def matrix_values(step: Step) -> dict[str, str]:
    """An instance's ``${matrix.K}`` values (``{"matrix.python": "3.11"}``); none for a
    step that is not a matrix instance."""
    if not is_instance(step) or not step.matrix:
        return {}
    return {f"matrix.{k}": _text(v[0]) for k, v in step.matrix.items() if v}


def cell(step: Step) -> dict[str, str] | None:
    """A matrix instance's combination (``{"python": "3.11"}``); None for another step."""
    values = matrix_values(step)
    return {k.removeprefix("matrix."): v for k, v in values.items()} if values else None


def expand(plan: Plan) -> Plan:
    """``plan`` with each matrix step replaced by its instances, in place, and every
    dependency on a matrix step replaced by its instances (check first:
    :func:`check_matrices`). A plan without matrices is returned as it is."""
    instances: dict[str, list[Step]] = {}
    for step in plan.steps:
        if step.matrix is not None and not is_instance(step):
            instances[step.id] = _instances(step)
    if not instances:
        return plan
    steps: list[Step] = []
    for step in plan.steps:
        for one in instances.get(step.id, [step]):
            deps = [d for dep in one.depends_on for d in _ids(dep, instances)]
            steps.append(msgspec.structs.replace(one, depends_on=deps))
    return msgspec.structs.replace(plan, steps=steps)


def _ids(dep: str, instances: Mapping[str, list[Step]]) -> list[str]:
    return [s.id for s in instances[dep]] if dep in instances else [dep]


def _instances(step: Step) -> list[Step]:
    assert step.matrix is not None
    order = list(axes(step.matrix))
    out = []
    for combo in combinations(step.matrix):
        tag = label(combo, order)
        out.append(
            msgspec.structs.replace(
                step,
                id=instance_id(step.id, tag),
                name=f"{step.name} [{tag}]" if step.name is not None else None,
                matrix={k: [v] for k, v in combo.items()},
            )
        )
    return out


# --- checks --------------------------------------------------------------------------


def check_matrices(indexed: Sequence[tuple[int, Step]]) -> list[Problem]:
    """Every matrix's problems, located: no axes, an empty axis, a value that is not a
    scalar, a bad ``include``/``exclude``, too many instances, colliding ids."""
    problems: list[Problem] = []
    for i, step in indexed:
        if step.matrix is not None:
            problems += _check_matrix(f"$.steps[{i}].matrix", step)
    return problems


def _check_matrix(base: str, step: Step) -> list[Problem]:
    assert step.matrix is not None
    matrix = step.matrix
    sid = step.id
    ax = axes(matrix)
    problems = [*_check_axes(base, sid, ax)]
    for key in _RESERVED:
        problems += _check_entries(f"{base}.{key}", sid, matrix.get(key, []), ax, key)
    if not ax and not matrix.get("include"):
        problems.append(
            Problem(base, "the matrix has no axes", sid, 'add one: {"python": ["3.11", "3.12"]}')
        )
    if problems:
        return problems
    return _check_instances(base, step)


def _check_axes(base: str, sid: str, ax: Mapping[str, list[Any]]) -> list[Problem]:
    problems = []
    for name, values in ax.items():
        where = f"{base}.{name}"
        if not _NAME.match(name):
            problems.append(
                Problem(
                    where,
                    f"invalid axis name '{name}'",
                    sid,
                    "use letters, digits and '_' (it is used as ${matrix.NAME})",
                )
            )
        if not values:
            problems.append(Problem(where, f"axis '{name}' has no values", sid, "give it one"))
        for j, value in enumerate(values):
            if not _scalar(value):
                problems.append(
                    Problem(
                        f"{where}[{j}]",
                        f"a matrix value must be a string, number or boolean, got {_kind(value)}",
                        sid,
                    )
                )
    return problems


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _check_entries(
    where: str, sid: str, entries: Any, ax: Mapping[str, Any], key: str
) -> list[Problem]:
    """``include``/``exclude``: objects of scalars; an ``exclude`` key is an axis."""
    problems: list[Problem] = []
    for j, entry in enumerate(entries):
        at = f"{where}[{j}]"
        if not isinstance(entry, dict) or not entry:
            problems.append(
                Problem(
                    at,
                    f"each '{key}' entry must be a non-empty object",
                    sid,
                    'e.g. {"python": "3.12"}',
                )
            )
            continue
        for name, value in entry.items():
            if not _NAME.match(str(name)):
                problems.append(Problem(f"{at}.{name}", f"invalid key '{name}'", sid))
            elif key == "exclude" and name not in ax:
                problems.append(
                    Problem(
                        f"{at}.{name}",
                        f"'{name}' is not an axis of the matrix",
                        sid,
                        f"axes: {', '.join(ax) or 'none'}",
                    )
                )
            if not _scalar(value):
                problems.append(
                    Problem(
                        f"{at}.{name}",
                        f"a matrix value must be a string, number or boolean, got {_kind(value)}",
                        sid,
                    )
                )
    return problems


def _check_instances(base: str, step: Step) -> list[Problem]:
    """Too many instances, and labels that collide (values differing only in the
    characters a label does not show)."""
    assert step.matrix is not None
    ax = axes(step.matrix)
    size = 1
    for values in ax.values():
        size *= len(values)
    if size > MAX_INSTANCES * 64:  # never build a huge product just to count it
        return [_too_many(base, step.id, size)]
    combos = combinations(step.matrix)
    if len(combos) > MAX_INSTANCES:
        return [_too_many(base, step.id, len(combos))]
    if not combos:
        return [Problem(base, "the matrix expands to no instance", step.id, "exclude less")]
    seen: set[str] = set()
    for combo in combos:
        tag = label(combo, list(ax))
        if tag in seen:
            return [
                Problem(
                    base,
                    f"two combinations get the same id '{instance_id(step.id, tag)}' (a "
                    "value repeats, or two differ only in characters an id does not show)",
                    step.id,
                    "make the values differ in letters, digits, '.', '_' or '-' "
                    "(or remove the repeated one)",
                )
            ]
        seen.add(tag)
    return []


def _too_many(base: str, sid: str, count: int) -> Problem:
    return Problem(
        base,
        f"the matrix expands to {count:,} instances; the limit is {MAX_INSTANCES}",
        sid,
        "split it, or exclude combinations",
    )
