"""The files of one attempt, made so that a step cannot redirect or forge them.

- **The outputs file** (``$PLANRUN_OUTPUT``): planrun creates it before the step starts
  (``O_CREAT|O_EXCL|O_NOFOLLOW``, 0600) as ``<root>/<random>``: ``<root>`` is a private
  temp dir of the executor, mode 0300 (entries can be made and entered but not listed
  by an ordinary user), ``<random>`` 128 random bits. So a step cannot guess another
  attempt's file, nor plant it in advance. (A 0700 dir per attempt would protect no
  better, since the root is what hides the names, and costs 0.1-0.2 ms per attempt in
  mkdir/rmdir on ext4.)
  planrun keeps its own fd on the file (so its inode cannot be freed and reused) and
  reads the outputs through that fd, never by opening the path again, and only if the
  path still names that very inode: a FIFO, device, symlink, link or new file put in its
  place fails the attempt with the reason, and nothing a step does can block planrun.
  Each attempt also gets a random heredoc delimiter (``$PLANRUN_OUTPUT_DELIMITER``).
  This is not a wall between steps of one user: a hostile step can ``chmod`` the root
  or read a sibling's ``/proc/PID/environ``; the README says so.
- **The attempt log**: always a new file (``O_CREAT|O_EXCL|O_NOFOLLOW``), so a link
  planted at the next attempt's log path is an error naming that path, never followed.
  The one existing file accepted is a leftover of this very attempt number from a
  planrun killed before it recorded the attempt: a regular file of ours with one link.
- **The log cap** (``max_log_bytes``): :class:`CappedLog` keeps the first half of the
  cap, the last half (a ring buffer, so memory stays at most half the cap whatever the
  step writes) and one marker line saying how many bytes were dropped between them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import msgspec

from ..outputs import MAX_OUTPUT_BYTES, OutputError, parse_outputs, too_large

__all__ = [
    "AttemptFileError",
    "CappedLog",
    "LogFile",
    "OutputFile",
    "OutputsRoot",
    "drop_marker",
    "open_log",
    "write_all",
]

#: The root is writable and searchable by its owner, not listable (see the docstring).
ROOT_MODE = 0o300


class AttemptFileError(OSError):
    """An attempt's file could not be made or used safely (the message names it)."""


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


# --- the outputs file -----------------------------------------------------------------


class OutputFile(msgspec.Struct, frozen=True):
    """One attempt's ``$PLANRUN_OUTPUT``: where it is and which inode planrun made."""

    path: Path
    #: planrun's own read fd on the file it created (closed by :meth:`remove`).
    fd: int
    dev: int
    ino: int
    #: A random heredoc delimiter for this attempt (``$PLANRUN_OUTPUT_DELIMITER``).
    delimiter: str

    @property
    def env(self) -> dict[str, str]:
        """The environment entries that hand the file to the step."""
        return {"PLANRUN_OUTPUT": str(self.path), "PLANRUN_OUTPUT_DELIMITER": self.delimiter}

    def _check(self, st: os.stat_result) -> None:
        """Raise :class:`OutputError` unless ``st`` is the regular file we created."""
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(
                f"$PLANRUN_OUTPUT is {_kind(st.st_mode)} now, not the file planrun created: "
                "write outputs into it (>>), do not replace it"
            )
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or st.st_uid != os.geteuid():
            raise OutputError(
                "$PLANRUN_OUTPUT was replaced by another file: write outputs into the file "
                "planrun created (>>), do not move or link another file there"
            )

    def read(self) -> dict[str, str]:
        """The outputs the step wrote; :class:`OutputError` if the file cannot be used.

        The path is only ``lstat``-ed (never opened: a FIFO or device there cannot
        block or do anything); the data comes from planrun's own fd. A file the step
        deleted means no outputs.
        """
        try:
            self._check(os.lstat(self.path))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise OutputError(f"cannot read $PLANRUN_OUTPUT: {exc.strerror or exc}") from None
        try:
            # Measure first (the error states the real size) and never read more than
            # the limit: a step may have written gigabytes.
            size = os.fstat(self.fd).st_size
            if size > MAX_OUTPUT_BYTES:
                raise too_large(size)
            data = os.pread(self.fd, MAX_OUTPUT_BYTES + 1, 0) if size else b""
        except OSError as exc:
            raise OutputError(f"cannot read $PLANRUN_OUTPUT: {exc.strerror or exc}") from None
        return parse_outputs(data, delimiter=self.delimiter)

    def remove(self) -> None:
        """Close planrun's fd; delete the file (or whatever the step put in its
        place). Call once."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError:  # a directory the step made there
            shutil.rmtree(self.path, ignore_errors=True)


#: Memory-backed on Linux: see :func:`_outputs_parent`.
SHM = "/dev/shm"  # noqa: S108 - a private 0300 dir with random names is made inside


def _outputs_parent() -> str | None:
    """Where the outputs directory goes: ``$TMPDIR`` when it is set (the user chose it);
    else ``/dev/shm`` when usable — memory, so an output holding a secret never reaches
    a disk, and creating a file there costs microseconds where a new file on a busy
    disk costs up to a millisecond per attempt —; else (None) the system temp dir."""
    if explicit := os.environ.get("TMPDIR"):
        return explicit
    if os.path.isdir(SHM) and os.access(SHM, os.W_OK | os.X_OK):
        return SHM
    return None


class OutputsRoot:
    """The executor's private directory of outputs files, made on first use.

    ``on_created(path)`` is called once the directory exists (the executor has the
    watchdog remove it if planrun is killed before :meth:`close`)."""

    def __init__(self, on_created: Callable[[str], None] | None = None) -> None:
        self._root: Path | None = None
        self._on_created = on_created

    def create(self) -> OutputFile:
        """A new, empty outputs file for one attempt (raises ``OSError``)."""
        if self._root is None:
            root = Path(tempfile.mkdtemp(prefix="planrun-outputs-", dir=_outputs_parent()))
            os.chmod(root, ROOT_MODE)
            self._root = root
            if self._on_created is not None:
                self._on_created(str(root))
        # One getrandom() for both: 128 random bits for the name, 128 for the delimiter.
        noise = os.urandom(32)
        path = self._root / noise[:16].hex()
        # Read and write: planrun only reads, but O_RDONLY|O_CREAT would be unusual.
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        st = os.fstat(fd)
        delimiter = f"PLANRUN_EOF_{noise[16:].hex()}"
        return OutputFile(path, fd, st.st_dev, st.st_ino, delimiter)

    def close(self) -> None:
        """Remove the directory and everything left in it."""
        if self._root is None:
            return
        with contextlib.suppress(OSError):
            os.chmod(self._root, 0o700)  # rmtree must list it
        shutil.rmtree(self._root, ignore_errors=True)
        self._root = None


# --- the attempt log ------------------------------------------------------------------


class LogFile(msgspec.Struct, frozen=True):
    """An attempt's open log: its fd (write only) and path."""

    fd: int
    path: str


def open_log(path: str | None) -> LogFile:
    """Open an attempt's log for writing; :class:`AttemptFileError` naming the path if
    it cannot be made safely. ``None``: no log (output goes to ``/dev/null``)."""
    if path is None:
        return LogFile(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), os.devnull)
    new = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return LogFile(os.open(path, new, 0o600), path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AttemptFileError(
            f"cannot create the attempt's log {path}: {exc.strerror or exc}"
        ) from None
    return LogFile(_reopen_leftover(path), path)


def _reopen_leftover(path: str) -> int:
    """The fd of an existing log at ``path`` if it is a plain file of ours (a leftover
    of an attempt that a killed planrun did not get to record), else an error.

    Opened without following links or blocking (a FIFO must not stall planrun), then
    checked on the fd: a regular file, owned by us, with no other name (a hard link
    would write to a file outside the state dir).
    """
    refused = (
        f"refusing to write the attempt's log {path}: a file planrun did not make is "
        "there ({what}); remove it"
    )
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        why = {errno.ELOOP: "a symbolic link", errno.ENXIO: "a FIFO"}.get(
            exc.errno or 0, exc.strerror or str(exc)
        )
        raise AttemptFileError(refused.format(what=why)) from None
    st = os.fstat(fd)
    what: str | None = None
    if not stat.S_ISREG(st.st_mode):
        what = _kind(st.st_mode)
    elif st.st_uid != os.geteuid():
        what = "owned by another user"
    elif st.st_nlink != 1:
        what = f"a hard link ({st.st_nlink} names)"
    if what is not None:
        os.close(fd)
        raise AttemptFileError(refused.format(what=what))
    os.set_blocking(fd, True)
    return fd


def drop_marker(dropped: int, cap: int) -> bytes:
    """The line written where a capped log dropped ``dropped`` bytes."""
    return f"\n[planrun: {dropped} bytes dropped here (max_log_bytes is {cap})]\n".encode()


class CappedLog:
    """Writes a stream to ``fd`` keeping at most ``cap`` bytes of it: the first half as
    it comes, the last half at :meth:`close`, and between them (only if something was
    dropped) the :func:`drop_marker` line. Memory: at most ``cap - cap // 2`` bytes."""

    def __init__(self, fd: int, cap: int) -> None:
        self._fd = fd
        self._cap = cap
        self._head_left = cap // 2
        self._size = cap - cap // 2
        self._ring = bytearray()
        self._pos = 0  # once the ring is full: where its oldest byte is
        self.dropped = 0

    def write(self, data: bytes) -> None:
        """Take the next bytes of the stream."""
        if self._head_left:
            head = data[: self._head_left]
            write_all(self._fd, head)
            self._head_left -= len(head)
            data = data[len(head) :]
        if data:
            self._keep(data)

    def _keep(self, data: bytes) -> None:
        size = self._size
        if len(data) >= size:
            # The newest ``size`` bytes replace the whole ring.
            self.dropped += len(self._ring) + len(data) - size
            self._ring[:] = data[len(data) - size :]
            self._pos = 0
            return
        room = size - len(self._ring)
        if room:
            self._ring += data[:room]
            data = data[room:]
        if not data:
            return
        # The ring is full: overwrite its oldest bytes.
        self.dropped += len(data)
        end = self._pos + len(data)
        if end <= size:
            self._ring[self._pos : end] = data
        else:
            first = size - self._pos
            self._ring[self._pos :] = data[:first]
            self._ring[: end - size] = data[first:]
        self._pos = end % size

    def close(self) -> None:
        """Write the marker (if anything was dropped) and the tail; close ``fd``."""
        try:
            if self.dropped:
                write_all(self._fd, drop_marker(self.dropped, self._cap))
            view = memoryview(self._ring)
            write_all(self._fd, view[self._pos :])
            write_all(self._fd, view[: self._pos])
        finally:
            os.close(self._fd)
