"""Start an attempt's leader with ``os.posix_spawn`` when that starts the very child
``Popen`` would, and say when it does not.

Why: for a short step the spawn is on the critical path (a chain of steps waits for
each), and ``Popen`` costs ~100 µs more than ``posix_spawn`` per start on this
project's 2-core machine (measured with ``true``: 227-260 µs against 128-169 µs; most
of it is Python work around the same ``vfork``). CPython's own ``subprocess`` takes the
``posix_spawn`` path in the cases where it is equivalent; planrun's attempts need a new
session and an inherited sentinel fd, which that path does not cover, so it is done here.

Contract: :func:`can_spawn` says whether :func:`spawn` may be used for these fds and
``cwd`` (else use ``Popen``); :func:`spawn` starts ``argv`` as ``Popen(argv, stdin=,
stdout=out, stderr=out, cwd=None, env=, start_new_session=True, pass_fds=(sentinel,),
restore_signals=True)`` would, or raises the ``OSError`` ``Popen`` would raise (with
the program as ``filename``), and returns a :class:`Leader`. The child gets the
sentinel as fd 3 (nothing reads its number: it only has to be held open).

A program without a ``/`` is looked up in the step's ``PATH``, as ``Popen`` does (a
file that is not executable is passed over but remembered: EACCES if nothing later
is found). When that ``PATH`` is planrun's own (the common case), ``posix_spawnp``
does the search in the child, as exec does; glibc reads it from the C environment,
which ``os.environ`` keeps in step (a bare ``os.putenv`` would not).

The executor uses it only for a spawn it runs inline (no other attempt running:
see ``spawner.py``): ``os.posix_spawn`` holds the GIL until the child has called
``exec``, where ``Popen`` lets it go around its ``vfork`` (CPython 3.11.5+), so in the
spawn thread it would stall the event loop for every start (measured: the layered
peerbench shape at j=2 took 1.6x as long).

Not used (``can_spawn`` is False) when the step has a ``cwd`` (Python 3.11's
``posix_spawn`` cannot change directory) or when an fd involved is below 4 (the
``dup2`` actions into 0-3 could overwrite it) or an inheritable one is at or above
the soft open-file limit (see :func:`can_spawn`). ``Popen`` closes every other
inheritable descriptor in the child (``close_fds``); ``posix_spawn`` closes the ones
it is given: those :func:`inheritable_fds` found (once per executor). Python makes
every descriptor it creates non-inheritable (PEP 446), so they are the ones planrun's
process was given at start (a ``make`` jobserver pipe, a CI runner's) and any a library
made inheritable on purpose before the scan.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
from collections.abc import Mapping, Sequence

__all__ = ["Leader", "can_spawn", "inheritable_fds", "spawn"]

#: The signals ``Popen(restore_signals=True)`` puts back to their default in the
#: child (Python ignores SIGPIPE and SIGXFSZ; an ignored signal survives ``exec``).
_RESTORED = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))
#: The child's fd for the sentinel's write end.
SENTINEL_FD = 3


class Leader:
    """A leader started by :func:`spawn`: what the supervision uses of ``Popen``
    (``pid``, ``returncode``, ``poll``), with ``Popen``'s meaning."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the leader if it has exited (non-blocking); its exit code, ``-N`` for
        a signal, or None while it runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: as Popen, call it 0
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def inheritable_fds() -> tuple[int, ...] | None:
    """This process's inheritable descriptors above 2, now; None if it cannot tell."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own fd, closed by now
                continue
    return tuple(found)


def can_spawn(cwd: str | None, fds: Sequence[int], inheritable: tuple[int, ...] | None) -> bool:
    """May :func:`spawn` start this leader (see the module's contract)?"""
    if cwd is not None or inheritable is None or min(fds) <= SENTINEL_FD:
        return False
    # glibc refuses to close an fd at or above the soft open-file limit (EBADF), and
    # an fd opened before the limit was lowered can be there.
    return not inheritable or max(inheritable) < resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _program(name: str, env: Mapping[bytes, bytes]) -> bytes:
    """The file to execute for ``name``, looked up in the step's own ``PATH`` as
    ``Popen`` does; ``OSError`` (``filename`` the name) if there is none."""
    program = os.fsencode(name)
    if b"/" in program:
        return program
    denied = False
    for folder in os.get_exec_path(env):  # type: ignore[arg-type]  # bytes keys work
        path = os.path.join(os.fsencode(folder), program)
        try:
            mode = os.stat(path).st_mode  # one system call for each entry that has none
        except OSError:
            continue
        if not stat.S_ISDIR(mode) and os.access(path, os.X_OK):
            return path
        denied = True  # as exec: EACCES is remembered, ENOENT goes on
    if denied:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


def spawn(
    argv: Sequence[str],
    env: Mapping[bytes, bytes],
    fds: tuple[int, int, int],
    close: Sequence[int],
) -> Leader:
    """Start the leader with ``fds`` = (stdin, stdout and stderr, the sentinel),
    closing the inheritable ``close`` in the child (see the module's contract)."""
    stdin, out, sentinel = fds
    actions: list[tuple[int, int] | tuple[int, int, int]] = [
        (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, out, 1),
        (os.POSIX_SPAWN_DUP2, out, 2),
        (os.POSIX_SPAWN_DUP2, sentinel, SENTINEL_FD),
    ]
    # After the dup2s (one of these numbers may be a source's by now; a closed one is
    # no error), never 0-3.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in close if fd > SENTINEL_FD]
    name = argv[0]
    if "/" not in name and env.get(b"PATH") == os.environb.get(b"PATH"):
        # The step's PATH is ours: glibc's posix_spawnp searches the one in our
        # environment, in the child, as exec does (~50 µs less than the lookup here).
        start, program = os.posix_spawnp, os.fsencode(name)
    else:
        start, program = os.posix_spawn, _program(name, env)
    pid = start(
        program,
        list(argv),
        env,  # bytes keys and values are accepted
        file_actions=actions,
        setsigdef=_RESTORED,
        setsid=True,
    )
    return Leader(pid)
