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
from rich.table import Table
from rich.text import Text

from .. import monitor
from ..api import cancel_run
from ..errors import PlanrunError, UsageError
from ..events import RunFinished
from ..exitcodes import ExitCode
from ..model import RunState
from ..records import RunRecord, StepRecord
from . import jsonout
from .common import ColorChoice, ColorOpt, StateDirOpt, command_hint, err_console, out_console
from .logs import LogSet
from .view import LiveView, PlainLog, Renderer, format_duration, print_summary

__all__ = ["register_observe_commands"]

#: Seconds between two reads of the store and the log files while following logs.
POLL_SEC = monitor.FOLLOW_POLL_SEC
#: Exit code of watch/logs when the run's owner died without finishing it.
EXIT_CRASHED = ExitCode.FAILED

RunIdArg = Annotated[
    str, typer.Argument(help="The run id (see `planrun list`).", show_default=False)
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
        raise await _no_such_run(session, run_id)
    return run


async def _no_such_run(session: monitor.Session, run_id: str) -> UsageError:
    """The error for an unknown run id, naming the closest one as a hint."""
    recent = [r.run_id for r in await session.list_runs(limit=200)]
    close = difflib.get_close_matches(run_id, recent, n=1)
    listing = command_hint("list", state_dir=session.state_dir)
    hint = f"; did you mean '{close[0]}'?" if close else f"; see `{listing}`"
    return UsageError(f"no run '{run_id}' in {session.state_dir}{hint}")


# --- watch -----------------------------------------------------------------------------


async def _watch(run_id: str, state_dir: Path | None, as_json: bool, renderer: Renderer) -> int:
    async with monitor.open_session(state_dir) as session:
        await _require_run(session, run_id)
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
    """Follow a run from another terminal (or replay a finished one); exit with its code."""
    console = out_console(color)
    renderer: Renderer = (
        PlainLog(console) if plain or as_json or not console.is_terminal else LiveView(console)
    )
    renderer.state_dir = state_dir
    raise typer.Exit(_run_sync(_watch, run_id, state_dir, as_json, renderer, as_json=as_json))


# --- list ------------------------------------------------------------------------------


async def _list(
    state_dir: Path | None, state: str | None, plan_id: str | None, limit: int, as_json: bool
) -> int:
    runs = await monitor.list_runs(state=state, plan_id=plan_id, limit=limit, state_dir=state_dir)
    if as_json:
        sys.stdout.write(msgspec.json.encode(runs).decode() + "\n")
        return ExitCode.OK
    console = out_console()
    if not runs:
        filtered = state is not None or plan_id is not None
        console.print("no runs" if filtered else "no runs yet", markup=False)
        return ExitCode.OK
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("run id", "plan", "state", "started", "duration", "steps"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(
            *_cells(
                run.run_id,
                run.plan_id,
                run.state.value,
                run.started_at[:19] + "Z",
                format_duration(run.duration_sec),
                f"{run.steps_done}/{run.step_count}",
            )
        )
    console.print(table)
    return ExitCode.OK


def list_cmd(
    state_dir: StateDirOpt = None,
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    plan: Annotated[str | None, typer.Option(help="Only runs of this plan id.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first: id, plan, state, start, duration, steps done/total."""
    if state is not None and state not in {s.value for s in RunState}:
        raise jsonout.fail(
            UsageError(
                f"unknown state {state!r}; use one of: " + ", ".join(s.value for s in RunState)
            ),
            as_json,
        )
    raise typer.Exit(_run_sync(_list, state_dir, state, plan, limit, as_json, as_json=as_json))


# --- show ------------------------------------------------------------------------------


async def _show(run_id: str, state_dir: Path | None, as_json: bool) -> int:
    async with monitor.open_session(state_dir) as session:
        found = await session.run_and_steps(run_id)
        if found is None:
            raise await _no_such_run(session, run_id)
    run, steps = found
    if as_json:
        doc = {"run": run, "steps": steps}
        sys.stdout.write(msgspec.json.encode(doc).decode() + "\n")
        return ExitCode.OK
    console = out_console()
    lines = [
        f"run       {run.run_id}",
        f"plan      {run.plan_id}" + (f" ({run.plan_path})" if run.plan_path else ""),
        f"state     {run.state.value}"
        + (f" (exit code {run.exit_code})" if run.exit_code is not None else "")
        + (f": {run.reason}" if run.reason else ""),
        f"started   {run.started_at}",
        f"ended     {run.ended_at or '-'}"
        + (f" ({format_duration(run.duration_sec)})" if run.duration_sec is not None else ""),
        f"owner     pid {run.owner_pid} on {run.owner_host} ({run.owner_kind})"
        + (f", last heartbeat {run.heartbeat_at}" if run.heartbeat_at else ""),
    ]
    if run.resumes:
        lines.append(f"resumed   {run.resumes} time(s)")
    if run.variables:
        lines.append("variables " + " ".join(f"{k}={v}" for k, v in run.variables.items()))
    if run.secret_names:
        lines.append("secrets   " + " ".join(run.secret_names) + " (values masked as ***)")
    for line in lines:
        console.print(line, markup=False)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("step", "attempt", "state", "exit", "started", "duration", "pid", "detail"):
        table.add_column(column, no_wrap=column != "detail")
    for step in steps:
        _show_step(table, step)
    console.print(table)
    outputs = [(step, key, value) for step in steps for key, value in (step.outputs or {}).items()]
    if outputs:
        console.print("outputs", markup=False)
        for step, key, value in outputs:
            masked = " (held a secret)" if key in step.masked_outputs else ""
            console.print(f"  {step.step_id}.{key} = {value!r}{masked}", markup=False)
    return ExitCode.OK


def _show_step(table: Table, step: StepRecord) -> None:
    table.add_row(
        *_cells(
            step.step_id,
            "",
            step.state.value,
            _code(step.exit_code),
            (step.started_at or "")[11:23],
            format_duration(step.duration_sec),
            "",
            step.reason or "",
        )
    )
    for a in step.attempts:
        detail = a.error or (a.log_path or "")
        table.add_row(
            *_cells(
                "",
                str(a.attempt),
                a.state.value,
                _code(a.exit_code),
                (a.started_at or "")[11:23],
                format_duration(a.duration_sec),
                str(a.pid or ""),
                detail,
            )
        )


def _cells(*values: str) -> list[Text]:
    """Table cells as plain text: stored strings are data, never rich markup."""
    return [Text(value) for value in values]


def _code(code: int | None) -> str:
    return "" if code is None else str(code)


def show(run_id: RunIdArg, state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """Show a run: its state, variables, times, owner, and every step with every attempt."""
    raise typer.Exit(_run_sync(_show, run_id, state_dir, as_json, as_json=as_json))


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
    step: Annotated[str | None, typer.Argument(help="Only this step.", show_default=False)] = None,
    attempt: Annotated[
        int | None, typer.Option(min=1, help="This attempt (default: the last).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    tail: Annotated[
        int | None,
        typer.Option("--tail", "-n", min=0, help="Start at the last N lines (of each step)."),
    ] = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Print a step's output (last attempt by default); with no STEP, every step's,
    each line prefixed [step-id]. --follow streams until the attempt (or run) ends;
    --tail N starts at the last N lines. Exit 1 if a log file is missing."""
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
            raise await _no_such_run(session, run_id) from None
    if as_json:
        jsonout.write_doc(jsonout.cancel_doc(record))
    else:
        out_console().print(f"run {run_id} cancelled", markup=False)
    return ExitCode.OK


def cancel(
    run_id: RunIdArg,
    state_dir: StateDirOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run to stop.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a running run from anywhere: its process stops every step (TERM, grace,
    KILL) and records it cancelled. Exit 0 when cancelled, 1 when it was not running."""
    raise typer.Exit(_run_sync(_cancel, run_id, state_dir, timeout, as_json, as_json=as_json))


def register_observe_commands(app: typer.Typer) -> None:
    """Add watch, list, show, logs and cancel to the ``planrun`` app."""
    app.command()(watch)
    app.command(name="list")(list_cmd)
    app.command()(show)
    app.command()(logs)
    app.command()(cancel)
