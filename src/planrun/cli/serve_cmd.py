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
    ui: Annotated[
        bool, typer.Option("--ui", help="Also serve the dashboard (as planrun ui does).")
    ] = False,
    host: Annotated[
        str, typer.Option(metavar="HOST", help="--ui: address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="--ui: port (0: any free one).")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PLANRUN_UI_TOKEN",
            metavar="TOKEN",
            help="--ui: require this token on every request.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run plans on their triggers (schedule, every_sec, watch, git).

    Logs one timestamped line per thing it does. SIGTERM or Ctrl-C stops firing,
    cancels the running runs and exits 0; SIGHUP or a changed plan file reloads.
    A second serve on the same state dir exits 3. --once exits 1 if a run failed."""
    import anyio

    dashboard = (host, port, token) if ui else None
    try:
        code = anyio.run(_main, targets, state_dir, once, dashboard, backend="asyncio")
    except PlanrunError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)


async def _main(
    targets: list[Path],
    state_dir: Path | None,
    once: bool,
    dashboard: tuple[str, int, str | None] | None,
) -> int:
    """The service; with ``dashboard`` (host, port, token), the dashboard beside it,
    stopped when the service ends."""
    import anyio

    from ..paths import state_dir_or_default
    from ..serve import serve as run_serve
    from ..serve.board import Board
    from ..serve.log import Log

    board = Board()  # what the dashboard shows of the served plans
    service = run_serve(targets, state_dir, once=once, log=Log(), board=board)
    if dashboard is None:
        return await service
    from ..ui.server import serve_until

    root = state_dir_or_default(state_dir).absolute()
    stop = anyio.Event()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_until, root, *dashboard, stop, board.snapshot)
            try:
                return await service
            finally:
                stop.set()
    except BaseExceptionGroup as group:
        raise _first_planrun_error(group) from None
    raise AssertionError("unreachable: the task group returns or raises")


def _first_planrun_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first ``PlanrunError`` in ``group`` (else the group itself)."""
    matched, _ = group.split(PlanrunError)
    first: BaseException = matched if matched is not None else group
    while isinstance(first, BaseExceptionGroup) and matched is not None:
        first = first.exceptions[0]
    return first


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
