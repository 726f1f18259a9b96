"""The click command behind ``planrun``: built from the typer app with the help
settings every command shares, and the one repair typer 0.24 needs on click 8.5.

Help is rendered by click's plain formatter (``rich_markup_mode=None`` on the app):
help strings are shown literally — ``[step-id]``, ``${NAME}`` and ``[default: ...]``
survive — without colour codes, at most 80 columns wide, and the same on every typer
release we support (typer's rich help panels are what its 0.21+ releases changed).
``tests/acceptance/test_cli_help.py`` snapshot-tests the result.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.main import get_command, get_command_name
from typer.models import ArgumentInfo, CommandInfo
from typer.utils import get_params_from_function

__all__ = ["CONTEXT_SETTINGS", "build_command"]

#: Settings of every command's context (subcommands inherit them): ``-h`` is ``--help``.
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def build_command(app: typer.Typer, only: str | None = None) -> click.Command:
    """``app`` as the click command to call (what ``app()`` would build), with every
    positional argument's help text in place; with ``only``, the group holds just
    that command (building each command costs start-up time: ``planrun run`` needs
    one; its help and errors are the same in either group)."""
    registered = app.registered_commands
    if only is not None:
        app.registered_commands = [i for i in registered if _name(i) == only]
    try:
        command = get_command(app)
    finally:
        app.registered_commands = registered
    if isinstance(command, click.Group):
        for info in app.registered_commands:
            if info.callback is None:
                continue
            sub = command.commands.get(_name(info))
            if sub is not None:
                _restore_argument_help(sub, info.callback)
                # click 8.5 writes a "Positional arguments" section of its own; typer
                # writes "Arguments" (on every click): keep one, the same everywhere.
                sub.format_arguments = _no_section  # type: ignore[method-assign]
    return command


def _name(info: CommandInfo) -> str:
    """The name a registered command is invoked by."""
    if info.name or info.callback is None:
        return info.name or ""
    return get_command_name(info.callback.__name__)


def _no_section(ctx: click.Context, formatter: click.HelpFormatter) -> None:
    """Writes nothing (see :func:`build_command`)."""


def _restore_argument_help(command: click.Command, callback: Any) -> None:
    """typer 0.24 sets an argument's ``help`` before calling click's
    ``Parameter.__init__``, which since click 8.5 sets it again (to None, as typer does
    not pass it on): ``PLAN``, ``RUN_ID`` and ``STEP`` lost their explanation. Put the
    help declared with ``typer.Argument(help=...)`` back where click left none."""
    declared = get_params_from_function(callback)
    for param in command.params:
        meta = declared.get(param.name or "")
        if (
            isinstance(param, click.Argument)
            and meta is not None
            and isinstance(meta.default, ArgumentInfo)
            and not getattr(param, "help", None)
        ):
            param.help = meta.default.help
