"""Helpers shared by the CLI commands: consoles, error reporting, common options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import NoRunStore, PlanError, PlanrunError, Problem, ResumeConflict, RunExists

__all__ = ["StateDirOpt", "err_console", "fail", "out_console", "print_problems"]

StateDirOpt = Annotated[
    Path | None,
    typer.Option(envvar="PLANRUN_STATE_DIR", help="Where runs are stored [default: .planrun]"),
]


def out_console() -> Console:
    """stdout for tables and text; wide when not a terminal so nothing is cut off."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=400)
    return console


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_problems(console: Console, problems: tuple[Problem, ...], source: str | None) -> None:
    for problem in problems:
        style = "yellow" if problem.warning else "red"
        console.print(f"[{style}]{escape(problem.render(source))}[/]", soft_wrap=True)


#: What to do about a library error, in the CLI's own terms (its flags and commands):
#: the library says what is wrong, the CLI adds the hint.
_HINTS: tuple[tuple[type[PlanrunError], str], ...] = (
    (RunExists, "choose another --run-id"),
    (NoRunStore, "pass --state-dir (or set PLANRUN_STATE_DIR) to where the run was started"),
    (ResumeConflict, "look at `planrun show` and resume again if needed"),
)


def _worded(exc: PlanrunError) -> str:
    hint = next((hint for kind, hint in _HINTS if isinstance(exc, kind)), None)
    return f"{exc}; {hint}" if hint else str(exc)


def fail(exc: PlanrunError) -> typer.Exit:
    """Print ``exc`` for a person and return the ``typer.Exit`` with its exit code."""
    console = err_console()
    if isinstance(exc, PlanError):
        errors = sum(not p.warning for p in exc.problems)
        plural = "s" if errors != 1 else ""
        console.print(
            f"[red]{escape(exc.source or 'plan')}: invalid plan ({errors} problem{plural})[/]"
        )
        print_problems(console, exc.problems, exc.source)
    else:
        console.print(f"[red]planrun: {escape(_worded(exc))}[/]", soft_wrap=True)
    return typer.Exit(exc.exit_code)
