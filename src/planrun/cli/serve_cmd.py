"""``planrun serve`` and ``planrun triggers`` (see :mod:`planrun.serve` and the
README's "Triggers"). What they act with is imported only when they run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import PlanrunError
from .common import StateDirOpt, fail

__all__ = ["register_serve_commands"]


def serve(
    targets: Annotated[
        list[Path],
        typer.Argument(
            metavar="PLAN_OR_DIR...",
            help="Plan files, or directories: every plan in them that has triggers.",
        ),
    ],
    state_dir: StateDirOpt = None,
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Evaluate every trigger once, wait for the runs started, exit."
        ),
    ] = False,
) -> None:
    """Run plans on their triggers (schedule, every_sec, watch, git).

    Logs one timestamped line per thing it does. SIGTERM or Ctrl-C stops firing,
    cancels the running runs and exits 0; SIGHUP or a changed plan file reloads.
    A second serve on the same state dir exits 3. --once exits 1 if a run failed."""
    import anyio

    from ..serve import serve as run_serve
    from ..serve.log import Log

    try:
        code = anyio.run(
            lambda: run_serve(targets, state_dir, once=once, log=Log()), backend="asyncio"
        )
    except PlanrunError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


def triggers(
    plan: Annotated[Path, typer.Argument(metavar="PLAN", help="The plan file.")],
    count: Annotated[
        int, typer.Option("-n", "--count", min=1, max=1000, metavar="N", help="Fire times each.")
    ] = 5,
) -> None:
    """Print each trigger of a plan and its next N fire times.

    Times are shown in the trigger's time zone and in UTC; a watch or git trigger
    says what it watches."""
    from ..plan import load_plan
    from ..serve.describe import trigger_lines

    try:
        loaded = load_plan(plan)
    except PlanrunError as exc:
        raise fail(exc) from None
    for line in trigger_lines(loaded, plan.resolve().parent, count):
        typer.echo(line)


def register_serve_commands(app: typer.Typer) -> None:
    """Add ``serve`` and ``triggers`` to the ``planrun`` app."""
    app.command()(serve)
    app.command()(triggers)
