"""Process identity from ``/proc``: is the process that owns a run still that process?
And which processes carry a planrun tag in their environment (and so belong to which
runs, nested runs included: see :data:`RUN_TREE`)?

A pid alone is not an identity (pids are reused), so owners are recorded as pid plus
start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot), host and boot id;
:func:`is_gone` is the one place that decides from those that an owner is dead, and
:func:`kill_all` the one way crash handling signals the processes it found.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from .digest import sha256_hex

__all__ = [
    "RUN_KEY",
    "RUN_TREE",
    "boot_id",
    "child_tree",
    "environments",
    "is_gone",
    "is_same_process",
    "kill_all",
    "process_start_time",
    "run_chains",
    "run_key",
    "runs_of",
    "scope_of",
    "split_key",
    "tree_of",
]


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


def is_gone(
    pid: int | None, start_time: int | None, *, host: str, owner_boot_id: str | None
) -> bool:
    """True only if the process recorded as ``pid`` started at ``start_time`` on
    ``host`` during boot ``owner_boot_id`` is verifiably dead: same host, and then a
    different boot id, or no live process with that pid *and* start time. A process
    of another host is never gone (nothing here can tell); a busy one is not either.
    """
    if host != socket.gethostname():
        return False
    current = boot_id()
    if owner_boot_id and current and owner_boot_id != current:
        return True  # the machine rebooted since
    return not is_same_process(pid, start_time)


def kill_all(pids: Iterable[int], sig: signal.Signals = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to each of ``pids``; returns those it reached (a process already
    gone, or one this user may not signal, is skipped)."""
    reached = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            reached.append(pid)
    return reached


#: The environment entry that names a step process's run across state dirs:
#: ``RUN_ID@SCOPE``, where SCOPE stands for the run's state dir (:func:`run_key`).
#: Run ids are unique only within one store; two state dirs may both have a live run
#: ``nightly``, and cleaning up one must never touch the other's processes.
RUN_KEY = "PLANRUN_RUN_KEY"

#: The environment entry that places a process in the tree of runs: every attempt it
#: descends from, outermost first, as ``RUN_KEY/step/attempt`` joined by ``:``. A step
#: inherits its planrun's value and appends its own attempt, so a planrun started
#: inside a step (a nested run) and everything it starts still name the outer run.
RUN_TREE = "PLANRUN_RUN_TREE"
#: A bound on the inherited chain (an environment entry is not free): deeper
#: nesting keeps the outermost entries, which are the ones that must not be lost.
MAX_TREE_DEPTH = 64
_RUN_KEY_TAG = RUN_KEY.encode() + b"="
_TREE_TAG = RUN_TREE.encode() + b"="
_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_SCOPE_LEN = 12
_KEY = rf"{_ID}@[0-9a-f]{{{_SCOPE_LEN}}}"
_ATTEMPT = re.compile(rf"{_KEY}/{_ID}/[0-9]{{1,9}}")


def scope_of(state_dir: str | os.PathLike[str]) -> str:
    """The scope of a state dir in run keys: a short hash of its real path."""
    real = os.path.realpath(state_dir)
    return sha256_hex(os.fsencode(real))[:_SCOPE_LEN]


def run_key(run_id: str, state_dir: str | os.PathLike[str]) -> str:
    """``RUN_ID@SCOPE``: the run ``run_id`` of the store in ``state_dir``, as its step
    processes carry it (``PLANRUN_RUN_KEY``, ``PLANRUN_RUN_TREE``)."""
    return f"{run_id}@{scope_of(state_dir)}"


def split_key(key: str) -> tuple[str, str]:
    """``(run_id, scope)`` of a run key."""
    run_id, _, scope = key.rpartition("@")
    return run_id, scope


def child_tree(inherited: str | None, attempt: str) -> str:
    """The ``PLANRUN_RUN_TREE`` value of a step: ``inherited`` (this planrun's own
    value, if any; malformed entries dropped) with ``attempt`` (``run/step/n``) added."""
    chain = [c for c in (inherited or "").split(":") if _ATTEMPT.fullmatch(c)]
    return ":".join([*chain[: MAX_TREE_DEPTH - 1], attempt])


def tree_of(environ: Iterable[bytes]) -> list[str]:
    """The attempts (``RUN_KEY/step/n``) a process descends from, outermost first."""
    for item in environ:
        if item.startswith(_TREE_TAG):
            text = item[len(_TREE_TAG) :].decode(errors="replace")
            return [c for c in text.split(":") if _ATTEMPT.fullmatch(c)]
    return []


def runs_of(environ: Iterable[bytes]) -> list[str]:
    """The run keys (``RUN_ID@SCOPE``) a process belongs to, outermost first: those of
    its tree and its ``PLANRUN_RUN_KEY`` (its own run: the last one)."""
    entries = list(environ)
    runs = [c.partition("/")[0] for c in tree_of(entries)]
    for item in entries:
        if item.startswith(_RUN_KEY_TAG):
            runs.append(item[len(_RUN_KEY_TAG) :].decode(errors="replace"))
    return list(dict.fromkeys(runs))  # in order, each once


def run_chains() -> dict[int, list[str]]:
    """Every live tagged process's run keys, outermost first, by pid (a ``/proc``
    scan)."""
    return {pid: runs for pid, environ in environments() if (runs := runs_of(environ))}
