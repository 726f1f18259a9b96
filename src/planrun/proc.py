"""Process identity from ``/proc``: is the process that owns a run still that process?
And which processes carry a planrun tag in their environment?

A pid alone is not an identity (pids are reused), so owners are recorded as pid plus
start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["boot_id", "environments", "is_same_process", "process_start_time"]


def environments() -> Iterator[tuple[int, list[bytes]]]:
    """``(pid, environment entries)`` of every process whose environment is readable
    (other users' processes are skipped unless we are root), this one excepted."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if b"PLANRUN_" in environ:  # cheap filter: most processes are not ours
            yield int(entry), environ.split(b"\0")


def boot_id() -> str | None:
    """This boot's id (changes on reboot: pids from before it mean nothing)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


def is_same_process(pid: int | None, start_time: int | None) -> bool:
    """True if ``pid`` is alive and is the process that started at ``start_time``.

    Without a recorded start time (no /proc when the run began) this degrades to "a
    process with that pid exists".
    """
    if pid is None:
        return False
    if start_time is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return process_start_time(pid) == start_time
