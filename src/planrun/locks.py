"""Run locks (``globals.lock``) held machine-wide: a kernel ``flock`` on a file in a
per-user lock directory. An adapter (file-system I/O); the API takes and releases them.

Why ``flock`` and not a row in the run store: the store belongs to one state dir, so
runs with another ``.planrun/`` (another working directory, ``--state-dir``) never saw
each other's locks. A ``flock`` is one per machine and frees itself when every holder
is gone (``kill -9``, the OOM killer): the kernel reclaims stale locks.

Layout::

    $PLANRUN_LOCK_DIR, else /tmp/planrun-<uid>/locks     (0700, owned by us)
        <sha256 of the lock key, 32 hex>.lock            (0600; never deleted)

The file holds the holder's details (JSON: run id, pid, process start time, host,
state dir, when) so a run that finds the lock taken can say who holds it. Lock files
are never unlinked: removing a file others may have open would let two runs lock two
different inodes of "the same" lock.

A lock's *key* is its name, plus (``{"name": ..., "path": ...}``) the canonical path it
names: absolute, symlinks resolved; with ``"resolve": "git"``, the git directory of the
repository the path is in (the main one's for a linked work tree), so every spelling of
one repository — ``.``, an absolute path, a symlink, a subdirectory, another work tree —
is the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from collections.abc import Mapping
from pathlib import Path

import msgspec

from .digest import sha256_hex
from .errors import StoreError
from .model import LockResolve
from .proc import is_same_process, process_start_time

__all__ = ["HeldLock", "LockHolder", "LockKey", "lock_dir", "resolve_key", "try_lock"]

#: Longest holder record read back (it is a few hundred bytes).
_MAX_INFO = 64 * 1024


def _default_parent() -> Path:
    # A fixed, well-known place (not $TMPDIR, which differs between processes): created
    # 0700 and used only if it is ours, opened without following symlinks.
    return Path(f"/tmp/planrun-{os.getuid()}")  # noqa: S108


class LockKey(msgspec.Struct, frozen=True):
    """What a lock excludes: ``name``, and ``path`` (canonical) when it names one."""

    name: str
    path: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: ``'safe-merge' on /repo/.git``."""
        return f"'{self.name}' on {self.path}" if self.path else f"'{self.name}'"

    @property
    def file_name(self) -> str:
        raw = json.dumps([self.name, self.path]).encode("utf-8", "surrogateescape")
        return sha256_hex(raw)[:32] + ".lock"


class LockHolder(msgspec.Struct, frozen=True):
    """Who holds (or held) a lock, as written in its lock file."""

    run_id: str
    pid: int
    start_time: int | None
    host: str
    state_dir: str
    acquired_at: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, state dir {self.state_dir})"

    def alive(self) -> bool:
        """Its process still runs (by pid *and* start time; another host counts as alive)."""
        if self.host != socket.gethostname():
            return True
        return is_same_process(self.pid, self.start_time)


def resolve_key(name: str, path: str | None, resolve: LockResolve, base: Path) -> LockKey:
    """The key of a lock named ``name`` on ``path`` (relative to ``base``).

    ``resolve=GIT``: the git directory of the repository ``path`` is in; a path in no
    repository falls back to the path itself (the plan's own checks then refuse it).
    """
    if path is None:
        return LockKey(name)
    canonical = Path(os.path.realpath(base / path))
    if resolve is LockResolve.GIT:
        git_dir = _git_common_dir(canonical)
        if git_dir is not None:
            canonical = git_dir
    return LockKey(name, str(canonical))


def _git_common_dir(path: Path) -> Path | None:
    """The git dir shared by every work tree of the repository ``path`` is in, found as
    git does (the nearest ``.git`` upwards) without running git; None outside any."""
    for directory in (path, *path.parents):
        dot_git = directory / ".git"
        try:
            if dot_git.is_dir():
                return Path(os.path.realpath(dot_git))
            if not dot_git.is_file():
                continue
            # A linked work tree (or submodule): ".git" says "gitdir: <its own git dir>",
            # whose "commondir" file points at the main repository's git dir.
            text = dot_git.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        if not text.startswith("gitdir:"):
            continue
        own = Path(os.path.realpath(directory / text[len("gitdir:") :].strip()))
        try:
            common = (own / "commondir").read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return own
        return Path(os.path.realpath(own / common.strip()))
    return None


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$PLANRUN_LOCK_DIR``, else ``/tmp/planrun-<uid>/locks``.

    Not ``$XDG_RUNTIME_DIR``: it is unset for cron jobs and some ssh sessions, and a
    lock must live in one place whatever the environment of the run taking it.
    """
    environ = os.environ if environ is None else environ
    explicit = environ.get("PLANRUN_LOCK_DIR")
    if explicit:
        return Path(os.path.abspath(explicit))
    return _default_parent() / "locks"


def _open_private_dir(path: Path, parent_fd: int | None) -> int:
    """Create (0700) and open directory ``path`` without following a symlink; refuse
    one that is not ours. ``parent_fd``: open ``path.name`` relative to it."""
    where = path.name if parent_fd is not None else str(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(where, 0o700, dir_fd=parent_fd)
    try:
        fd = os.open(
            where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
        )
    except OSError as exc:
        raise StoreError(
            f"cannot use the lock directory {path}: {exc.strerror} (a symlink or not a "
            "directory?); remove it or set PLANRUN_LOCK_DIR to a private directory"
        ) from exc
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        os.close(fd)
        raise StoreError(
            f"the lock directory {path} belongs to uid {info.st_uid}, not to you: "
            "set PLANRUN_LOCK_DIR to a private directory"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def _open_lock_dir(path: Path) -> int:
    """Open the lock directory (creating it and, for the default, its parent)."""
    try:
        if path.parent == _default_parent():
            parent = _open_private_dir(path.parent, None)
            try:
                return _open_private_dir(path, parent)
            finally:
                os.close(parent)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _open_private_dir(path, None)
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot create the lock directory {path}: {exc}") from exc


class HeldLock(msgspec.Struct):
    """A lock this process holds; ``release`` it (idempotent)."""

    key: LockKey
    fd: int | None

    def release(self) -> None:
        """Clear the holder record, then unlock and close (closing alone would unlock)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the flock


def _read_holder(fd: int) -> LockHolder | None:
    """The holder record in the lock file (None if empty or unreadable)."""
    try:
        data = os.pread(fd, _MAX_INFO, 0)
        raw = json.loads(data) if data else None
        if not isinstance(raw, dict):
            return None
        return LockHolder(
            run_id=str(raw["run_id"]),
            pid=int(raw["pid"]),
            start_time=None if raw.get("start_time") is None else int(raw["start_time"]),
            host=str(raw["host"]),
            state_dir=str(raw["state_dir"]),
            acquired_at=str(raw["acquired_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _open_lock_file(directory: Path, key: LockKey) -> int:
    """Open (creating, 0600) ``key``'s lock file: a regular file of ours, never a
    symlink, close-on-exec."""
    dir_fd = _open_lock_dir(directory)
    path = directory / key.file_name
    try:
        fd = os.open(
            key.file_name,
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {path}: {exc}") from exc
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        os.close(fd)
        raise StoreError(f"the lock file {path} is not a file of yours: remove it")
    return fd


def try_lock(
    key: LockKey, run_id: str, state_dir: Path, now: str, directory: Path | None = None
) -> tuple[HeldLock | None, LockHolder | None]:
    """Try once (never blocks) to take lock ``key`` for ``run_id``.

    Returns ``(held, reclaimed)`` when taken — ``reclaimed`` is a previous holder that
    died holding it (its record was never cleared) — or ``(None, holder)`` when another
    process holds it (``holder`` None if it has not written its record yet). The file
    descriptor is close-on-exec: steps never inherit (and so never keep) the lock.
    """
    fd = _open_lock_file(directory if directory is not None else lock_dir(), key)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            return None, holder
        previous = _read_holder(fd)
        reclaimed = previous if previous is not None and not previous.alive() else None
        pid = os.getpid()
        record = {
            "run_id": run_id,
            "pid": pid,
            "start_time": process_start_time(pid),
            "host": socket.gethostname(),
            "state_dir": str(state_dir),
            "acquired_at": now,
            "name": key.name,
            "path": key.path,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode("utf-8", "surrogateescape"), 0)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return HeldLock(key, fd), reclaimed
