"""How many attempts fit in the open-file limit, and whether a spawn can have its fds.

Contract: :func:`attempt_capacity` may raise the soft ``RLIMIT_NOFILE`` (never past the
hard limit, never lowers it) and says how many attempts can run at once under it;
:func:`fds_available` opens and closes again ``count`` descriptors to see that a spawn
can have them now (it changes nothing); :func:`out_of_fds` tells a spawn failure that
waiting for a running attempt to end would cure (``EMFILE``/``ENFILE``) from any other.
The ``FDS_*`` counts are what the executor holds per attempt, and must follow it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource

from ..ports import ProcessResult

__all__ = [
    "FDS_PER_ATTEMPT",
    "FDS_PER_PUMPED_ATTEMPT",
    "FDS_RESERVE",
    "SPAWN_FDS",
    "attempt_capacity",
    "fds_available",
    "no_fds_left",
    "out_of_fds",
]

#: File descriptors one spawn may need at once (log, output pipe, sentinel pipe, the
#: exec error pipe of ``subprocess``, /dev/null for stdin, the pidfd, with room to spare).
SPAWN_FDS = 12
#: File descriptors a running attempt holds: the sentinel's read end, the pidfd and
#: its outputs file (planrun reads it back through its own fd) ...
FDS_PER_ATTEMPT = 3
#: ... and, when its output goes through a pump (secrets to mask, or a log cap), the
#: pump's pipe and the log file.
FDS_PER_PUMPED_ATTEMPT = FDS_PER_ATTEMPT + 2
#: File descriptors kept free for everything else: SQLite (database, WAL, shared
#: memory, temporary files), events.jsonl, the event loop, the watchdog's pipe, the
#: pidfds of escapees being stopped, and one spawn in progress.
FDS_RESERVE = 16 + SPAWN_FDS

_FD_ERRORS = (errno.EMFILE, errno.ENFILE)
_FD_ERROR_TEXTS = tuple(os.strerror(e) for e in _FD_ERRORS)


def attempt_capacity(wanted: int, pumped: bool) -> tuple[int, int]:
    """How many attempts (at most ``wanted``) fit in the open-file limit, and the limit.

    The soft ``RLIMIT_NOFILE`` is raised first as far as ``wanted`` attempts need, at
    most to the hard limit: not further, because steps inherit it and some programs
    misbehave with a huge soft limit (``select()``, closing every possible fd).
    """
    per_attempt = FDS_PER_PUMPED_ATTEMPT if pumped else FDS_PER_ATTEMPT
    in_use = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 16
    need = in_use + FDS_RESERVE + per_attempt * wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted, soft
    return max(1, min(wanted, (soft - in_use - FDS_RESERVE) // per_attempt)), soft


def fds_available(count: int) -> bool:
    """Can this process open ``count`` more file descriptors right now?"""
    opened: list[int] = []
    try:
        opened.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        while len(opened) < count:
            opened.append(os.dup(opened[0]))  # cheaper than an open, same cost in fds
    except OSError as exc:
        if exc.errno not in _FD_ERRORS:
            raise
        return False
    finally:
        _close(opened)
    return True


def _close(fds: list[int]) -> None:
    """Close ``fds`` (ascending: each ``dup`` takes the lowest free number, above the
    ones held), a run of consecutive numbers in one ``close_range`` call: usually they
    all are one run, and twelve ``close`` calls were half the check's cost."""
    start = 0
    for i in range(1, len(fds) + 1):
        if i == len(fds) or fds[i] != fds[i - 1] + 1:
            if i - start == 1:
                os.close(fds[start])
            else:
                os.closerange(fds[start], fds[i - 1] + 1)
            start = i


def out_of_fds(started: object) -> bool:
    """Did a spawn fail for want of file descriptors (so that waiting would help)?"""
    return (
        isinstance(started, ProcessResult)
        and started.error is not None
        and any(text in started.error for text in _FD_ERROR_TEXTS)
    )


def no_fds_left() -> ProcessResult:
    """The result of a spawn that cannot have its fds while nothing runs to free any."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ProcessResult(
        exit_code=None,
        error=f"cannot start: no file descriptors left (open-file limit {soft}; "
        "raise it with ulimit -n)",
    )
