"""Commands that read runs from the store, from any process: ``watch``, ``list``,
``show``, ``logs`` and ``cancel``.

This is the one place in planrun that polls: another process's run can only be
followed by reading the store (and log files) again. Each poll is one short read;
nothing is held open between polls.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import anyio
import msgspec
import typer
from rich.console import Console

from .. import monitor
from ..cancel import cancel_run  # not ..api: that loads the engine
from ..errors import PlanrunError, UsageError
from ..events import RunFinished
from ..exitcodes import ExitCode
from ..model import RunState
from ..records import RunRecord
from ..triggers import fired_summary
from . import jsonout
from .common import ColorChoice, ColorOpt, StateDirOpt, command_hint, err_console, out_console
from .logs import LogSet
from .show import SHOW_ROWS, show_run, watch_summary
from .tables import Column, layout, utc_stamp
from .view import LiveView, PlainLog, Renderer, format_duration, print_summary

__all__ = ["no_such_run", "register_observe_commands"]

#: Seconds between two reads of the store and the log files while following logs.
POLL_SEC = monitor.FOLLOW_POLL_SEC
#: Exit code of watch/logs when the run's owner died without finishing it.
EXIT_CRASHED = ExitCode.FAILED

RunIdArg = Annotated[
    str,
    typer.Argument(metavar="RUN_ID", help="The run id (see `planrun list`).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _run_sync(func: Callable[..., Awaitable[int]], *args: object, as_json: bool = False) -> int:
    """Run a command's coroutine; PlanrunError becomes a message and its exit code
    (and, under ``--json``, the error object on stdout)."""
    try:
        code: int = anyio.run(func, *args, backend="asyncio")
    except PlanrunError as exc:
        raise jsonout.fail(exc, as_json) from None
    except KeyboardInterrupt:
        code = ExitCode.CANCELLED
    except BrokenPipeError:
        # The reader went away (`planrun watch --json | head`): stop quietly.
        jsonout.quiet_stdout()
        code = ExitCode.OK
    return code


async def _require_run(session: monitor.Session, run_id: str) -> RunRecord:
    run = await session.get_run(run_id)
    if run is None:
        raise await no_such_run(session, run_id)
    return run


async def no_such_run(session: monitor.Session, run_id: str) -> UsageError:
    """The error for an unknown run id, naming the closest one as a hint."""
    recent = [r.run_id for r in await session.list_runs(limit=200)]
    close = difflib.get_close_matches(run_id, recent, n=1)
    listing = command_hint("list", state_dir=session.state_dir)
    hint = f"; did you mean '{close[0]}'?" if close else f"; see `{listing}`"
    return UsageError(f"no run '{run_id}' in {session.state_dir}{hint}")


# --- watch -----------------------------------------------------------------------------


async def _watch(run_id: str, state_dir: Path | None, as_json: bool, renderer: Renderer) -> int:
    async with monitor.open_session(state_dir) as session:
        run = await _require_run(session, run_id)
        if not as_json and run.state is not RunState.RUNNING and run.step_count > SHOW_ROWS:
            return await watch_summary(renderer.console, session, run)
    error: BaseException | None = None
    code: int = EXIT_CRASHED
    async with anyio.create_task_group() as tg:
        tg.start_soon(renderer.run)
        try:
            code = await _follow_events(run_id, state_dir, as_json, renderer)
        except (PlanrunError, BrokenPipeError, SystemExit) as exc:
            # Re-raised below, outside the task group's exception group. SystemExit:
            # rich's answer to a closed stdout (`planrun watch RUN | head`).
            error = exc
        finally:
            renderer.close()
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    if not as_json and renderer.view is not None:
        print_summary(renderer.console, renderer.view, 0.0)
    return code


async def _follow_events(
    run_id: str, state_dir: Path | None, as_json: bool, renderer: Renderer
) -> int:
    """Show the run's events as they come (``monitor.follow``); its exit code."""

    def notice(text: str) -> None:
        err_console().print(f"planrun: {text}")

    last = None
    events = monitor.follow(run_id, state_dir=state_dir, on_notice=notice)
    async with contextlib.aclosing(events):
        async for event in events:
            last = event
            if as_json:
                jsonout.write_event(event)
            else:
                renderer.on_event(event)
    if isinstance(last, RunFinished):
        return last.exit_code
    return EXIT_CRASHED


def watch(
    run_id: RunIdArg,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
    plain: Annotated[bool, typer.Option("--plain", help="One line per state change.")] = False,
    color: ColorOpt = ColorChoice.AUTO,
) -> None:
    """Follow a run from another terminal (or replay a finished one).

    Exits with the run's exit code."""
    console = out_console(color)
    renderer: Renderer = (
        PlainLog(console) if plain or as_json or not console.is_terminal else LiveView(console)
    )
    renderer.state_dir = state_dir
    raise typer.Exit(_run_sync(_watch, run_id, state_dir, as_json, renderer, as_json=as_json))


# --- list ------------------------------------------------------------------------------


async def _list(
    state_dir: Path | None,
    state: str | None,
    plan_id: str | None,
    limit: int,
    as_json: bool,
    trigger: str | None = None,
) -> int:
    runs = await monitor.list_runs(
        state=state, plan_id=plan_id, limit=limit, state_dir=state_dir, trigger=trigger
    )
    if as_json:
        sys.stdout.write(msgspec.json.encode(runs).decode() + "\n")
        return ExitCode.OK
    console = out_console()
    if not runs:
        filtered = state is not None or plan_id is not None or trigger is not None
        console.print("no runs" if filtered else "no runs yet", markup=False)
        return ExitCode.OK
    rows = [
        [
            run.run_id,
            run.plan_id,
            run.state.value,
            utc_stamp(run.started_at, suffix=False, ms=False),
            format_duration(run.duration_sec),
            f"{run.steps_done}/{run.step_count}",
        ]
        for run in runs
    ]
    columns: tuple[Column, ...] = _LIST_COLUMNS
    if any(run.parent_run_id for run in runs):  # child runs (``uses``): say whose
        columns += (Column("parent (run/step)", drop=0),)
        for row, run in zip(rows, runs, strict=True):
            row.append(f"{run.parent_run_id}/{run.parent_step_id}" if run.parent_run_id else "")
    if any(run.trigger for run in runs):  # started by ``planrun serve``: by what
        columns += (Column("trigger", drop=0),)
        for row, run in zip(rows, runs, strict=True):
            row.append(fired_summary(run.trigger))
    _print_lines(console, layout(columns, rows, _width(console)))
    return ExitCode.OK


#: ``list --trigger``'s kinds (``triggers.TriggerKind``, and ``manual``).
_TRIGGER_KINDS = ("schedule", "every", "watch", "git", "manual")

#: ``list``'s columns; on a narrow terminal "took" goes first, the run id never.
_LIST_COLUMNS = (
    Column("run id"),
    Column("plan", drop=4),
    Column("state", drop=5),
    Column("started (UTC)", drop=3),
    Column("took", drop=1),
    Column("steps", drop=2),
)


def _width(console: Console) -> int | None:
    """The width to fit in: the terminal's, or None (no limit) when not a terminal."""
    return console.width if console.is_terminal else None


def _print_lines(console: Console, lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False, emoji=False)


def list_cmd(
    state_dir: StateDirOpt = None,
    state: Annotated[
        str | None,
        typer.Option(
            metavar="STATE",
            help="Only runs in this state: " + ", ".join(s.value for s in RunState) + ".",
        ),
    ] = None,
    plan: Annotated[
        str | None, typer.Option(metavar="PLAN_ID", help="Only runs of this plan id.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="At most N runs.")] = 20,
    as_json: JsonOpt = False,
    trigger: Annotated[
        str | None,
        typer.Option(
            metavar="KIND",
            help="Only runs started by this kind of trigger: "
            + ", ".join(_TRIGGER_KINDS)
            + " (manual: by hand).",
        ),
    ] = None,
) -> None:
    """List runs, newest first.

    One row per run: id, plan, state, start (UTC), time taken, steps done/total. On
    a narrow terminal whole columns are dropped (time taken first), never the run id
    nor part of a value; --json has everything."""
    if state is not None and state not in {s.value for s in RunState}:
        raise jsonout.fail(
            UsageError(
                f"unknown state {state!r}; use one of: " + ", ".join(s.value for s in RunState)
            ),
            as_json,
        )
    if trigger is not None and trigger not in _TRIGGER_KINDS:
        raise jsonout.fail(
            UsageError(
                f"unknown trigger kind {trigger!r}; use one of: " + ", ".join(_TRIGGER_KINDS)
            ),
            as_json,
        )
    raise typer.Exit(
        _run_sync(_list, state_dir, state, plan, limit, as_json, trigger, as_json=as_json)
    )


# --- show ------------------------------------------------------------------------------


async def _show(run_id: str, state_dir: Path | None, as_json: bool, every: bool) -> int:
    async with monitor.open_session(state_dir) as session:
        # Crash marking first, outside show's snapshot: a snapshot begun before the
        # mark was written would still show the run (and its steps) running.
        run = await _require_run(session, run_id)
        return await show_run(session, run, as_json, every)


def show(
    run_id: RunIdArg,
    state_dir: StateDirOpt = None,
    as_json: JsonOpt = False,
    every: Annotated[
        bool, typer.Option("--all", help=f"Every step, also in a run of over {SHOW_ROWS}.")
    ] = False,
) -> None:
    """Show a run: its state, times, steps and attempts.

    Times are UTC; log paths are relative to the state dir (printed first). A run of
    over 200 steps is summed up: steps by state, the steps that did not succeed and
    the first 200 (--all: every step; --json: every step as JSON)."""
    raise typer.Exit(_run_sync(_show, run_id, state_dir, as_json, every, as_json=as_json))


# --- logs ------------------------------------------------------------------------------


async def _logs(
    run_id: str,
    state_dir: Path | None,
    step_id: str | None,
    attempt: int | None,
    follow: bool,
    tail: int | None = None,
) -> int:
    async with monitor.open_session(state_dir) as session:
        run = await _require_run(session, run_id)
        steps = await session.get_steps(run_id)
        if step_id is not None and step_id not in {s.step_id for s in steps}:
            close = difflib.get_close_matches(step_id, [s.step_id for s in steps], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise UsageError(f"run {run_id} has no step '{step_id}'{hint}")
        logs = LogSet(step_id, attempt, follow, tail)
        while True:
            run = await session.get_run(run_id, check_owner=False) or run
            active = logs.pump(await session.get_steps(run_id))
            done = not follow or (run.state is not RunState.RUNNING and not active)
            if done or (not active and step_id is not None):
                return logs.finish()
            if run.state is RunState.RUNNING and await session.mark_if_crashed(run):
                err_console().print(
                    f"planrun: the process running {run_id} is gone: the run is marked crashed"
                )
                return EXIT_CRASHED
            await anyio.sleep(POLL_SEC)


def logs(
    run_id: RunIdArg,
    step: Annotated[
        str | None,
        typer.Argument(metavar="[STEP]", help="Only this step's output.", show_default=False),
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Attempt N of the step (default: the last)."),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    tail: Annotated[
        int | None,
        typer.Option(
            "--tail", "-n", min=0, metavar="N", help="Start at the last N lines (of each step)."
        ),
    ] = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Print a step's output, or every step's.

    The last attempt by default; with no STEP, every step's output, each line prefixed
    [step-id]. --follow streams until the attempt (or run) ends; --tail N starts at the
    last N lines. Exit 1 if a log file is missing."""
    raise typer.Exit(_run_sync(_logs, run_id, state_dir, step, attempt, follow, tail))


# --- cancel ----------------------------------------------------------------------------


async def _cancel(run_id: str, state_dir: Path | None, wait_sec: float, as_json: bool) -> int:
    """Cancel the run; its result on stdout (errors on stderr, and as the error
    object under ``--json``: ``_run_sync``)."""
    try:
        record = await cancel_run(run_id, state_dir=state_dir, wait_sec=wait_sec)
    except UsageError as exc:
        if exc.field != "run_id":
            raise
        async with monitor.open_session(state_dir) as session:
            raise await no_such_run(session, run_id) from None
    if as_json:
        jsonout.write_doc(jsonout.cancel_doc(record))
    else:
        out_console().print(f"run {run_id} cancelled", markup=False)
    return ExitCode.OK


def cancel(
    run_id: RunIdArg,
    state_dir: StateDirOpt = None,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="How long to wait for the run to stop.")
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a running run, from any terminal.

    The run's process stops every step (TERM, grace, KILL) and records the run
    cancelled. Exit 0 when cancelled, 1 when it was not running."""
    raise typer.Exit(_run_sync(_cancel, run_id, state_dir, timeout, as_json, as_json=as_json))


def register_observe_commands(app: typer.Typer) -> None:
    """Add watch, list, show, logs and cancel to the ``planrun`` app."""
    app.command()(watch)
    app.command(name="list")(list_cmd)
    app.command()(show)
    app.command()(logs)
    app.command()(cancel)
