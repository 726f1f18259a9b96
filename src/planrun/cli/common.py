"""Helpers shared by the CLI commands: consoles, error reporting, common options."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import (
    NoRunStore,
    PlanError,
    PlanrunError,
    Problem,
    ResumeConflict,
    RunExists,
    UsageError,
)
from ..paths import STATE_DIR_ENV, state_dir_to_name

__all__ = [
    "StateDirOpt",
    "cli_hint",
    "cli_words",
    "command_hint",
    "err_console",
    "fail",
    "out_console",
    "print_problems",
]

StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        envvar=STATE_DIR_ENV,
        metavar="DIR",
        show_default=False,
        help="Where runs are stored [default: the nearest .planrun here or above, else ./.planrun]",
    ),
]


def command_hint(*words: str, state_dir: str | os.PathLike[str] | None) -> str:
    """``planrun WORDS...`` as a command to copy and paste where it is printed: with
    ``--state-dir DIR`` when the state dir discovery finds from the working directory
    is not ``state_dir`` (None: the default one)."""
    named = state_dir_to_name(state_dir)
    extra = ("--state-dir", str(named)) if named is not None else ()
    return shlex.join(("planrun", *words, *extra))


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


def cli_hint(exc: PlanrunError) -> str | None:
    """What to do about ``exc`` in the CLI's terms, for the store's typed errors."""
    return next((hint for kind, hint in _HINTS if isinstance(exc, kind)), None)


def _worded(exc: PlanrunError) -> str:
    """``exc`` as the CLI says it: flags for parameters (:func:`cli_words`), then the
    hint on what to do for the store's typed errors."""
    message = cli_words(exc)
    hint = cli_hint(exc)
    return f"{message}; {hint}" if hint and hint not in message else message


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


#: Library words for a parameter, and the CLI's words for it (its flag).
_FLAG_WORDS = {
    "max_concurrency": ("max_concurrency", "--max-concurrency"),
    "allow_changed": ("allow_changed=True", "--allow-changed"),
    "from_step": ("from_step and only", "--from and --only"),
    "plan": ("(plan=...)", "with --plan FILE (or --plan - to read it from stdin)"),
}


def cli_words(exc: PlanrunError) -> str:
    """``exc``'s message, with the library's parameter names turned into the flags
    that set them and the CLI's hint on what to do added (the library says what is
    wrong in its own terms: see ``UsageError.field``)."""
    message = str(exc)
    field = exc.field if isinstance(exc, UsageError) else None
    if field in _FLAG_WORDS:
        library, flag = _FLAG_WORDS[field]
        return message.replace(library, flag, 1)
    if field == "run_id" and message.startswith("no run "):
        return f"{message}; see `planrun list`"
    return message
