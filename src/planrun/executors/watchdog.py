"""A tiny process that kills a run's step processes if planrun itself is killed.

Nothing runs inside a SIGKILLed process, so the cleanup must live outside it. The
watchdog is a separate Python process in its own session; planrun holds the write end
of a pipe to its stdin and tells it, one line each, which run ids and process groups
are live (``run ID``, ``+PGID``, ``-PGID``). A clean exit writes ``ok``. If the pipe
reaches EOF without ``ok`` (planrun died: SIGKILL, OOM killer), the watchdog SIGKILLs
every group still listed and every process whose environment carries one of the run ids
(descendants that left their group with ``setsid``), then exits.

The write end is close-on-exec and never passed to steps, so only planrun's own death
closes it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

__all__ = ["Watchdog"]

# Runs as `python -I -S -c SOURCE`: standard library only, no planrun import.
SOURCE = r"""
import os, signal, sys
groups, runs = set(), set()
for raw in sys.stdin.buffer:
    line = raw.strip().decode()
    if line == "ok":
        sys.exit(0)
    if line.startswith("run "):
        runs.add(line[4:])
    elif line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
tags = {b"PLANRUN_RUN_ID=" + r.encode() for r in runs}
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) == os.getpid():
        continue
    try:
        with open("/proc/" + entry + "/environ", "rb") as f:
            environ = set(f.read().split(b"\0"))
    except OSError:
        continue
    if tags & environ:
        try:
            os.kill(int(entry), signal.SIGKILL)
        except OSError:
            pass
"""


class Watchdog:
    """The planrun side of the watchdog: start it, report groups, close it cleanly."""

    def __init__(self) -> None:
        self._write: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _send(self, line: str) -> None:
        if self._write is None:
            read_end, self._write = os.pipe2(os.O_CLOEXEC)
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", SOURCE],
                    stdin=read_end,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a Ctrl-C to our terminal is not for it
                )
            finally:
                os.close(read_end)
        with contextlib.suppress(BrokenPipeError):  # it died: nothing more to do
            os.write(self._write, f"{line}\n".encode())

    def watch_run(self, run_id: str) -> None:
        """Processes carrying ``PLANRUN_RUN_ID=run_id`` die with planrun."""
        self._send(f"run {run_id}")

    def track(self, pgid: int) -> None:
        """Process group ``pgid`` dies with planrun (until :meth:`untrack`)."""
        self._send(f"+{pgid}")

    def untrack(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self) -> None:
        """Clean exit: tell the watchdog all is well and reap it."""
        if self._write is None:
            return
        with contextlib.suppress(BrokenPipeError):
            os.write(self._write, b"ok\n")
        os.close(self._write)
        self._write = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2)
            self._proc = None
