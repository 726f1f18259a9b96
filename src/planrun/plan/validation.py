"""The entry points: validate a plan (a file, parsed data or a :class:`Plan`) in one
pass, and load one that must be valid."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..errors import PlanError, Problem
from ..model import Plan
from .decode import decode_plan
from .read import read_document

__all__ = ["Validation", "load_plan", "validate"]

_STEP_PATH = re.compile(r"\$\.steps\[(\d+)\]")


@dataclass(frozen=True)
class Validation:
    """The outcome of validating a plan: the plan (None if unusable) and every problem."""

    plan: Plan | None
    problems: tuple[Problem, ...]
    source: str | None = None
    base_dir: Path | None = None

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


def validate(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> Validation:
    """Validate a plan (a :class:`Plan`, parsed data, or a file path) in one pass.

    ``secrets`` names secrets given besides the plan's own ``secrets`` list (the CLI's
    ``--secret``); their values are not needed here.

    Syntax errors and an unreadable file raise :class:`PlanError` (nothing else can be
    checked then); every other problem is collected into the returned
    :class:`Validation`.
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
    decoded, problems = decode_plan(doc, given, secrets)
    return Validation(decoded, tuple(sorted(problems, key=_step_order)), source, base_dir)


def _step_order(problem: Problem) -> int:
    """Sort key: top-level problems first, then by step position (stable otherwise)."""
    found = _STEP_PATH.match(problem.path)
    return int(found[1]) if found else -1


def load_plan(
    plan: Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
) -> Plan:
    """Read and validate a plan; raise :class:`PlanError` listing every problem."""
    return validate(plan, variables).raise_for_errors()
