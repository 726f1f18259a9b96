"""Crash detection: a run whose owner process is verifiably gone becomes ``crashed``.

"Verifiably" is the point: a live owner that is merely busy (a blocked event loop, a
slow disk) must never be declared dead, so the decision uses identity, not heartbeat
age — same host, and then a different boot id or no live process with the owner's pid
*and* start time. Runs owned by another host are left alone (nothing here can tell).
Every planrun command that reads runs calls :func:`reap_crashed` first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from .model import RunState
from .proc import boot_id, is_same_process
from .records import RunRecord
from .store.reader import RunReader
from .store.sqlite import SqliteStore

__all__ = ["get_run", "list_runs", "owner_gone", "reap_crashed"]


def owner_gone(run: RunRecord) -> bool:
    """True only if ``run`` is ``running`` and its owner is known to be dead."""
    if run.state is not RunState.RUNNING or run.owner_host != socket.gethostname():
        return False
    current = boot_id()
    if run.owner_boot_id and current and run.owner_boot_id != current:
        return True  # the machine rebooted since
    return not is_same_process(run.owner_pid, run.owner_start_time)


async def reap_crashed(state_dir: str | os.PathLike[str], runs: Iterable[RunRecord]) -> bool:
    """Mark every run in ``runs`` whose owner is gone as ``crashed``; True if any was."""
    gone = [run for run in runs if owner_gone(run)]
    if not gone:
        return False
    marked = False
    async with SqliteStore.open(state_dir) as store:
        for run in gone:
            reason = f"the planrun process that ran it (pid {run.owner_pid}) is gone"
            marked |= await store.mark_crashed(run.run_id, reason)
    return marked


async def get_run(reader: RunReader, run_id: str) -> RunRecord | None:
    """``reader.get_run``, after marking the run crashed if its owner is gone."""
    run = await reader.get_run(run_id)
    if run is not None and await reap_crashed(reader.state_dir, [run]):
        run = await reader.get_run(run_id)
    return run


async def list_runs(
    reader: RunReader,
    *,
    state: RunState | str | None = None,
    plan_id: str | None = None,
    limit: int | None = None,
) -> list[RunRecord]:
    """``reader.list_runs``, after marking crashed the listed runs whose owner is gone."""
    runs = await reader.list_runs(state=state, plan_id=plan_id, limit=limit)
    if await reap_crashed(reader.state_dir, runs):
        runs = await reader.list_runs(state=state, plan_id=plan_id, limit=limit)
    return runs
