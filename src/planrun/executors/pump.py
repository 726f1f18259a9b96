"""Copy a step's output from a pipe to its log, masking secrets and capping the size,
and hand it on line by line when someone wants it while the step runs.

Used only when a run has secrets, a step has ``max_log_bytes`` or the run has an
``on_output`` callback; otherwise the step writes its log file itself and no pump
exists.

Contract: a :class:`Pump` owns the pipe's read end (non-blocking) and the log fd from
construction on. :meth:`Pump.run` copies until every writer has closed the pipe or
until it is cancelled; either way it first copies what is still buffered, flushes the
masker, closes both fds and sets :attr:`Pump.done`. On asyncio, :meth:`Pump.start`
does the same from a reader callback of the loop instead of a task (a task, its task
group and their cancel scopes cost ~0.1 ms an attempt, on a chain's critical path);
:meth:`Pump.stop` (call it once the attempt ended, also when cancelled) then finishes
it the same way and returns what the copy raised. A pump that is never run is
released with :meth:`Pump.discard`, which closes the pipe only (the caller still owns
the log fd then). No secret reaches the log unmasked, also when one is split across
two reads. With ``on_line``, the masked bytes (before the log cap: the callback sees
every line, the log keeps what its cap allows) are split into lines
(:class:`LineSplitter`) and each is passed on as it completes; the last, unterminated
line when the pipe ends. The log's bytes are the same with or without ``on_line``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import anyio

from ..masking import Masker
from .attempt_files import CappedLog, write_all

__all__ = ["DRAIN_SEC", "MAX_LINE_BYTES", "LineSplitter", "Pump"]

#: How long to keep reading a masked output pipe after the group is gone (a process
#: that left the group may still hold it).
DRAIN_SEC = 0.5

#: Reads (of up to 64 KiB) per turn of the event loop, before letting others run.
READS_PER_TURN = 16

#: The longest line passed on whole; a longer one is passed on cut to this many bytes
#: (memory stays bounded whatever a step writes without a newline).
MAX_LINE_BYTES = 8192

#: What a pump passes each line to: (text, cut).
LineCallback = Callable[[str, bool], None]


def _decoded(line: bytes | bytearray) -> str:
    text = bytes(line).decode("utf-8", errors="replace")
    return text[:-1] if text.endswith("\r") else text


class LineSplitter:
    """Splits a byte stream into lines for a callback, ``(text, cut)`` per line.

    A line longer than ``limit`` bytes is passed on as its first ``limit`` bytes with
    ``cut`` True, and the rest of it up to the next newline is dropped. Contract: at
    most ``limit + 1`` bytes are held; :meth:`flush` passes on a last partial line.
    """

    def __init__(self, deliver: LineCallback, limit: int = MAX_LINE_BYTES) -> None:
        self._deliver = deliver
        self._limit = limit
        self._held = bytearray()
        #: The current line was already passed on cut: drop it up to its newline.
        self._dropping = False

    def feed(self, data: bytes) -> None:
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self._hold(data[start:end])
            if not self._dropping:
                self._deliver(_decoded(self._held), False)
            self._held.clear()
            self._dropping = False
            start = end + 1
        self._hold(data[start:])

    def _hold(self, part: bytes) -> None:
        if self._dropping or not part:
            return
        self._held += part[: self._limit + 1 - len(self._held)]
        if len(self._held) > self._limit:
            self._deliver(_decoded(self._held[: self._limit]), True)
            self._held.clear()
            self._dropping = True

    def flush(self) -> None:
        """Pass on the last line if it had no newline."""
        if self._held and not self._dropping:
            self._deliver(_decoded(self._held), False)
        self._held.clear()
        self._dropping = False


class _LogSink:
    """Where a pump's bytes go: the log file as is (no cap)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        write_all(self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


class Pump:
    """Copies a step's output from a pipe to its log file, masking secrets on the way
    (a secret split across two reads is still masked: see ``StreamMasker``) and then
    keeping at most ``cap`` bytes (``CappedLog``: the head, a marker, the tail); with
    ``on_line``, also passes each masked line on (see the module's contract)."""

    def __init__(
        self,
        read_fd: int,
        log_fd: int,
        masker: Masker | None,
        cap: int | None,
        on_line: LineCallback | None = None,
    ) -> None:
        self._fd = read_fd
        self._log: _LogSink | CappedLog = (
            _LogSink(log_fd) if cap is None else CappedLog(log_fd, cap)
        )
        self._stream = (masker or Masker(())).stream()
        self._lines = LineSplitter(on_line) if on_line is not None else None
        self.done = anyio.Event()
        #: While :meth:`start`'s reader callback is registered: its loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: What the reader callback's copy raised (:meth:`stop` raises it).
        self._error: BaseException | None = None

    def discard(self) -> None:
        """Close the pipe's read end, never started (the log fd stays open)."""
        os.close(self._fd)

    def release(self) -> None:
        """Close the pipe and the log, never started (an attempt nobody supervises)."""
        os.close(self._fd)
        with contextlib.suppress(OSError):
            self._log.close()

    def _read_available(self, most: int | None = READS_PER_TURN) -> bool:
        """Copy what can be read now (at most ``most`` reads: a step that writes as fast
        as we copy must not keep the event loop from everything else); False at end
        of file."""
        reads = 0
        while most is None or reads < most:
            reads += 1
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self._copy(self._stream.feed(chunk))
        return True

    def _copy(self, masked: bytes) -> None:
        self._log.write(masked)
        if self._lines is not None:
            self._lines.feed(masked)

    async def run(self) -> None:
        """Copy until every writer has closed the pipe (or until cancelled)."""
        try:
            while self._read_available():
                await anyio.wait_readable(self._fd)
        finally:
            self._finish()

    def start(self) -> bool:
        """Copy from a reader callback of the running asyncio loop (see the module's
        contract); False (nothing done) if there is none: then :meth:`run` it."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._loop.add_reader(self._fd, self._on_readable)
        return True

    def _on_readable(self) -> None:
        try:
            more = self._read_available()
        except Exception as exc:  # handed on by stop(), raised in the attempt's task
            self._error, more = exc, False
        if not more:
            self._unregister()
            self._finish()

    def _unregister(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None

    def stop(self) -> BaseException | None:
        """End a :meth:`start`-ed pump (if it is not done yet: copy what is buffered,
        close); what its copy raised, if anything (the caller raises it)."""
        self._unregister()
        self._finish()
        error, self._error = self._error, None
        return error

    def _finish(self) -> None:
        """Copy what is still buffered, flush, close both fds, set :attr:`done`; once."""
        if self.done.is_set():
            return
        # Whatever is still buffered in the pipe is copied before closing, also
        # when cancelled: the group is stopped by then, so nothing more will come.
        try:
            with contextlib.suppress(OSError):
                self._read_available(None)
            with contextlib.suppress(OSError):
                self._copy(self._stream.flush())
            if self._lines is not None:
                self._lines.flush()
        finally:
            os.close(self._fd)
            with contextlib.suppress(OSError):
                self._log.close()
            self.done.set()
