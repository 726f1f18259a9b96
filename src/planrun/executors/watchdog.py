"""A tiny process that kills a run's step processes if planrun itself is killed.

Nothing runs inside a SIGKILLed process, so the cleanup must live outside it. The
watchdog is a separate Python process in its own session. planrun tells it, one line
each, which run ids and process groups are live (``run ID``, ``+PGID``, ``-PGID``) on a
*data* pipe, and holds the write end of a second, *wake* pipe (the watchdog's stdin). A
clean exit writes ``ok``. If the wake pipe reaches EOF without ``ok`` (planrun died:
SIGKILL, OOM killer), the watchdog reads what is left on the data pipe, then SIGKILLs
every group still listed and every process whose environment carries one of the run keys
(descendants that left their group with ``setsid``), as its own run (``PLANRUN_RUN_KEY``)
or as an ancestor (``PLANRUN_RUN_TREE``: the steps of a planrun started inside a step),
rescanning until a pass finds nothing (a process may fork while it scans), then exits.
It carries no planrun tag itself, so the watchdog of a nested run outlives the outer
watchdog's sweep and still kills its own groups.

Every line is written at once (a group is known to the watchdog as soon as planrun
supervises it), yet the watchdog is not woken by it: it sleeps on the wake pipe, which
gets a byte only after every ``WAKE_BYTES`` of lines (then it reads the data pipe, so
that never fills) and EOF when planrun exits or dies. A line is then one ``write`` to a
pipe nobody waits on, where waking the watchdog for each batch of lines cost planrun the
CPU it was on (on a busy 2-core machine, 0.1-0.3 ms of the event loop per wake-up).

Both write ends are close-on-exec and never passed to steps, so only planrun's own death
closes them.

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

__all__ = ["WAKE_BYTES", "Watchdog", "prestart"]

#: How long a clean exit waits for its watchdog to be gone.
DISMISS_WAIT_SEC = 2.0
#: Bytes of lines after which planrun wakes the watchdog to read them (a pipe holds
#: 64 KiB: planrun never waits for it to make room).
WAKE_BYTES = 16384

# Runs as `python -I -S -c SOURCE DATA_FD`, stdin the wake pipe: standard library only,
# no planrun import.
SOURCE = r"""
import os, sys
groups, runs, dirs = set(), set(), []
data, rest = int(sys.argv[1]), b""
os.set_blocking(data, False)
def drain():
    # Every line planrun wrote so far (all of them, once the wake pipe is at EOF).
    global rest
    while True:
        try:
            chunk = os.read(data, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        *lines, rest = (rest + chunk).split(b"\n")
        for raw in lines:
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
while os.read(0, 512):  # a wake byte; b"" once planrun has exited or died
    drain()
drain()
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


class _Pipes:
    """planrun's ends of one watchdog's pipes: the lines go to ``data``; ``wake`` gets
    a byte after every ``WAKE_BYTES`` of them (``unread``: bytes since the last one).
    (A plain class: this module is imported first thing, see :func:`prestart`.)"""

    __slots__ = ("data", "unread", "wake")

    def __init__(self, data: int, wake: int) -> None:
        self.data = data
        self.wake = wake
        self.unread = 0

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole lines), waking the watchdog if enough wait unread;
        a watchdog that died is no error (nothing more to do)."""
        with contextlib.suppress(BrokenPipeError):
            view = memoryview(data)
            while view:
                view = view[os.write(self.data, view) :]
            self.unread += len(data)
            if self.unread >= WAKE_BYTES:
                self.unread = 0
                os.write(self.wake, b"w")

    def close(self) -> None:
        os.close(self.data)
        os.close(self.wake)


def _spawn() -> tuple[subprocess.Popen[bytes], _Pipes]:
    """Start a watchdog process: it and planrun's ends of its pipes (``OSError`` if it
    cannot be started)."""
    data_read, data_write = os.pipe2(os.O_CLOEXEC)
    try:
        wake_read, wake_write = os.pipe2(os.O_CLOEXEC)
    except OSError:
        os.close(data_read)
        os.close(data_write)
        raise
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", SOURCE, str(data_read)],
            stdin=wake_read,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(data_read,),
            env=_untagged(os.environ),
            start_new_session=True,  # a Ctrl-C to our terminal is not for it
        )
    except OSError:
        os.close(data_write)
        os.close(wake_write)
        raise
    finally:
        os.close(data_read)
        os.close(wake_read)
    return proc, _Pipes(data_write, wake_write)


#: A watchdog started ahead of need (:func:`prestart`), for the next ``start()``.
_spare: list[tuple[subprocess.Popen[bytes], _Pipes]] = []


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
        proc, pipes = _spare.pop()
        _dismiss(proc, pipes)


def _dismiss(proc: subprocess.Popen[bytes] | None, pipes: _Pipes) -> None:
    """Clean exit of one watchdog: ``ok``, close its pipes (the wake pipe's EOF makes
    it read the ``ok``), reap it."""
    pipes.write(b"ok\n")
    pipes.close()
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
        self._pipes: _Pipes | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the watchdog now (if not yet running); ``HelperError`` if it cannot be.

        Called before a run's first step, so a watchdog that cannot start stops the
        run before anything runs, rather than leaving steps planrun could not protect.
        """
        if self._pipes is not None:
            return
        if _spare and os.access(sys.executable, os.X_OK):
            # Started ahead by prestart(): its interpreter is up by now. (Only while
            # the interpreter can still be started: a run that waited for a lock
            # meanwhile fails as if it had started its watchdog now.)
            self._proc, self._pipes = _spare.pop()
            return
        _dismiss_spare()
        try:
            self._proc, self._pipes = _spawn()
        except OSError as exc:
            from ..errors import HelperError  # not at import: see prestart()

            reason = exc.strerror or str(exc)
            raise HelperError(
                f"cannot start the watchdog process ({sys.executable}): {reason}; "
                "no step was started"
            ) from None

    def _send(self, line: str) -> None:
        """Write ``line`` now (see the module docstring: it does not wake the watchdog)."""
        if self._pipes is None:
            self.start()
        assert self._pipes is not None
        self._pipes.write(f"{line}\n".encode())

    def watch_run(self, run_key: str) -> None:
        """Processes carrying ``PLANRUN_RUN_KEY=run_key`` (or descending from that run)
        die with planrun."""
        self._send(f"run {run_key}")

    def remove_on_death(self, path: str) -> None:
        """Directory ``path`` (one of planrun's own, private) is removed if planrun
        dies; sent hex-encoded, so any file name fits on one line."""
        self._send(f"dir {os.fsencode(path).hex()}")

    def track(self, pgid: int) -> None:
        """Process group ``pgid`` dies with planrun (until :meth:`untrack`), from the
        moment this returns."""
        self._send(f"+{pgid}")

    def untrack(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self) -> None:
        """Clean exit: tell the watchdog all is well and reap it."""
        if self._pipes is None:
            return
        _dismiss(self._proc, self._pipes)
        self._pipes = None
        self._proc = None
