"""Copy a step's output from a pipe to its log, masking secrets and capping the size.

Used only when a run has secrets or a step has ``max_log_bytes``; otherwise the step
writes its log file itself and no pump exists.

Contract: a :class:`Pump` owns the pipe's read end (non-blocking) and the log fd from
construction on. :meth:`Pump.run` copies until every writer has closed the pipe or
until it is cancelled; either way it first copies what is still buffered, flushes the
masker, closes both fds and sets :attr:`Pump.done`. A pump that is never run is
released with :meth:`Pump.discard`, which closes the pipe only (the caller still owns
the log fd then). No secret reaches the log unmasked, also when one is split across
two reads.
"""

from __future__ import annotations

import contextlib
import os

import anyio

from ..masking import Masker
from .attempt_files import CappedLog, write_all

__all__ = ["DRAIN_SEC", "Pump"]

#: How long to keep reading a masked output pipe after the group is gone (a process
#: that left the group may still hold it).
DRAIN_SEC = 0.5


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
    keeping at most ``cap`` bytes (``CappedLog``: the head, a marker, the tail)."""

    def __init__(self, read_fd: int, log_fd: int, masker: Masker | None, cap: int | None) -> None:
        self._fd = read_fd
        self._log: _LogSink | CappedLog = (
            _LogSink(log_fd) if cap is None else CappedLog(log_fd, cap)
        )
        self._stream = (masker or Masker(())).stream()
        self.done = anyio.Event()

    def discard(self) -> None:
        """Close the pipe's read end, never started (the log fd stays open)."""
        os.close(self._fd)

    def _read_available(self) -> bool:
        """Copy what can be read now; False at end of file."""
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self._log.write(self._stream.feed(chunk))

    async def run(self) -> None:
        """Copy until every writer has closed the pipe (or until cancelled)."""
        try:
            while self._read_available():
                await anyio.wait_readable(self._fd)
        finally:
            # Whatever is still buffered in the pipe is copied before closing, also
            # when cancelled: the group is stopped by then, so nothing more will come.
            with contextlib.suppress(OSError):
                self._read_available()
            with contextlib.suppress(OSError):
                self._log.write(self._stream.flush())
            os.close(self._fd)
            with contextlib.suppress(OSError):
                self._log.close()
            self.done.set()
