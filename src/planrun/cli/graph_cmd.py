"""``planrun graph``: print a plan's DAG as Mermaid, Graphviz DOT or SVG (no run).

The plan is checked as ``validate`` checks it (required variables may stay unset);
an invalid plan is exit 2 with every located problem, and nothing is written.
"""

from __future__ import annotations

import os
import secrets
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import PlanError, PlanrunError, UsageError
from ..plan.read import STDIN_SOURCE
from ..prepare import check_plan
from .common import err_console, fail, print_problems, var_values
from .plan_input import plan_source

__all__ = ["OutFileOpt", "check_output_dir", "register_graph_command", "write_output"]


class GraphFormat(StrEnum):
    """What ``--format`` accepts (``planrun.ui.graph_text.FORMATS``)."""

    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"


OutFileOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write to FILE instead of stdout.",
        show_default=False,
    ),
]


def check_output_dir(path: Path) -> None:
    """A ``UsageError`` unless ``path``'s directory exists (checked before any work)."""
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"-o {path}: directory {parent} does not exist; create it first")
    if path.is_dir():
        raise UsageError(f"-o {path}: is a directory; name a file")


def write_output(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, renamed over
    it): a reader never sees half a file, a failed write leaves nothing behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"-o {path}: cannot write: {exc.strerror or exc}") from None


def graph(
    plan: Annotated[
        Path,
        typer.Argument(
            metavar="PLAN",
            help="Plan file (.json, .yaml/.yml or .toml), or - to read it from stdin.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        GraphFormat, typer.Option("--format", help="Output format.", case_sensitive=False)
    ] = GraphFormat.MERMAID,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            metavar="NAME=VALUE",
            help="Set the plan variable NAME (repeatable).",
            show_default=False,
        ),
    ] = None,
    output: OutFileOpt = None,
) -> None:
    """Print a plan's graph as Mermaid, Graphviz DOT or SVG.

    Steps are nodes, depends_on the edges; when rules and non-critical steps are
    marked. Nothing runs; an invalid plan exits 2 with every problem."""
    try:
        if output is not None:
            check_output_dir(output)
        source = plan_source(plan)
        result = check_plan(source, var_values(var))
    except PlanrunError as exc:
        raise fail(exc) from None
    shown = result.source or (STDIN_SOURCE if source is not plan else str(plan))
    if not result.ok or result.plan is None:
        raise fail(PlanError(result.problems, shown))
    print_problems(err_console(), result.warnings, shown)
    from ..ui.graph_text import render_plan  # planrun.ui loads only when used

    text = render_plan(result.plan, fmt.value)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_output(output, text)
    except PlanrunError as exc:
        raise fail(exc) from None


def register_graph_command(app: typer.Typer) -> None:
    """Add ``graph`` to the ``planrun`` app."""
    app.command()(graph)
