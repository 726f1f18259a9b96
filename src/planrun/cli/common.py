"""Helpers shared by the CLI commands: consoles, error reporting, common options.

Every console is made here (:func:`make_console`). Whether a stream is a terminal is
decided by the stream itself (``isatty``), never by ``FORCE_COLOR``: a live view is
drawn only on a real terminal. Colour is decided apart from that: ``--color
always|never`` wins, then ``NO_COLOR``, then ``FORCE_COLOR`` (both non-empty), then
whether the stream is a terminal (and not ``TERM=dumb``).
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

import typer

from ..errors import (
    NoRunStore,
    PlanError,
    PlanrunError,
    Problem,
    ResumeConflict,
    RunExists,
    UsageError,
)
from ..paths import state_dir_to_name
from .params import ColorChoice, ColorOpt, StateDirOpt
from .plain_console import PlainConsole, escape, quiet_stream

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ColorChoice",
    "ColorOpt",
    "StateDirOpt",
    "cli_hint",
    "cli_words",
    "command_hint",
    "err_console",
    "fail",
    "is_tty",
    "make_console",
    "out_console",
    "print_problems",
    "quiet_stream",
    "var_values",
    "wants_color",
]


def is_tty(stream: TextIO) -> bool:
    """Whether ``stream`` is a real terminal (what the live view needs)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed, or not a real file
        return False


def wants_color(choice: ColorChoice, tty: bool, env: Mapping[str, str]) -> bool:
    """Whether to colour a stream (a terminal if ``tty``) under ``env``: see the
    module docstring for the order."""
    if choice is not ColorChoice.AUTO:
        return choice is ColorChoice.ALWAYS
    if env.get("NO_COLOR", ""):
        return False
    if env.get("FORCE_COLOR", ""):
        return True
    return tty and env.get("TERM", "").lower() != "dumb"


ColorSystem = Literal["standard", "256", "truecolor"]


def _color_system(env: Mapping[str, str]) -> ColorSystem:
    """How many colours the reader likely has (rich's guess needs a terminal)."""
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return "truecolor"
    return "256" if env.get("TERM", "").endswith("256color") else "standard"


@functools.cache
def _console_class() -> type[Console]:
    """rich's console, made to outlive its reader: when stdout's reader goes away
    (``planrun run | head``), the rest of the output goes to /dev/null and the run
    goes on to its end (rich's default raises ``SystemExit(1)`` from inside whatever
    was printing, mid-run). Built on first use: rich loads only when drawn with."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            quiet_stream(self.file)

    return _Console


def make_console(
    *, stderr: bool = False, color: ColorChoice = ColorChoice.AUTO, width: int | None = None
) -> Console:
    """A console on stdout (or stderr) that is a terminal only if the stream is one,
    coloured as :func:`wants_color` says. Not a terminal: never cursor movement."""
    stream = sys.stderr if stderr else sys.stdout
    tty = is_tty(stream)
    colored = wants_color(color, tty, os.environ)
    settings: dict[str, Any] = {
        "stderr": stderr,
        "force_terminal": tty,
        "color_system": _color_system(os.environ) if colored else None,
        "no_color": not colored,
        "highlight": False,
        "soft_wrap": True,
        "width": width,
    }
    if tty or colored or width is not None:
        return _console_class()(**settings)
    # Plain lines to a pipe or file: written without rich (see cli/plain_console.py).
    plain = PlainConsole(stderr=stderr, make=lambda: _console_class()(**settings))
    return cast("Console", plain)


def command_hint(*words: str, state_dir: str | os.PathLike[str] | None) -> str:
    """``planrun WORDS...`` as a command to copy and paste where it is printed: with
    ``--state-dir DIR`` when the state dir discovery finds from the working directory
    is not ``state_dir`` (None: the default one)."""
    named = state_dir_to_name(state_dir)
    extra = ("--state-dir", str(named)) if named is not None else ()
    return shlex.join(("planrun", *words, *extra))


def out_console(color: ColorChoice = ColorChoice.AUTO) -> Console:
    """stdout for tables and text; wide when not a terminal so nothing is cut off."""
    console = make_console(color=color)
    if not console.is_terminal:
        console = make_console(color=color, width=400)
    return console


def err_console(color: ColorChoice = ColorChoice.AUTO) -> Console:
    return make_console(stderr=True, color=color)


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


def var_values(pairs: list[str] | None) -> dict[str, str]:
    """``--var NAME=VALUE`` pairs; every malformed one is named in one ``UsageError``."""
    from ..plan import parse_var  # the plan package loads only when a --var is given

    out: dict[str, str] = {}
    bad: list[str] = []
    for pair in pairs or []:
        try:
            name, value = parse_var(pair)
        except ValueError as exc:
            bad.append(str(exc))
            continue
        out[name] = value
    if bad:
        raise UsageError("\n".join(bad))
    return out
