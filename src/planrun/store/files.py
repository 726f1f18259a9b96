"""The state dir's own files and directories, made and opened without following links.

Everything planrun creates inside a state dir (``runs/``, ``runs/<id>/``, its
``logs/``, ``events.jsonl``, ``runs.db``) is reached from the state dir one component
at a time through directory file descriptors, each opened with ``O_NOFOLLOW``: a
symbolic link planted anywhere below the state dir is refused (a
:class:`~planrun.errors.StoreError` naming it), never followed, so nothing is written
or chmodded outside the state dir. Modes are set with ``fchmod`` on the opened
descriptor, never through a path. The state dir itself is taken as given (the user
chose it; it may be a link to another disk).

SQLite opens ``runs.db-wal`` and ``runs.db-shm`` itself, by name: those are checked
with ``lstat`` just before the database is opened (a link is refused); SQLite gives no
way to close the window between that check and its own ``open``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import StoreError

__all__ = [
    "DB_SIDE_FILES",
    "append",
    "check_not_link",
    "dir_fd",
    "line_count",
    "open_file",
    "private_dir",
    "private_run_files",
    "private_store",
    "refusal",
    "remove_run_dir",
    "run_dir_names",
    "write_all",
]

#: Files next to runs.db that SQLite opens by name (never through a planted link).
DB_SIDE_FILES = ("runs.db-wal", "runs.db-shm", "runs.db-journal")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def refusal(path: Path, exc: OSError) -> StoreError:
    """The error for ``path`` that could not be opened safely (``exc`` says why)."""
    if exc.errno == errno.ELOOP:
        return StoreError(
            f"{path} is a symbolic link; planrun never follows links inside its state "
            "dir: remove the link (and find out what put it there)"
        )
    if exc.errno == errno.ENOTDIR:
        return StoreError(f"{path} is not a directory; remove it")
    if exc.errno == errno.EEXIST:
        return StoreError(f"{path} already exists; planrun creates it itself: remove it")
    if exc.errno == errno.ENXIO:
        return StoreError(f"{path} is not a regular file (a FIFO?); remove it")
    return StoreError(f"cannot use {path}: {exc.strerror or exc}")


def _why(exc: OSError, name: str, parent: int) -> OSError:
    """``exc``, or ELOOP if ``name`` is a link (``O_DIRECTORY`` reports a link to a
    directory as ENOTDIR, ``O_EXCL`` a link as EEXIST)."""
    try:
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return exc
    return OSError(errno.ELOOP, "is a symbolic link") if is_link else exc


@contextlib.contextmanager
def dir_fd(root: Path, parts: Sequence[str] = (), *, create: bool = False) -> Iterator[int]:
    """A descriptor of the directory ``root/parts...``, every part opened without
    following a link (``root`` as given). With ``create``, missing parts are made and
    every directory on the way, ``root`` included, is made private (0700 by
    ``fchmod``, whatever the umask)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise refusal(root, exc) from exc
    try:
        if create:
            os.fchmod(fd, 0o700)
        where = root
        for part in parts:
            where = where / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise refusal(where, _why(exc, part, fd)) from exc
            os.close(fd)
            fd = child
            if create:
                os.fchmod(fd, 0o700)
        yield fd
    finally:
        os.close(fd)


def private_dir(root: Path, parts: Sequence[str] = ()) -> None:
    """Make ``root/parts...`` (each 0700) without following a link."""
    with dir_fd(root, parts, create=True):
        pass


def open_file(
    root: Path,
    parts: Sequence[str],
    flags: int,
    *,
    create: bool = False,
    exclusive: bool = False,
) -> int:
    """A descriptor of the regular file ``root/parts...``, opened with ``flags`` and
    ``O_NOFOLLOW`` (and every directory on the way too). ``create``: made if missing,
    0600 by ``fchmod``; ``exclusive``: it must not exist yet (``O_EXCL``). A link, a
    FIFO, a device or a directory there is a ``StoreError``; opening never blocks.
    ``FileNotFoundError`` if it is missing and not ``create``."""
    *dirs, name = parts
    path = root.joinpath(*parts)
    extra = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    if create:
        extra |= os.O_CREAT | (os.O_EXCL if exclusive else 0)
    with dir_fd(root, dirs) as parent:
        try:
            fd = os.open(name, flags | extra, 0o600, dir_fd=parent)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise refusal(path, _why(exc, name, parent)) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path} is not a regular file; remove it")
    try:
        os.set_blocking(fd, True)
        if create:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_not_link(root: Path, parts: Sequence[str], *, directory: bool = False) -> None:
    """``StoreError`` if ``root/parts...`` exists and is not a regular file (with
    ``directory``: a directory), a link above all; nothing if it is missing."""
    *dirs, name = parts
    with dir_fd(root, dirs) as parent:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return
    path = root.joinpath(*parts)
    if stat.S_ISLNK(mode):
        raise refusal(path, OSError(errno.ELOOP, "is a symbolic link"))
    if directory and not stat.S_ISDIR(mode):
        raise StoreError(f"{path} is not a directory; remove it")
    if not directory and not stat.S_ISREG(mode):
        raise StoreError(f"{path} is not a regular file; remove it")


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_file(root: Path, parts: Sequence[str], data: bytes) -> None:
    """Write ``root/parts...`` atomically: a 0600 temporary file beside it, written and
    synced, then renamed over it (a reader sees the old or the new file, never part)."""
    *dirs, name = parts
    temporary = f".{name}.tmp"
    fd = open_file(root, [*dirs, temporary], os.O_WRONLY | os.O_TRUNC, create=True)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    with dir_fd(root, dirs) as parent:
        os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)


def _ignore_itself(root: Path) -> None:
    """``root/.gitignore`` of ``*`` (like pytest's cache), so a state dir in a git work
    tree never shows up as untracked. Never replaces an existing one (O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root / ".gitignore", flags, 0o600)
    except FileExistsError:
        return
    try:
        write_all(fd, b"# Created by planrun: its run store, ignored by git.\n*\n")
    finally:
        os.close(fd)


def private_store(root: Path) -> None:
    """The state dir (0700), its ``runs/`` (0700) and ``runs.db`` (0600), made or
    checked without following a link."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _ignore_itself(root)
    private_dir(root, ["runs"])
    _private_db(root)
    for name in DB_SIDE_FILES:
        check_not_link(root, [name])


def _private_db(root: Path) -> None:
    """``runs.db``, made 0600 if missing. One that is already a private regular file is
    only looked at, never opened: closing *any* descriptor of a file drops every POSIX
    lock this process holds on it, including the locks of SQLite connections already
    open here (another run's store, the dashboard's reader, a child run), and another
    process could then checkpoint and delete the WAL under them."""
    with dir_fd(root) as parent:
        try:
            found = os.stat("runs.db", dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            found = None
    if found is not None and stat.S_ISREG(found.st_mode) and stat.S_IMODE(found.st_mode) == 0o600:
        return
    os.close(open_file(root, ["runs.db"], os.O_RDWR, create=True))


def private_run_files(root: Path, run_id: str, *, new: bool) -> None:
    """A run's directories (0700) and events file (0600), whatever the umask, without
    following a link; ``new``: the events file must not exist yet."""
    private_dir(root, ["runs", run_id, "logs"])
    events = ["runs", run_id, "events.jsonl"]
    os.close(open_file(root, events, os.O_WRONLY, create=True, exclusive=new))


def line_count(root: Path, parts: Sequence[str]) -> int:
    """How many lines ``root/parts...`` has (0 if it is missing), never through a link."""
    try:
        fd = open_file(root, parts, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    with os.fdopen(fd, "rb") as f:
        return sum(1 for _ in f)


def append(root: Path, parts: Sequence[str], data: bytes) -> None:
    """Append ``data`` to ``root/parts...`` (made 0600 if missing), never through a link."""
    fd = open_file(root, parts, os.O_WRONLY | os.O_APPEND, create=True)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _run_name(run_id: str) -> str:
    """``run_id`` as one name inside ``runs/`` (never a path that leaves it)."""
    if not run_id or "/" in run_id or "\0" in run_id or run_id in {".", ".."}:
        raise StoreError(f"run id {run_id!r} cannot name a run directory")
    return run_id


def run_dir_names(root: Path) -> list[str]:
    """The directories (and links) in ``root/runs/``: one per run, normally."""
    with dir_fd(root, ["runs"]) as parent, os.scandir(parent) as entries:
        return [e.name for e in entries if e.is_dir(follow_symlinks=False) or e.is_symlink()]


def remove_run_dir(root: Path, run_id: str) -> bool:
    """Delete ``root/runs/<run_id>`` and everything in it, never following a link (a
    link there is removed itself, not its target); False if there was nothing."""
    name = _run_name(run_id)
    with dir_fd(root, ["runs"]) as parent:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(mode):
            # fd-based on Linux (shutil.rmtree.avoids_symlink_attacks): a link found
            # below is unlinked, never followed.
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
    return True
