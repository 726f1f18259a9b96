"""What a person sees: the rich live view, the plain per-change log, the summary.

Both renderers are fed events through ``on_event`` (called on the event loop thread)
and fold them with the shared reducer, ``planrun.state.apply``. The live view redraws
from its own task, at most ``MAX_FPS`` times a second, with ``auto_refresh`` off so
rich never reads the state from another thread. A renderer that shows step output
says so (``wants_output``) and gets each line through ``on_output``, on the same thread.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections import Counter, deque
from datetime import datetime
from typing import TYPE_CHECKING, cast

import anyio

from ..events import (
    AttemptFinished,
    AttemptStarted,
    ConcurrencyCapped,
    Event,
    LockAcquired,
    RetryScheduled,
    RunAborting,
    RunCrashed,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
)
from ..model import RunState, StepState
from ..ports import OutputLine
from ..state import RunView, StepView, apply
from .common import command_hint
from .plain_console import PlainConsole, escape
from .words import counted

if TYPE_CHECKING:  # rich loads only where it draws (see cli/plain_console.py)
    from rich.console import Console, RenderableType

__all__ = [
    "LiveView",
    "counted",
    "PlainLog",
    "print_plain",
    "Renderer",
    "clock",
    "format_duration",
    "log_tail",
    "printable",
    "print_summary",
]

MAX_FPS = 10
#: Plans with more steps than this show only running, failed and recent steps.
FOLD_ABOVE = 30

STYLE = {
    StepState.PENDING: ("·", "dim"),
    StepState.RUNNING: ("▶", "cyan"),
    StepState.SUCCEEDED: ("✔", "green"),
    StepState.FAILED: ("✘", "red"),
    StepState.TIMED_OUT: ("⏱", "red"),
    StepState.SKIPPED: ("↷", "yellow"),
    StepState.CANCELLED: ("■", "magenta"),
    StepState.CRASHED: ("☠", "red"),
}
RUN_STYLE = {
    RunState.RUNNING: "cyan",
    RunState.SUCCEEDED: "green",
    RunState.FAILED: "red",
    RunState.CANCELLED: "magenta",
    RunState.CRASHED: "red",
}


def clock(ts: str) -> str:
    """``HH:MM:SS.mmm UTC`` of an event timestamp (stored in UTC: the line says so)."""
    return f"{ts[11:23]} UTC"


#: Escape sequences (CSI, OSC, two-byte) and the other control characters but tab.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?|[\x00-\x08\x0a-\x1f\x7f]"
)


def printable(text: str) -> str:
    """A step's line, safe to draw: no escape sequence or control character of the
    step's can move the cursor, clear the screen or retitle the terminal."""
    return _CONTROL.sub("", text) if not text.isprintable() else text


def _seconds(start: str | None, end: str | None) -> float | None:
    if start is None:
        return None
    t0 = datetime.fromisoformat(start)
    t1 = datetime.fromisoformat(end) if end else datetime.now(t0.tzinfo)
    return (t1 - t0).total_seconds()


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def log_tail(path: str | None, lines: int = 10, max_bytes: int = 8192) -> list[str]:
    """The last ``lines`` lines of a log file (reads at most ``max_bytes``)."""
    if path is None:
        return []
    try:
        # Never through a link, never blocking (a FIFO planted at a log path): a log
        # planrun refused to write may be anything.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                return []
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return text.splitlines()[-lines:] if text else []


def capped_text(event: ConcurrencyCapped) -> str:
    """The notice for a concurrency capped by the open-file limit."""
    return (
        f"max concurrency capped at {event.effective} (asked: {event.requested}): the "
        f"open-file limit ({event.fd_limit}) holds no more attempts; raise it "
        "(ulimit -n) to run more at once"
    )


def _last_log(step: StepView) -> str | None:
    return step.attempts[-1].log_path if step.attempts else None


class Renderer:
    """Base: folds events into ``self.view``."""

    #: Whether the renderer shows step output (the run then passes ``on_output``).
    wants_output = False

    def __init__(self, console: Console) -> None:
        self.console = console
        self.view: RunView | None = None
        self._shared = False
        #: The run's state dir, for the commands the view suggests (None: the default).
        self.state_dir: str | os.PathLike[str] | None = None

    def follow_hint(self, run_id: str) -> str:
        """The command that follows ``run_id``, runnable where it is printed."""
        return command_hint("watch", run_id, state_dir=self.state_dir)

    def share_view(self, view: RunView) -> None:
        """Draw from the run's own view (``RunOptions.on_view``): the events are then
        not folded a second time (a view of 100,000 steps is ~35 MB)."""
        self.view, self._shared = view, True

    def on_event(self, event: Event) -> None:
        if not self._shared:
            self.view = apply(self.view, event)

    def on_output(self, line: OutputLine) -> None:
        """A line a step wrote (masked); nothing to do unless ``wants_output``."""

    async def run(self) -> None:
        """Draw until cancelled (nothing to do for line-based output)."""

    def close(self) -> None:
        """Draw the final state."""


def _child(event: AttemptStarted) -> str:
    """How a started attempt of a ``uses`` step names its child run ("" if none)."""
    return f", child run {event.child_run_id}" if event.child_run_id else ""


def print_plain(console: Console, text: str) -> None:
    """``console.print(text, markup=False, highlight=False, soft_wrap=True)``, written
    as rich would write it (``render_str``: emoji codes replaced, control codes
    stripped; no style) straight to the console's file: rich's whole render costs
    ~0.1 ms a line, on the loop between a step's end and its dependent's start. Text
    with a tab (rich expands it) or a console that records or is quiet goes through
    rich."""
    if isinstance(cast(object, console), PlainConsole):  # it writes plain text itself
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    if "\t" in text or console.record or console.quiet:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    plain = console.render_str(text, markup=False, highlight=False).plain
    file = console.file
    try:
        file.write(plain + "\n")
        file.flush()
    except BrokenPipeError:
        console.on_broken_pipe()


class PlainLog(Renderer):
    """One timestamped line per state change: for CI logs and pipes."""

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        line = self._line(event)
        if line is not None:
            print_plain(self.console, f"{clock(event.ts)} {line}")

    def _line(self, event: Event) -> str | None:
        view = self.view
        assert view is not None
        match event:
            case RunStarted():
                return (
                    f"run {event.run_id} started: plan {event.plan_id}, "
                    f"{_steps_and_handlers(event)}, "
                    f"max concurrency {event.max_concurrency} "
                    f"(follow it: {self.follow_hint(event.run_id)})"
                )
            case RunResumed():
                kept = len(event.steps) - len(event.rerun)
                return (
                    f"run {event.run_id} resumed: rerunning {', '.join(event.rerun)}; "
                    f"{kept} step(s) keep their result "
                    f"(follow it: {self.follow_hint(event.run_id)})"
                )
            case AttemptStarted():
                total = view.steps[event.step_id].max_attempts
                pid = f", pid {event.pid}" if event.pid is not None else _child(event)
                warning = f" {event.warning}" if event.warning else ""
                who = _who(view, event.step_id)
                return f"{who} running (attempt {event.attempt}/{total}{pid}){warning}"
            case AttemptFinished() if event.state.value not in ("succeeded", "skipped"):
                detail = event.error or (
                    f"exit code {event.exit_code}" if event.exit_code is not None else ""
                )
                return f"{event.step_id} attempt {event.attempt} {event.state.value}" + (
                    f": {detail}" if detail else ""
                )
            case RetryScheduled():
                return f"{event.step_id} retrying in {event.delay_sec:g}s (attempt {event.attempt})"
            case StepFinished():
                step = view.steps[event.step_id]
                took = format_duration(_seconds(step.started_at, step.ended_at))
                extra = f" in {took}" if took and step.attempts else ""
                reason = f": {event.reason}" if event.reason else ""
                return f"{_who(view, event.step_id)} {event.state.value}{extra}{reason}"
            case LockAcquired():
                where = f" on {event.path}" if event.path else ""
                text = f"lock '{event.name}'{where} acquired"
                if event.waited_sec >= 0.5:
                    text += f" after waiting {event.waited_sec:g}s"
                if event.reclaimed_from_run is not None:
                    text += (
                        f" (reclaimed from run {event.reclaimed_from_run}: its process, "
                        f"pid {event.reclaimed_from_pid}, is gone)"
                    )
                return text
            case ConcurrencyCapped():
                return capped_text(event)
            case RunAborting():
                return f"run aborting: {event.reason}"
            case RunCrashed():
                # Mid-stream when a resume follows, so the log says where the gap is.
                return f"run {event.run_id} crashed: {event.reason} (pid {event.owner_pid})"
            case RunFinished():
                return None  # the summary says it
        return None


class LiveView(Renderer):
    """A rich live table: a row per step (folded for large plans) and an overall bar;
    with ``show_output``, a running step's row ends with the last line it wrote."""

    def __init__(self, console: Console, *, show_output: bool = False) -> None:
        super().__init__(console)
        self.wants_output = show_output
        self._last_line: dict[str, str] = {}
        from rich.live import Live  # only a terminal's view needs it (start-up)

        self._live = Live(
            console=console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._dirty = anyio.Event()
        self._recent: deque[str] = deque(maxlen=8)
        self._started = False

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if isinstance(event, RunStarted):
            hint = escape(self.follow_hint(event.run_id))
            self.console.print(
                f"run [bold]{event.run_id}[/] started: plan {escape(event.plan_id)}, "
                f"{_steps_and_handlers(event)} [dim](follow it: {hint})[/]"
            )
        elif isinstance(event, ConcurrencyCapped):
            self.console.print(f"[yellow]{escape(capped_text(event))}[/]")
        elif isinstance(event, StepFinished):
            self._recent.append(event.step_id)
        elif isinstance(event, AttemptStarted):
            self._last_line.pop(event.step_id, None)
        self._dirty.set()

    def on_output(self, line: OutputLine) -> None:
        text = printable(line.text).strip()
        if text:
            self._last_line[line.step_id] = text
            self._dirty.set()

    async def run(self) -> None:
        self._live.start()
        self._started = True
        while True:
            # Redraw on change, and twice a second anyway so elapsed times tick.
            with anyio.move_on_after(0.5):
                await self._dirty.wait()
            self._dirty = anyio.Event()
            began = time.perf_counter()
            self._draw()
            # At most MAX_FPS, and never more than ~5% of the loop's time on drawing
            # (a 30-row rich table takes ~10 ms to render).
            await anyio.sleep(max(1 / MAX_FPS, (time.perf_counter() - began) * 19))

    def close(self) -> None:
        if self._started:
            self._draw()
            self._live.stop()

    def _draw(self) -> None:
        if self.view is not None:
            self._live.update(self.render(self.view), refresh=True)

    def _rows(self, view: RunView) -> tuple[list[StepView], int]:
        steps = list(view.steps.values())
        if len(steps) <= FOLD_ABOVE:
            return steps, 0
        keep = {
            s.id
            for s in steps
            if s.state in (StepState.RUNNING, StepState.FAILED, StepState.TIMED_OUT)
        }
        keep.update(self._recent)
        shown = [s for s in steps if s.id in keep][-FOLD_ABOVE:]
        return shown, len(steps) - len(shown)

    def render(self, view: RunView) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar  # the live view only (start-up)
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        for column in ("", "step", "state", "attempt", "elapsed", ""):
            table.add_column(column, no_wrap=column != "")
        shown, hidden = self._rows(view)
        for step in shown:
            symbol, style = STYLE[step.state]
            note = step.reason or ""
            if step.retry_in is not None and step.state is StepState.RUNNING:
                note = f"retrying in {step.retry_in:g}s"
            elif step.state is StepState.RUNNING:
                note = self._last_line.get(step.id, note)
            if step.state.failed:
                tail = log_tail(_last_log(step), 1)
                note = f"{note} | {tail[-1]}" if tail else note
            attempt = f"{len(step.attempts)}/{step.max_attempts}" if step.attempts else ""
            table.add_row(
                Text(symbol, style=style),
                Text.assemble(step.id, (f" ({step.handler})" if step.handler else "", "dim")),
                Text(step.state.value, style=style),
                attempt,
                format_duration(_seconds(step.started_at, step.ended_at)),
                Text(note, style="dim", overflow="ellipsis", no_wrap=True),
            )
        total = len(view.steps)
        counts = "  ".join(
            f"[{STYLE[s][1]}]{s.value} {view.counts[s]}[/]" for s in StepState if view.counts[s]
        )
        footer = Table.grid(padding=(0, 1))
        footer.add_row(
            ProgressBar(total=max(total, 1), completed=view.finished, width=30),
            f"{view.finished}/{total}",
            counts,
        )
        parts: list[RenderableType] = [table]
        if hidden:
            parts.append(Text(f"… {hidden} more steps not shown", style="dim"))
        parts.append(footer)
        return Group(*parts)


def print_summary(console: Console, view: RunView, wall: float) -> None:
    """The end of a run: its state, the counts, and each failed step with its log tail."""
    state_style = RUN_STYLE[view.state]
    counts = _counts(view, handlers=False)
    if any(s.handler is not None for s in view.steps.values()):
        counts += f"; handlers: {_counts(view, handlers=True)}"
    # After a resume, the time that resume took: the first start may be days ago.
    took = _seconds(view.resumed_at or view.started_at, view.ended_at)
    since = " since the resume" if view.resumed_at else ""
    console.print(
        f"run {view.run_id} [bold {state_style}]{view.state.value}[/] in "
        f"{format_duration(took if took is not None else wall)}{since} ({counts})",
        highlight=False,
    )
    if view.reason and view.state is not RunState.SUCCEEDED:
        console.print(f"  reason: {view.reason}", markup=False, highlight=False)
    for step in view.steps.values():
        # A step says what it did (e.g. what a rollback restored) with a "summary" output.
        said = (step.outputs or {}).get("summary") if step.state is StepState.SUCCEEDED else None
        if said:
            console.print(f"  {step.id}: {said}", markup=False, highlight=False)
    for step in view.steps.values():
        if not step.state.failed:
            continue
        label = "" if step.critical else " (non-critical)"
        if step.handler is not None:  # it did not change the run's outcome
            label = f" (handler {step.handler})"
        console.print(
            f"[red]{STYLE[step.state][0]} {escape(step.id)}[/]{label}: {step.state.value}, "
            f"{escape(step.reason or '')}, {len(step.attempts)} attempt(s)",
            highlight=False,
        )
        path = _last_log(step)
        if path:
            console.print(f"  log: {path}", markup=False, highlight=False)
            for line in log_tail(path):
                console.print(f"  | {line}", markup=False, highlight=False)


def _steps_and_handlers(event: RunStarted) -> str:
    """``3 steps`` or ``3 steps and 1 handler``."""
    handlers = sum(1 for s in event.steps if s.handler is not None)
    also = f" and {counted(handlers, 'handler')}" if handlers else ""
    return f"{counted(len(event.steps) - handlers, 'step')}{also}"


def _who(view: RunView, step_id: str) -> str:
    """How a progress line names a step: a run handler says so."""
    step = view.steps.get(step_id)
    return f"handler {step_id}" if step is not None and step.handler else step_id


def _counts(view: RunView, *, handlers: bool) -> str:
    """``2 succeeded, 1 failed``: the steps (or the run handlers) by state."""
    found = Counter(s.state for s in view.steps.values() if (s.handler is not None) == handlers)
    return ", ".join(f"{found[s]} {s.value}" for s in StepState if found[s]) or "none"
