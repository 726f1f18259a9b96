"""Showing attempt logs for ``planrun logs``: copy log files to stdout in constant
memory, line-prefixed, from where the last N lines begin, never through a link.

Logs are masked when they are written, so nothing is masked here.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import BinaryIO

from ..errors import UsageError
from ..exitcodes import ExitCode
from ..records import StepRecord
from .common import err_console

__all__ = ["CHUNK", "MAX_PARTIAL", "LogSet", "open_log", "tail_offset"]


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


class LogSet:
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
