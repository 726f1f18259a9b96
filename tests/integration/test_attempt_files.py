"""The attempt's files on a real file system: ``CappedLog`` keeps exactly the head, a
marker and the tail whatever the write sizes; ``OutputsRoot`` makes unguessable,
private outputs files and refuses what a step put in their place; ``open_log`` never
reuses a planted file."""

from __future__ import annotations

import os
import random
import re
import stat
from pathlib import Path

import pytest

from planrun.executors.attempt_files import (
    AttemptFileError,
    CappedLog,
    OutputsRoot,
    drop_marker,
    open_log,
)
from planrun.outputs import OutputError


def capped(tmp_path: Path, cap: int, chunks: list[bytes]) -> bytes:
    path = tmp_path / "log"
    log = CappedLog(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), cap)
    for chunk in chunks:
        log.write(chunk)
    log.close()
    return path.read_bytes()


def expected(data: bytes, cap: int) -> bytes:
    if len(data) <= cap:
        return data
    return (
        data[: cap // 2] + drop_marker(len(data) - cap, cap) + data[len(data) - (cap - cap // 2) :]
    )


@pytest.mark.parametrize("cap", [1, 2, 3, 10, 101, 4096])
def test_capped_log_is_head_marker_tail_for_any_chunking(tmp_path: Path, cap: int) -> None:
    """For random data cut into random chunks (empty, tiny, larger than the cap), the
    log is the first ``cap // 2`` bytes, the marker with the dropped count, and the last
    ``cap - cap // 2`` bytes; under the cap, the data itself."""
    rng = random.Random(cap)
    for trial in range(60):
        size = rng.choice([0, 1, cap - 1, cap, cap + 1, rng.randrange(0, 5 * cap + 50)])
        size = max(size, 0)
        data = bytes(rng.randrange(256) for _ in range(size))
        chunks, pos = [], 0
        while pos < len(data):
            n = rng.choice([0, 1, 2, rng.randrange(1, 2 * cap + 3)])
            chunks.append(data[pos : pos + n])
            pos += n
        directory = tmp_path / str(trial)
        directory.mkdir()
        assert capped(directory, cap, chunks) == expected(data, cap), (size, len(chunks))


def test_capped_log_memory_is_bounded_by_half_the_cap(tmp_path: Path) -> None:
    """However much is written, the ring never holds more than the tail's size."""
    cap = 1000
    log = CappedLog(os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT, 0o600), cap)
    for _ in range(500):
        log.write(b"z" * 777)
        assert len(log._ring) <= cap - cap // 2
    log.close()


def test_outputs_files_are_new_private_and_unguessable() -> None:
    """Each outputs file is an empty 0600 file named by 32 hex digits in a 0300 root;
    delimiters differ; ``close`` removes everything."""
    root = OutputsRoot()
    try:
        a, b = root.create(), root.create()
        for f in (a, b):
            assert f.path.stat().st_size == 0
            assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
            assert re.fullmatch("[0-9a-f]{32}", f.path.name)
            assert stat.S_IMODE(f.path.parent.stat().st_mode) == 0o300
        assert a.path != b.path
        assert a.delimiter != b.delimiter
        assert a.path.parent == b.path.parent
        top = a.path.parent
    finally:
        root.close()
    assert not top.exists()


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        pytest.param(lambda p, t: os.symlink(t, p), "is a symbolic link now", id="symlink"),
        pytest.param(lambda p, t: os.mkfifo(p), "is a FIFO now", id="fifo"),
        pytest.param(lambda p, t: os.mkdir(p), "is a directory now", id="directory"),
        pytest.param(lambda p, t: os.link(t, p), "was replaced by another file", id="hard-link"),
        pytest.param(lambda p, t: Path(p).write_text("k=new\n"), "was replaced", id="new-file"),
    ],
)
def test_a_replaced_outputs_file_is_refused(
    tmp_path: Path, replace: object, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever takes the place of the outputs file, reading it fails with the reason
    (and never blocks); the file the link points to is untouched."""
    # An explicit $TMPDIR keeps the outputs dir on tmp_path's file system (not in
    # /dev/shm), so the hard link below can be made.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    target = tmp_path / "target"
    target.write_text("k=stolen\n")
    root = OutputsRoot()
    try:
        f = root.create()
        os.unlink(f.path)
        assert callable(replace)
        replace(str(f.path), str(target))
        with pytest.raises(OutputError, match=message):
            f.read()
        f.remove()
        assert not os.path.lexists(f.path)
    finally:
        root.close()
    assert target.read_text() == "k=stolen\n"


def test_outputs_written_in_place_are_read_and_a_deleted_file_means_none() -> None:
    """Appending to the file works; deleting it means no outputs, not an error."""
    root = OutputsRoot()
    try:
        f = root.create()
        with open(f.path, "a") as out:
            out.write(f"k=v\nn<<{f.delimiter}\nEOF\n{f.delimiter}\n")
        assert f.read() == {"k": "v", "n": "EOF"}
        os.unlink(f.path)
        assert f.read() == {}
    finally:
        root.close()


def test_open_log_creates_a_new_file_and_refuses_links(tmp_path: Path) -> None:
    """A new log is created 0600; a symlink, FIFO or hard link at the path is refused
    naming it; a plain leftover file of ours (a killed planrun's) is appended to."""
    fresh = open_log(str(tmp_path / "new.log"))
    os.close(fresh.fd)
    assert stat.S_IMODE((tmp_path / "new.log").stat().st_mode) == 0o600
    target = tmp_path / "target"
    target.write_text("keep\n")
    os.symlink(target, tmp_path / "sym.log")
    os.mkfifo(tmp_path / "fifo.log")
    os.link(target, tmp_path / "hard.log")
    for name, what in (("sym", "a symbolic link"), ("fifo", "a FIFO"), ("hard", "a hard link")):
        path = str(tmp_path / f"{name}.log")
        with pytest.raises(AttemptFileError, match=what) as info:
            open_log(path)
        assert path in str(info.value)
    assert target.read_text() == "keep\n"
    (tmp_path / "left.log").write_text("before\n")
    left = open_log(str(tmp_path / "left.log"))
    os.write(left.fd, b"after\n")
    os.close(left.fd)
    assert (tmp_path / "left.log").read_text() == "before\nafter\n"


def test_the_outputs_dir_is_in_tmpdir_when_set_else_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit $TMPDIR holds the outputs dir; without one it goes to /dev/shm when
    that is usable (memory: an output holding a secret never reaches a disk)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    root = OutputsRoot()
    try:
        assert root.create().path.parent.parent == tmp_path
    finally:
        root.close()
    monkeypatch.delenv("TMPDIR")
    if not (os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK)):
        pytest.skip("no usable /dev/shm here")
    root = OutputsRoot()
    try:
        assert root.create().path.parent.parent == Path("/dev/shm")
    finally:
        root.close()
