"""``planrun completion SHELL``: print the shell completion script for SHELL.

typer's ``--show-completion`` guesses the shell from the parent processes and fails
("Shell  not supported") when none is found (under CI, from a Makefile, a script run
by another program); naming the shell always works:
``planrun completion bash > ~/.local/share/bash-completion/completions/planrun``.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_shared import get_completion_script  # typer is pinned: see pyproject

__all__ = ["register_completion_command"]


class Shell(StrEnum):
    """The shells typer writes completion scripts for."""

    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"
    POWERSHELL = "powershell"


def completion(
    shell: Annotated[
        Shell,
        typer.Argument(help="bash, zsh, fish or powershell.", metavar="SHELL", show_default=False),
    ],
) -> None:
    """Print the completion script for SHELL.

    Source it, or save it where SHELL loads completions from
    (bash: ~/.local/share/bash-completion/completions/planrun).
    """
    script = get_completion_script(
        prog_name="planrun", complete_var="_PLANRUN_COMPLETE", shell=shell.value
    )
    sys.stdout.write(script.rstrip("\n") + "\n")


def register_completion_command(app: typer.Typer) -> None:
    """Add ``completion`` to the ``planrun`` app."""
    app.command()(completion)
