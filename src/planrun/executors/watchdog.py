"""A tiny process that kills a run's step processes if planrun itself is killed.

Nothing runs inside a SIGKILLed process, so the cleanup must live outside it. The
watchdog is a separate Python process in its own session; planrun holds the write end
of a pipe to its stdin and tells it, one line each, which run ids and process groups
are live (``run ID``, ``+PGID``, ``-PGID``). A clean exit writes ``ok``. If the pipe
reaches EOF without ``ok`` (planrun died: SIGKILL, OOM killer), the watchdog SIGKILLs
every group still listed and every process whose environment carries one of the run keys
(descendants that left their group with ``setsid``), as its own run (``PLANRUN_RUN_KEY``)
or as an ancestor (``PLANRUN_RUN_TREE``: the steps of a planrun started inside a step),
rescanning until a pass finds nothing (a process may fork while it scans), then exits.
It carries no planrun tag itself, so the watchdog of a nested run outlives the outer
watchdog's sweep and still kills its own groups.

The write end is close-on-exec and never passed to steps, so only planrun's own death
closes it.

Its interpreter takes a while to start (more than a one-step run takes), and a clean
exit waits for it to be gone. So the CLI calls :func:`prestart` first thing: that
watchdog starts while planrun loads, and the run's :class:`Watchdog` takes it over.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import subprocess
import sys
from collections.abc import Mapping

__all__ = ["BATCH_SEC", "Watchdog", "prestart"]

#: How long group lines (``+PGID``, ``-PGID``) may wait to be written together.
BATCH_SEC = 0.005
#: How long a clean exit waits for its watchdog to be gone.
DISMISS_WAIT_SEC = 2.0

# Runs as `python -I -S -c SOURCE`: standard library only, no planrun import.
SOURCE = r"""
import os, sys
groups, runs, dirs = set(), set(), []
for raw in sys.stdin.buffer:
    line = raw.strip().decode()
    if line == "ok":
        os._exit(0)  # nothing to flush or free: skip the interpreter's finalization
    if line.startswith("run "):
        runs.add(line[4:])
    elif line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))
    elif line.startswith("dir "):
        dirs.append(os.fsdecode(bytes.fromhex(line[4:])))
# planrun died. Imported only now: a clean run's watchdog never needs them.
import shutil, signal
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
ids = {b"PLANRUN_RUN_KEY=" + r.encode() for r in runs}
def ours(environ):
    # Its own run, or any run it descends from (PLANRUN_RUN_TREE: run/step/n:...).
    for item in environ:
        if item in ids:
            return True
        if item.startswith(b"PLANRUN_RUN_TREE="):
            for part in item[17:].split(b":"):
                if part.split(b"/")[0].decode(errors="replace") in runs:
                    return True
    return False
# A process may fork while the scan runs: scan again until a pass finds nothing.
for _ in range(20):
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/" + entry + "/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open("/proc/" + entry + "/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        if ours(environ):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    if not killed:
        break
# planrun's private directories (the outputs files: mode 0300, so made listable first).
for path in dirs:
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)
"""


def _untagged(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without planrun's tags: the watchdog of a nested run must not be
    taken for a step of the outer run (whose watchdog would kill it before it has
    killed its own steps), so it carries no run id."""
    return {k: v for k, v in environ.items() if not k.startswith("PLANRUN_")}


def _spawn() -> tuple[subprocess.Popen[bytes], int]:
    """Start a watchdog process: it and the write end of its stdin (``OSError`` if it
    cannot be started)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SOURCE],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_untagged(os.environ),
            start_new_session=True,  # a Ctrl-C to our terminal is not for it
        )
    except OSError:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return proc, write_end


#: A watchdog started ahead of need (:func:`prestart`), for the next ``start()``.
_spare: list[tuple[subprocess.Popen[bytes], int]] = []


def prestart() -> None:
    """Start a watchdog now, for this process's next :meth:`Watchdog.start` to take
    over, so that its interpreter starts while planrun loads the rest. Not being able
    to start one is not reported here: ``start()`` tries again and reports that. One
    nobody takes is dismissed cleanly at exit."""
    if _spare:
        return
    try:
        _spare.append(_spawn())
    except OSError:
        return
    atexit.register(_dismiss_spare)


def _dismiss_spare() -> None:
    """At exit: tell a spare watchdog nobody took that all is well, and reap it."""
    while _spare:
        proc, write_end = _spare.pop()
        _dismiss(proc, write_end)


def _dismiss(proc: subprocess.Popen[bytes] | None, write_end: int) -> None:
    """Clean exit of one watchdog: ``ok``, close its pipe, reap it."""
    with contextlib.suppress(BrokenPipeError):
        os.write(write_end, b"ok\n")
    os.close(write_end)
    if proc is not None:
        _await_exit(proc, DISMISS_WAIT_SEC)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=DISMISS_WAIT_SEC)


def _await_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until ``proc`` has exited (or ``timeout``), woken by its pidfd. The
    watchdog leaves within a millisecond of ``ok``; ``Popen.wait(timeout)`` alone
    polls (sleeps of 0.5 ms, 1 ms, 2 ms ...) and would notice a millisecond late. Where
    there is no pidfd (not Linux, or the process is gone) it returns at once."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


class Watchdog:
    """The planrun side of the watchdog: start it, report groups, close it cleanly."""

    def __init__(self) -> None:
        self._write: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        #: ``+PGID``/``-PGID`` lines not written yet (see :meth:`track`).
        self._pending: list[str] = []

    def start(self) -> None:
        """Start the watchdog now (if not yet running); ``HelperError`` if it cannot be.

        Called before a run's first step, so a watchdog that cannot start stops the
        run before anything runs, rather than leaving steps planrun could not protect.
        """
        if self._write is not None:
            return
        if _spare and os.access(sys.executable, os.X_OK):
            # Started ahead by prestart(): its interpreter is up by now. (Only while
            # the interpreter can still be started: a run that waited for a lock
            # meanwhile fails as if it had started its watchdog now.)
            self._proc, self._write = _spare.pop()
            return
        _dismiss_spare()
        try:
            self._proc, write_end = _spawn()
        except OSError as exc:
            from ..errors import HelperError  # not at import: see prestart()

            reason = exc.strerror or str(exc)
            raise HelperError(
                f"cannot start the watchdog process ({sys.executable}): {reason}; "
                "no step was started"
            ) from None
        self._write = write_end

    def _send(self, line: str) -> None:
        """Write ``line`` now, after any pending group lines (the order is kept)."""
        self._pending.append(line)
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        self.start()
        assert self._write is not None
        data = "".join(f"{line}\n" for line in self._pending).encode()
        self._pending.clear()
        with contextlib.suppress(BrokenPipeError):  # it died: nothing more to do
            view = memoryview(data)
            while view:
                view = view[os.write(self._write, view) :]

    def _queue(self, line: str) -> None:
        """Queue a group line, written ``BATCH_SEC`` later together with the others
        queued meanwhile: one write (and one wake-up of the watchdog, which costs
        planrun its CPU on a busy machine) instead of one per attempt start and end.
        Without a running asyncio loop it is written at once."""
        import asyncio  # not at import: see prestart() (loaded by now, with the loop)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send(line)
            return
        if not self._pending:
            loop.call_later(BATCH_SEC, self._flush)
        self._pending.append(line)

    def watch_run(self, run_key: str) -> None:
        """Processes carrying ``PLANRUN_RUN_KEY=run_key`` (or descending from that run)
        die with planrun."""
        self._send(f"run {run_key}")

    def remove_on_death(self, path: str) -> None:
        """Directory ``path`` (one of planrun's own, private) is removed if planrun
        dies; sent hex-encoded, so any file name fits on one line."""
        self._send(f"dir {os.fsencode(path).hex()}")

    def track(self, pgid: int) -> None:
        """Process group ``pgid`` dies with planrun (until :meth:`untrack`).

        Written within ``BATCH_SEC`` (see :meth:`_queue`): if planrun is killed
        before that, the group's processes are still killed by the run-key scan,
        unless one has already cleared its environment by then."""
        self._queue(f"+{pgid}")

    def untrack(self, pgid: int) -> None:
        self._queue(f"-{pgid}")

    def close(self) -> None:
        """Clean exit: tell the watchdog all is well and reap it."""
        if self._write is None:
            return
        self._pending.clear()  # group lines no longer matter: "ok" follows
        _dismiss(self._proc, self._write)
        self._write = None
        self._proc = None
