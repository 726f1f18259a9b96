"""Commands that read runs from the store, from any process: ``watch``, ``list``,
``show``, ``logs`` and ``cancel``.

This is the one place in planrun that polls: another process's run can only be
followed by reading the store (and log files) again. Each poll is one short read;
nothing is held open between polls.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, BinaryIO

import anyio
import msgspec
import typer
from rich.table import Table
from rich.text import Text

from .. import monitor
from ..api import cancel_run
from ..errors import CancelError, PlanrunError, UsageError
from ..events import RunFinished, encode_event
from ..exitcodes import ExitCode
from ..model import RunState
from ..records import RunRecord, StepRecord
from .common import StateDirOpt, err_console, fail, out_console
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


def _run_sync(func: Callable[..., Awaitable[int]], *args: object) -> int:
    """Run a command's coroutine; PlanrunError becomes a message and its exit code."""
    try:
        code: int = anyio.run(func, *args, backend="asyncio")
    except PlanrunError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        code = ExitCode.CANCELLED
    except BrokenPipeError:
        # The reader went away (`planrun watch --json | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
    hint = f"; did you mean '{close[0]}'?" if close else "; see `planrun list`"
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
                sys.stdout.write(encode_event(event).decode() + "\n")
                sys.stdout.flush()
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
) -> None:
    """Follow a run from another terminal (or replay a finished one); exit with its code."""
    console = out_console()
    renderer: Renderer = (
        PlainLog(console) if plain or as_json or not console.is_terminal else LiveView(console)
    )
    raise typer.Exit(_run_sync(_watch, run_id, state_dir, as_json, renderer))


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
        console.print("no runs", markup=False)
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
        raise fail(
            UsageError(
                f"unknown state {state!r}; use one of: " + ", ".join(s.value for s in RunState)
            )
        )
    raise typer.Exit(_run_sync(_list, state_dir, state, plan, limit, as_json))


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
    raise typer.Exit(_run_sync(_show, run_id, state_dir, as_json))


# --- logs ------------------------------------------------------------------------------


#: Bytes read from a log file at a time: `logs` holds about this much, whatever the size.
CHUNK = 64 * 1024
#: Longest part of a line held back while following (so the lines of two steps do not
#: interleave mid-line); a longer line is written as it comes.
MAX_PARTIAL = 64 * 1024


class _Tail:
    """Copies one log file to stdout in chunks (constant memory), from ``offset`` on,
    each line prefixed with ``prefix``. Logs are masked when written, so nothing is
    masked here."""

    def __init__(self, path: str, prefix: str, offset: int = 0) -> None:
        self.path = path
        self.prefix = prefix.encode()
        self.offset = offset
        self.partial = b""
        #: Whether the next byte written starts a line (gets the prefix).
        self.at_line_start = True
        #: Why the log cannot be read (gone, or not a regular file), or None.
        self.problem: str | None = None
        self.reported = False

    @property
    def missing(self) -> bool:
        return self.problem is not None

    def pump(self, final: bool = False) -> None:
        """Write what was added since the last call (``final``: to the end, a last
        line without a newline included). A missing file sets ``missing``."""
        out = sys.stdout.buffer
        f = open_log(self.path)
        if isinstance(f, str):
            self.problem = f
            return
        with f:
            f.seek(self.offset)
            while chunk := f.read(CHUNK):
                self.offset += len(chunk)
                data = self.partial + chunk
                cut = data.rfind(b"\n") + 1
                self.partial = data[cut:]
                self._write(out, data[:cut])
                if len(self.partial) > MAX_PARTIAL:
                    self._write(out, self.partial)
                    self.partial = b""
        if final and (self.partial or not self.at_line_start):
            self._write(out, self.partial + b"\n")
            self.partial = b""
        out.flush()

    def _write(self, out: BinaryIO, data: bytes) -> None:
        if not data:
            return
        if self.prefix:
            body = data[:-1] if data.endswith(b"\n") else data
            body = body.replace(b"\n", b"\n" + self.prefix)
            if self.at_line_start:
                out.write(self.prefix)
            out.write(body + (b"\n" if data.endswith(b"\n") else b""))
        else:
            out.write(data)
        self.at_line_start = data.endswith(b"\n")


def open_log(path: str) -> BinaryIO | str:
    """The log file at ``path`` opened for reading, or why it cannot be read.

    Never follows a symbolic link and never blocks (a FIFO or a device planted at a
    log path, by a step of the run, is refused): only a regular file is read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link, not a log file planrun wrote: not read"
        return f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return "not a regular file, not a log planrun wrote: not read"
    return os.fdopen(fd, "rb")


def tail_offset(path: str, lines: int) -> int:
    """Where the last ``lines`` lines of the file at ``path`` begin, found by reading
    backwards from the end in blocks (a last line without a newline counts); 0 if the
    file has fewer lines, or is missing (the caller reports that)."""
    f = open_log(path)
    if isinstance(f, str):
        return 0
    with f:
        end = pos = f.seek(0, os.SEEK_END)
        if lines <= 0 or end == 0:
            return end
        f.seek(end - 1)
        # The newline that ends the last line does not start another one.
        needed = lines + (f.read(1) == b"\n")
        while pos > 0:
            size = min(CHUNK, pos)
            pos -= size
            f.seek(pos)
            block = f.read(size)
            i = len(block)
            while (i := block.rfind(b"\n", 0, i)) >= 0:
                needed -= 1
                if needed == 0:
                    return pos + i + 1
    return 0


def _selected(
    steps: list[StepRecord], step_id: str | None, attempt: int | None
) -> list[tuple[StepRecord, int | None]]:
    """(step, attempt number or None for 'the latest') pairs to print."""
    if step_id is None:
        return [(s, attempt) for s in steps]
    return [(s, attempt) for s in steps if s.step_id == step_id]


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
        logs = _Logs(step_id, attempt, follow, tail)
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


class _Logs:
    """The log files ``logs`` shows, one :class:`_Tail` per step."""

    def __init__(
        self, step_id: str | None, attempt: int | None, follow: bool, tail: int | None
    ) -> None:
        self.step_id = step_id
        self.attempt = attempt
        self.follow = follow
        self.tail = tail
        self.tails: dict[str, _Tail] = {}

    def pump(self, steps: list[StepRecord]) -> bool:
        """Write what the selected attempts' logs gained; whether any is still going."""
        active = False
        for step, number in _selected(steps, self.step_id, self.attempt):
            chosen = [a for a in step.attempts if number is None or a.attempt == number]
            if not chosen:
                if self.step_id is not None and number is not None and not self.follow:
                    raise UsageError(f"step '{step.step_id}' has no attempt {number}")
                active |= not step.state.terminal
                continue
            latest = chosen[-1]
            if latest.log_path is None:
                continue
            current = self._tail_for(step.step_id, latest.log_path)
            running = latest.state.value == "running"
            current.pump(final=not running or not self.follow)
            active |= running or (number is None and not step.state.terminal)
        return active

    def _tail_for(self, step_id: str, log_path: str) -> _Tail:
        """The step's tail, a new one when its latest attempt has another log."""
        current = self.tails.get(step_id)
        if current is not None and current.path == log_path:
            return current
        if current is not None:
            current.pump(final=True)  # the rest of the attempt that just ended
            _report_missing(current, step_id)
        # --tail: the first file shown starts at its last N lines; later attempts
        # (while following) are shown whole.
        start = tail_offset(log_path, self.tail) if self.tail is not None and current is None else 0
        prefix = "" if self.step_id is not None else f"[{step_id}] "
        self.tails[step_id] = _Tail(log_path, prefix, start)
        return self.tails[step_id]

    def finish(self) -> int:
        """Report unreadable logs; the exit code (1 if any log is missing)."""
        missing = [t for t in self.tails.values() if t.missing]
        for sid, t in self.tails.items():
            _report_missing(t, sid)
        return ExitCode.FAILED if missing else ExitCode.OK


def _report_missing(tail: _Tail, step_id: str) -> None:
    """Say once that a log file cannot be read (deleted since its attempt ran, or
    something else than the file planrun wrote is at its path)."""
    if tail.problem is not None and not tail.reported:
        err_console().print(
            f"planrun: the log of step '{step_id}' is {tail.problem}: {tail.path}"
            + (" (deleted?)" if tail.problem == "missing" else ""),
            markup=False,
        )
        tail.reported = True


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


async def _cancel(run_id: str, state_dir: Path | None, wait_sec: float) -> int:
    console = err_console()
    try:
        await cancel_run(run_id, state_dir=state_dir, wait_sec=wait_sec)
    except CancelError as exc:
        console.print(str(exc), markup=False)
        return ExitCode.FAILED
    except UsageError as exc:
        if exc.field != "run_id":
            raise
        async with monitor.open_session(state_dir) as session:
            raise await _no_such_run(session, run_id) from None
    console.print(f"run {run_id} cancelled", markup=False)
    return ExitCode.OK


def cancel(
    run_id: RunIdArg,
    state_dir: StateDirOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run to stop.")] = 60.0,
) -> None:
    """Cancel a running run from anywhere: its process stops every step (TERM, grace,
    KILL) and records it cancelled. Exit 0 when cancelled, 1 when it was not running."""
    raise typer.Exit(_run_sync(_cancel, run_id, state_dir, timeout))


def register_observe_commands(app: typer.Typer) -> None:
    """Add watch, list, show, logs and cancel to the ``planrun`` app."""
    app.command()(watch)
    app.command(name="list")(list_cmd)
    app.command()(show)
    app.command()(logs)
    app.command()(cancel)
