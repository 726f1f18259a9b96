"""``WalSync``: at most one sync per interval, the rest pending until due."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from planrun.store.walsync import WalSync


@pytest.fixture
def wal(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db-wal"
    path.write_bytes(b"frames")
    return path


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The fds ``fdatasync`` was called on."""
    fds: list[int] = []
    monkeypatch.setattr(os, "fdatasync", fds.append)
    return fds


def test_a_sync_is_made_at_once_then_at_most_every_interval(wal: Path, synced: list[int]) -> None:
    paced = WalSync(wal, every=3600)
    paced.committed()  # the first commit: nothing synced yet, so now
    assert len(synced) == 1
    assert not _pending(paced)
    paced.committed()
    paced.committed()
    assert len(synced) == 1
    assert _pending(paced)
    assert 3500 < paced.due_in() <= 3600
    paced.sync()  # what the recorder does when it is due, or at the end
    assert len(synced) == 2
    assert not _pending(paced)
    assert os.fstat(synced[0]).st_ino == wal.stat().st_ino  # the WAL's own fd
    paced.close()


def test_a_sync_is_due_at_once_when_the_interval_has_passed(wal: Path, synced: list[int]) -> None:
    paced = WalSync(wal, every=0)
    paced.committed()
    paced.committed()
    assert len(synced) == 2
    assert paced.due_in() == 0
    paced.close()


def _pending(paced: WalSync) -> bool:
    return paced.pending  # (a call: mypy keeps no narrowing across it)
