"""Step output while a run runs: ``--output prefixed|grouped|quiet``, and GitHub framing.

- ``prefixed`` prints every line as it comes, as ``step | line`` (step ids padded to
  one width, each step in its own colour when colour is on).
- ``grouped`` prints each attempt's output as one block when the attempt ends, under a
  header saying the step, the attempt and how it ended. Under GitHub Actions each
  block is a ``::group::`` and the step's lines are fenced with ``::stop-commands::``
  and a random token, so nothing a step prints (``::endgroup::``, ``::add-mask::``,
  ``::error::``) is read as a workflow command.
- ``quiet`` prints no step output (the state changes only).

The default (``auto``): on a terminal, the live view with the last line of each
running step; otherwise ``grouped`` under GitHub Actions and ``prefixed`` elsewhere.
Every line-based mode also says when a step has been silent for a while ("still
running (2m00s)"): a timer task that sleeps until the next such moment, no polling.
Lines arrive masked (the executor masks them as it writes the log).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from typing import TYPE_CHECKING

import anyio
import msgspec

from ..events import AttemptFinished, AttemptStarted, Event, utc_now
from ..ports import OutputLine
from .ci import CiMode
from .common import quiet_stream
from .params import OutputChoice, OutputOpt
from .view import LiveView, PlainLog, Renderer, clock, format_duration, printable

if TYPE_CHECKING:  # rich loads only where it draws (see cli/plain_console.py)
    from rich.console import Console

__all__ = [
    "STILL_RUNNING_ENV",
    "OutputChoice",
    "OutputOpt",
    "StepOutputLog",
    "choose_renderer",
    "github_block",
]

#: Seconds of silence after which a step gets a "still running" line (default 60).
STILL_RUNNING_ENV = "PLANRUN_STILL_RUNNING_SEC"
STILL_RUNNING_SEC = 60.0
#: At most this many bytes of one attempt's output are held for ``grouped`` (the
#: oldest lines go first; the header says how many; the log has them all).
BLOCK_BYTES = 1 << 20
#: Colours for step prefixes, in plan order.
PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
CUT_MARK = " [… line cut: see the log]"


def still_running_sec() -> float:
    """The silence before a "still running" line (``$PLANRUN_STILL_RUNNING_SEC``)."""
    try:
        value = float(os.environ.get(STILL_RUNNING_ENV, STILL_RUNNING_SEC))
    except ValueError:
        return STILL_RUNNING_SEC
    return value if value > 0 and math.isfinite(value) else STILL_RUNNING_SEC


def choose_renderer(console: Console, output: OutputChoice, plain: bool, ci: CiMode) -> Renderer:
    """The renderer for ``run``/``resume``: a live view only on a real terminal (and
    not ``--plain``); see the module docstring for the default."""
    live = console.is_terminal and not plain
    if output is OutputChoice.AUTO:
        if live:
            return LiveView(console, show_output=True)
        output = OutputChoice.GROUPED if ci is CiMode.GITHUB else OutputChoice.PREFIXED
    if output is OutputChoice.QUIET and live:
        return LiveView(console)
    return StepOutputLog(console, output, github=ci is CiMode.GITHUB)


def _escape_title(text: str) -> str:
    """A ``::group::`` title as GitHub reads a command's data: one line."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_block(title: str, lines: list[str], token: str | None = None) -> list[str]:
    """A group for GitHub Actions whose body cannot issue workflow commands: the
    lines between ``::stop-commands::TOKEN`` and ``::TOKEN::`` are printed as they are
    (``token``: a fresh random one unless given, for tests)."""
    token = token or os.urandom(16).hex()
    return [
        f"::group::{_escape_title(title)}",
        f"::stop-commands::{token}",
        *lines,
        f"::{token}::",
        "::endgroup::",
    ]


class _Block(msgspec.Struct):
    """One attempt's output held for ``grouped``: the newest lines, within a budget."""

    lines: deque[str] = msgspec.field(default_factory=deque)
    size: int = 0
    dropped: int = 0

    def add(self, text: str) -> None:
        self.lines.append(text)
        self.size += len(text) + 1
        while self.size > BLOCK_BYTES and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()) + 1
            self.dropped += 1


class _Running(msgspec.Struct):
    """A running step, for the "still running" line: when it started, and when it last
    said anything (a line in ``prefixed``, or our last notice)."""

    started: float
    heard: float


class StepOutputLog(PlainLog):
    """The plain per-change log plus the step output in ``mode`` (see the module
    docstring), and the "still running" lines for silent steps."""

    def __init__(self, console: Console, mode: OutputChoice, *, github: bool = False) -> None:
        super().__init__(console)
        self._mode = mode
        self._github = github
        self.wants_output = mode in (OutputChoice.PREFIXED, OutputChoice.GROUPED)
        self._every = still_running_sec()
        self._blocks: dict[tuple[str, int], _Block] = {}
        self._running: dict[str, _Running] = {}
        self._prefixes: dict[str, str] = {}
        self._wake = anyio.Event()

    # --- events and lines (on the event loop thread) ---------------------------------

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if isinstance(event, AttemptStarted):
            if not self._running:
                # The timer had nothing to wait for. Otherwise it wakes in time anyway
                # (this step is due last) and is not woken for it: each wake-up looks
                # at every running step (256 in flight: ~250 per start).
                self._wake.set()
            now = time.monotonic()
            self._running[event.step_id] = _Running(now, now)
        elif isinstance(event, AttemptFinished):
            self._running.pop(event.step_id, None)
            block = self._blocks.pop((event.step_id, event.attempt), None)
            if self._mode is OutputChoice.GROUPED:
                self._print_block(event.step_id, event.attempt, self._ending(event), block)

    def on_output(self, line: OutputLine) -> None:
        text = printable(line.text) + (CUT_MARK if line.cut else "")
        if self._mode is OutputChoice.GROUPED:
            self._blocks.setdefault((line.step_id, line.attempt), _Block()).add(text)
            return
        running = self._running.get(line.step_id)
        if running is not None:
            running.heard = time.monotonic()
        self._write(f"{self._prefix(line.step_id)}{text}\n")

    def _write(self, text: str) -> None:
        """Straight to the console's file: a rich ``print`` per line costs ~75 µs,
        too much for a step that writes 100,000 lines (the prefix is rendered once)."""
        file = self.console.file
        try:
            file.write(text)
            file.flush()
        except BrokenPipeError:  # the reader went away: the run goes on, unprinted
            quiet_stream(file)

    def _prefix(self, step_id: str) -> str:
        """``step | `` padded to the longest step id, in the step's colour (rendered
        by the console once per step, so ``--color``/``NO_COLOR`` hold)."""
        if not self._prefixes and self.view is not None:
            from rich.text import Text

            width = max(len(s) for s in self.view.steps)
            for index, sid in enumerate(self.view.steps):
                style = PALETTE[index % len(PALETTE)]
                with self.console.capture() as captured:
                    self.console.print(Text(f"{sid:<{width}} | ", style=style), end="")
                self._prefixes[sid] = captured.get()
        return self._prefixes.get(step_id) or f"{step_id} | "

    # --- grouped blocks ----------------------------------------------------------------

    def _ending(self, event: AttemptFinished) -> str:
        """How an attempt ended, for its block's header."""
        how = event.state.value
        if event.error:
            how += f": {event.error}"
        elif event.exit_code not in (None, 0):
            how += f" (exit code {event.exit_code})"
        return f"{how} in {format_duration(event.duration_sec)}"

    def _print_block(self, step_id: str, attempt: int, ending: str, block: _Block | None) -> None:
        step = self.view.steps.get(step_id) if self.view is not None else None
        total = f"/{step.max_attempts}" if step is not None else ""
        title = f"{step_id} · attempt {attempt}{total} · {ending}"
        lines = list(block.lines) if block is not None else []
        if block is not None and block.dropped:
            title += f" · first {block.dropped} lines not shown (see the log)"
        if self._github:
            self._write("".join(f"{text}\n" for text in github_block(printable(title), lines)))
            return
        from rich.text import Text

        self.console.print(Text(f"── {title} ──", style="bold"), highlight=False, soft_wrap=True)
        self._write("".join(f"{text}\n" for text in lines or ["(no output)"]))

    # --- "still running" ---------------------------------------------------------------

    async def run(self) -> None:
        """Say "still running" for each step silent for ``_every`` seconds; sleeps until
        the next such moment (or until a step starts when none runs)."""
        while True:
            due = min((r.heard + self._every for r in self._running.values()), default=None)
            delay = math.inf if due is None else max(0.0, due - time.monotonic())
            with anyio.move_on_after(delay):
                await self._wake.wait()
            self._wake = anyio.Event()
            self._say_still_running(time.monotonic())

    def _say_still_running(self, now: float) -> None:
        for step_id, running in self._running.items():
            if now - running.heard >= self._every:
                running.heard = now
                took = format_duration(now - running.started)
                self.console.print(
                    f"{clock(utc_now())} {step_id} still running ({took})",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )

    def close(self) -> None:
        """Print what attempts that never ended (the run was cut short) had said."""
        for (step_id, attempt), block in list(self._blocks.items()):
            self._print_block(step_id, attempt, "did not finish", block)
        self._blocks.clear()
