"""``planrun --version`` / ``-V`` and ``planrun version [--json]``: what to paste into
a bug report."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from ..exitcodes import ExitCode

__all__ = ["VersionOpt", "register_version_command"]


def _print_version(value: bool) -> None:
    """Eager ``--version``: print ``planrun X.Y.Z`` and exit 0 before any command runs."""
    if value:
        sys.stdout.write(f"planrun {__version__}\n")  # the distribution's: a test checks
        raise typer.Exit(ExitCode.OK)


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version",
        "-V",
        callback=_print_version,
        is_eager=True,
        help="Print planrun's version and exit.",
    ),
]


def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print versions of planrun, Python, SQLite and libraries.

    For bug reports: paste the output (or --json) into the issue.
    """
    from ..about import versions  # reads every distribution's metadata, and SQLite's

    found = versions()
    if as_json:
        import json  # only here: --version and validate load no json

        sys.stdout.write(json.dumps(found) + "\n")
        return
    width = max(map(len, found))
    sys.stdout.write("".join(f"{name:<{width}}  {value}\n" for name, value in found.items()))


def register_version_command(app: typer.Typer) -> None:
    """Add ``version`` to the ``planrun`` app."""
    app.command()(version)
