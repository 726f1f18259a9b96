"""The plan argument of ``run`` and ``resume --plan``: a file, or ``-`` for standard input.

A plan read from standard input is parsed here (``plan/read.py``'s limits, the format
sniffed: JSON, YAML or TOML) and handed on as data, so ``PLAN_DIR`` is the working
directory and the run records no plan file: its resume needs ``--plan`` again.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import PlanError
from ..plan.read import STDIN_SOURCE, read_stream
from ..prepare import PreparedRun, prepare
from .params import ResumePlanOpt

__all__ = ["STDIN", "ResumePlanOpt", "plan_source", "prepare_plan"]

#: The plan argument that means "read the plan from standard input".
STDIN = "-"


def plan_source(plan: Path) -> Path | Any:
    """``plan`` itself, or the data read from standard input when it is ``-``
    (``PlanError`` for unreadable or invalid input, named ``<stdin>``)."""
    if str(plan) != STDIN:
        return plan
    return read_stream(sys.stdin.buffer, STDIN_SOURCE)


def prepare_plan(
    plan: Path,
    variables: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    allow_undeclared: bool = False,
    check_host: bool = False,
) -> PreparedRun:
    """:func:`planrun.prepare.prepare` of the plan argument (``-``: standard input);
    problems of a plan from standard input are reported as ``<stdin>``'s."""
    source = plan_source(plan)
    try:
        return prepare(
            source,
            variables,
            secrets,
            allow_undeclared=allow_undeclared,
            check_host=check_host,
        )
    except PlanError as exc:
        if source is plan or exc.source is not None:
            raise
        raise PlanError(exc.problems, STDIN_SOURCE) from None
