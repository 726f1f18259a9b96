"""The entry points: validate a plan (a file, parsed data or a :class:`Plan`) in one
pass, and load one that must be valid."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import msgspec

from ..errors import PlanError, Problem
from ..gcpause import paused_gc
from ..model import Plan
from .decode import decode_plan
from .read import read_document
from .resolve import resolve_variables
from .uses import check_children
from .variables import GivenRules

__all__ = ["Validation", "load_plan", "validate"]

_STEP_PATH = re.compile(r"\$\.steps\[(\d+)\]")


class Validation(msgspec.Struct, frozen=True):
    """The outcome of validating a plan: the plan (None if unusable) and every problem."""

    plan: Plan | None
    problems: tuple[Problem, ...]
    source: str | None = None
    base_dir: Path | None = None
    #: Required variables (``null`` default) that were given no value: errors, unless
    #: validated with ``require_values=False`` (then a run must give them).
    unset: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.warning)

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.errors

    def raise_for_errors(self) -> Plan:
        """The plan, or :class:`PlanError` listing every problem (warnings included)."""
        if self.plan is None or self.errors:
            raise PlanError(self.problems, self.source)
        return self.plan


@paused_gc()  # a large plan is millions of objects, none of them garbage
def validate(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
    *,
    require_values: bool = True,
    allow_undeclared: bool = False,
    known: Collection[str] = (),
    uses_chain: tuple[Path, ...] = (),
) -> Validation:
    """Validate a plan (a :class:`Plan`, parsed data, or a file path) in one pass.

    ``secrets`` names secrets given besides the plan's own ``secrets`` list (the CLI's
    ``--secret``); their values are not needed here. A given variable the plan neither
    declares nor uses is an error (a typo, most likely) unless ``allow_undeclared`` or
    it is in ``known``. With ``require_values=False`` a required variable without a
    value is not an error but listed in :attr:`Validation.unset` (checking a plan's
    structure before its values are known); given values are checked either way.

    Syntax errors and an unreadable file raise :class:`PlanError` (nothing else can be
    checked then); every other problem is collected into the returned
    :class:`Validation`.

    The plans of ``uses`` steps are read and validated too (see :mod:`.uses`);
    ``uses_chain`` is the files that led to this one (for a child: set by its parent).
    """
    given = dict(variables or {})
    source: str | None = None
    base_dir: Path | None = None
    if isinstance(plan, Plan):
        doc: Any = msgspec.to_builtins(plan)
    elif isinstance(plan, (str, os.PathLike)):
        doc = read_document(plan)  # first: it reports a path that cannot be resolved
        source = str(plan)
        base_dir = Path(plan).resolve().parent
    else:
        doc = plan
    rules = GivenRules(require_values, allow_undeclared, frozenset(known))
    decoded, problems = decode_plan(doc, given, secrets, rules)
    if decoded is not None and any(s.uses is not None for s in decoded.steps):
        problems += _children(decoded, given, base_dir, source, uses_chain)
    unset = tuple(
        name
        for name, default in (decoded.variables.items() if decoded is not None else ())
        if default is None and name not in given
    )
    ordered = tuple(sorted(problems, key=_step_order))
    return Validation(decoded, ordered, source, base_dir, unset)


def _children(
    plan: Plan,
    given: Mapping[str, str],
    base_dir: Path | None,
    source: str | None,
    chain: tuple[Path, ...],
) -> list[Problem]:
    """The problems of the plans the ``uses`` steps run."""
    values = resolve_variables(plan, given, base_dir)
    here = (Path(source).resolve(),) if source is not None and not chain else ()

    def child(
        path: Path, with_: dict[str, str], secrets: list[str], sub: tuple[Path, ...]
    ) -> Validation:
        return validate(path, with_, secrets, uses_chain=sub)

    indexed = list(enumerate(plan.steps))
    return check_children(plan, indexed, values, base_dir, (*chain, *here), child)


def _step_order(problem: Problem) -> int:
    """Sort key: top-level problems first, then by step position (stable otherwise)."""
    found = _STEP_PATH.match(problem.path)
    if problem.path.startswith("$.handlers"):
        return 1 << 30  # after every step's
    return int(found[1]) if found else -1


def load_plan(
    plan: Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    *,
    allow_undeclared: bool = False,
) -> Plan:
    """Read and validate a plan; raise :class:`PlanError` listing every problem."""
    return validate(plan, variables, allow_undeclared=allow_undeclared).raise_for_errors()
