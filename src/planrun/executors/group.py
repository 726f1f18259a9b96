"""Supervise one attempt's process group: wait for it, stop it, leave nothing behind.

The attempt's leader was started in a new session, so its pid is the group id. Its
exit is awaited through a pidfd; it is reaped only in :meth:`Attempt.close`, so the
group id cannot be reused while planrun may still signal the group. Group emptiness is
the EOF of a "sentinel" pipe whose write end every process of the attempt inherited.

Contract: an :class:`Attempt` owns the leader's pidfd and the sentinel's read end
until :meth:`Attempt.close`, which every caller runs exactly once, last (also when
cancelled). :meth:`Attempt.stop` is ``killpg(SIGTERM)`` (or the step's stop signal),
up to ``grace`` seconds, ``killpg(SIGKILL)``, for the group and for the attempt's
processes that left it (found by tag, held by pidfd, see ``tags.py``), then SIGKILL
for what nested runs of the attempt left; its waits are bounded (``KILL_WAIT_SEC``,
``ESCAPE_CHECK_SEC``), so it ends within about ``grace + KILL_WAIT_SEC +
ESCAPE_CHECK_SEC`` plus the ``/proc`` scans. :meth:`Attempt.stop_stragglers` handles
group members that closed the sentinel.
Signals to a pid (not a group or pidfd) go only to processes found carrying the tag.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time

import anyio

from .attempt_files import OutputFile
from .leader import Leader
from .pump import Pump
from .tags import Scanner, still_tagged

__all__ = [
    "ESCAPE_CHECK_SEC",
    "ESCAPE_SCAN_REUSE_SEC",
    "KILL_WAIT_SEC",
    "Attempt",
    "kill_and_wait",
    "killpg",
]

#: How long to wait for a group to vanish after SIGKILL before giving up on it.
KILL_WAIT_SEC = 2.0
#: After SIGKILL to the group, how long before looking for escaped descendants.
ESCAPE_CHECK_SEC = 0.2
#: How old a ``/proc`` scan may be to pick the escapees that get the SIGTERM.
ESCAPE_SCAN_REUSE_SEC = 0.5


def _outside_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) != pgid
    except OSError:
        return False


class _Escapees:
    """Processes of an attempt that left its process group (``setsid``), held by
    pidfd once found, so a signal can never reach a process that reused the pid."""

    def __init__(self, pids: list[int], tag: bytes) -> None:
        self._fds: list[int] = []
        for pid in pids:
            fd = _pidfd(pid)
            if fd is None:
                continue
            if still_tagged(pid, tag):  # checked after the pidfd holds the process
                self._fds.append(fd)
            else:
                os.close(fd)

    def signal(self, sig: int) -> None:
        for fd in self._fds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(fd, sig)

    async def wait(self) -> None:
        """Wait until every one of them has exited."""
        for fd in self._fds:
            await anyio.wait_readable(fd)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def killpg(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone (or not ours) is
    no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_and_wait(pids: list[int], timeout: float = KILL_WAIT_SEC) -> None:
    """SIGKILL ``pids`` and block until every one of them has exited, ``timeout`` s at
    most in all: when it returns, none of them is left running (unless the kernel took
    longer than that to end one). For the end of the runs (``LocalExecutor.close``),
    which is synchronous; a SIGKILLed process is gone within milliseconds.

    Each is held by pidfd from before the signal, so the signal and the wait concern
    that process, never one that takes its pid after it exits (a pid reused between the
    ``/proc`` scan and the pidfd is the risk ``tags.py`` accepts for a process tagged a
    moment ago); one that cannot be signalled (not ours) is not waited for."""
    held = [fd for fd in map(_pidfd, pids) if fd is not None]
    poller = select.poll()
    waiting = 0
    for fd in held:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except PermissionError:
            continue
        except ProcessLookupError:
            pass  # exited already: its pidfd is readable at once
        poller.register(fd, select.POLLIN)
        waiting += 1
    deadline = time.monotonic() + timeout
    try:
        while waiting and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                waiting -= 1
    finally:
        for fd in held:
            os.close(fd)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class Attempt:
    """One running process group: its leader, pidfd and sentinel pipe."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes] | Leader,
        sentinel: int,
        tag: bytes,
        output: OutputFile,
        pump: Pump | None = None,
    ) -> None:
        self.proc = proc
        self.tag = tag
        #: This attempt as it appears in its descendants' ``PLANRUN_RUN_TREE``.
        self.tree = tag.decode().partition("=")[2]
        self.output = output
        self.pump = pump
        self.pgid = proc.pid
        self.sentinel = sentinel
        self.pidfd = _pidfd(proc.pid)
        self.exited = False
        self.group_empty = False
        #: When supervision began (``time.monotonic()``): a ``/proc`` scan older than
        #: this cannot show the attempt's escapees.
        self.started_at = time.monotonic()

    async def wait_exit(self) -> None:
        """Wait until the leader has exited (it stays unreaped: a zombie)."""
        if self.exited:
            return
        if self.pidfd is not None:
            await anyio.wait_readable(self.pidfd)
        else:
            await anyio.to_thread.run_sync(
                os.waitid, os.P_PID, self.pgid, os.WEXITED | os.WNOWAIT, abandon_on_cancel=True
            )
        self.exited = True

    async def wait_group(self) -> None:
        """Wait until the leader exited and no process holds the sentinel any more."""
        await self.wait_exit()
        while not self.group_empty:
            await anyio.wait_readable(self.sentinel)
            try:
                self.group_empty = os.read(self.sentinel, 4096) == b""
            except BlockingIOError:
                continue

    def check_group(self) -> bool:
        """Non-blocking: is the sentinel at EOF (every holder gone)?"""
        if not self.group_empty:
            try:
                self.group_empty = os.read(self.sentinel, 4096) == b""
            except BlockingIOError:
                return False
        return self.group_empty

    async def stop(
        self, grace: float, scanner: Scanner | None = None, sig: int = signal.SIGTERM
    ) -> None:
        """Send ``sig`` (the step's stop signal, SIGTERM by default) to the group and
        the attempt's processes that left it, wait ``grace`` (or until all are gone),
        SIGKILL them, wait until they are gone; then SIGKILL what nested runs of this
        attempt left (see ``proc.RUN_TREE``)."""
        scanner = scanner or Scanner()
        killpg(self.pgid, sig)
        # Escapees get the TERM too (not only the KILL after the grace): a cancel is
        # then as fast as the steps allow. A scan a moment old is fine for that: one
        # that escapes later is found after the KILL below. But never one taken
        # before this attempt began (another attempt's stop a moment ago): it cannot
        # show this attempt's escapees, whose TERM would then wait for the grace. Only
        # processes outside the group: a second TERM would tell a nested planrun to
        # kill at once.
        moment = max(time.monotonic() - ESCAPE_SCAN_REUSE_SEC, self.started_at)
        found = scanner.since(moment)
        pids = [p for p in found.by_tag.get(self.tag, ()) if _outside_group(p, self.pgid)]
        escapees = _Escapees(pids, self.tag)
        nested = bool(found.by_ancestor.get(self.tree))
        try:
            escapees.signal(sig)
            with anyio.move_on_after(grace):
                await self.wait_group()
                await escapees.wait()
            killpg(self.pgid, signal.SIGKILL)
            escapees.signal(signal.SIGKILL)
        finally:
            escapees.close()
        killed_at = time.monotonic()
        with anyio.move_on_after(ESCAPE_CHECK_SEC):
            await self.wait_group()
        if not self.group_empty:
            # Something holds the sentinel outside the group: a descendant that called
            # setsid() after the scan above. Find it by the tag in its environment.
            for pid in scanner.since(killed_at).by_tag.get(self.tag, ()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with anyio.move_on_after(KILL_WAIT_SEC):
            await self.wait_group()
        if nested:
            # A planrun inside this attempt stops its own steps when it gets the TERM;
            # if the KILL came first, its watchdog does. Either way nothing it started
            # outlives this attempt.
            for pid in scanner.since(time.monotonic()).by_ancestor.get(self.tree, ()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    async def stop_stragglers(self, grace: float, sig: int = signal.SIGTERM) -> None:
        """After a normal exit: stop group members that closed the sentinel.

        They are invisible to the sentinel, so once the leader is reaped the group is
        probed with signal 0 (a group with live members keeps its id, so it cannot
        have been reused) and, if anyone is left, sent ``sig``, given ``grace`` (probed
        every 50 ms: no kernel notification exists for "group empty"), then SIGKILL.
        """
        self.proc.poll()
        if not _group_alive(self.pgid):
            return
        killpg(self.pgid, sig)
        with anyio.move_on_after(grace):
            while _group_alive(self.pgid):  # noqa: ASYNC110 - no event exists for this
                await anyio.sleep(0.05)
        killpg(self.pgid, signal.SIGKILL)

    def close(self) -> int | None:
        """Kill what is left of the group, reap the leader, free the fds."""
        if self.proc.returncode is None:
            # The leader is still a zombie here, so the group id cannot have been reused.
            killpg(self.pgid, signal.SIGKILL)
        code = self.proc.poll()
        for fd in (self.pidfd, self.sentinel):
            if fd is not None:
                os.close(fd)
        return code
