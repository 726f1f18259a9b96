"""``planrun ui``: serve the web dashboard (see :mod:`planrun.ui`).

The dashboard's libraries (Starlette, uvicorn) are imported only when the command
runs, so the other commands do not pay for them at start-up.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import PlanrunError
from ..paths import state_dir_or_default
from ..ui import TOKEN_ENV
from .common import StateDirOpt, fail

__all__ = ["register_ui_command"]


def ui(
    state_dir: StateDirOpt = None,
    host: Annotated[
        str,
        typer.Option(metavar="HOST", help="Address to listen on (not loopback: needs --token)."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(metavar="PORT", help="Port to listen on (0: any free port).")
    ] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the dashboard in a web browser.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            metavar="TOKEN",
            help="Require this token on every request (at least 16 characters).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a live web dashboard of the runs.

    The runs of the state dir, followed live; Ctrl-C stops it."""
    from ..ui.server import serve  # Starlette and uvicorn load only here

    try:
        serve(state_dir_or_default(state_dir).absolute(), host, port, token, open_browser)
    except PlanrunError as exc:
        raise fail(exc) from None


def register_ui_command(app: typer.Typer) -> None:
    """Add ``ui`` to the ``planrun`` app."""
    app.command()(ui)
