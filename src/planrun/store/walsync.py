"""The ``full`` durability of a run's event batches: the WAL synced at most every
``SYNC_EVERY_SEC``, not at every commit.

Why: on the 2-core machine an ``fsync`` costs 0.3-2.6 ms, and a run of short steps
commits a batch every millisecond or two. Syncing at each commit (SQLite's
``synchronous=FULL``) made a 500-step chain ~12% slower, although the sync runs on
the store's thread and no step waits for it: the flushes slow the whole machine down
(measured: a loop of ``posix_spawn`` + wait ran 15% slower beside a thread doing
``fdatasync``). Syncing every 50 ms measured the same as not syncing at all.

Contract: the recorder commits each batch with ``synchronous=NORMAL`` (the commit
survives a crash of planrun at once, SIGKILL included, and other processes see it at
once), then calls :meth:`WalSync.committed` on the store's worker thread, which
``fdatasync``-s the WAL if the last sync is ``SYNC_EVERY_SEC`` old. Otherwise the
sync is *pending*, and the recorder calls :meth:`WalSync.sync` (worker thread again)
when it is due (:meth:`WalSync.due_in`) or when its stream ends, whichever is first.
So every committed event is on disk at most ``SYNC_EVERY_SEC`` (plus one ``fsync``)
after its commit, and a run's last event before its run ends. One ``fdatasync`` of
the WAL syncs every frame written so far, which is what ``synchronous=FULL`` does at
each commit. Every other transaction of the store stays ``synchronous=FULL``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["SYNC_EVERY_SEC", "WalSync"]

#: Longest a committed batch of a run's events waits for its ``fsync``.
SYNC_EVERY_SEC = 0.05


class WalSync:
    """Paced syncs of one database's WAL (see the module's contract)."""

    def __init__(self, wal: Path, every: float = SYNC_EVERY_SEC) -> None:
        self._wal = wal
        self._every = every
        self._fd: int | None = None
        self._synced_at = -float("inf")
        #: A batch was committed since the last sync.
        self.pending = False

    def committed(self) -> None:
        """After a batch's commit (worker thread): sync now if one is due."""
        self.pending = True
        if time.monotonic() - self._synced_at >= self._every:
            self.sync()

    def sync(self) -> None:
        """``fdatasync`` the WAL now (worker thread; ``OSError`` if it cannot)."""
        if self._fd is None:
            # Opened once a commit has made the WAL, which lasts while the store's
            # connection is open (SQLite deletes it only when the last one closes).
            self._fd = os.open(self._wal, os.O_RDONLY | os.O_CLOEXEC)
        os.fdatasync(self._fd)
        self._synced_at = time.monotonic()
        self.pending = False

    def due_in(self) -> float:
        """Seconds until the pending sync is due (0: now)."""
        return max(0.0, self._synced_at + self._every - time.monotonic())

    def close(self) -> None:
        """Close the WAL's descriptor (the recorder has made its last sync)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
