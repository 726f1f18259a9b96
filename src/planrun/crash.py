"""Crash detection: a run whose owner process is verifiably gone becomes ``crashed``.

"Verifiably" is the point: a live owner that is merely busy (a blocked event loop, a
slow disk) must never be declared dead, so the decision uses identity, not heartbeat
age — same host, and then a different boot id or no live process with the owner's pid
*and* start time. Runs owned by another host are left alone (nothing here can tell).
Every planrun command that reads runs calls :func:`reap_crashed` first.

:func:`sweep_leftovers` runs when a run starts: a step process that escaped both its
process group and the watchdog (``setsid`` and every fd closed, or a watchdog that was
itself killed) still carries its run's ``PLANRUN_RUN_ID``; if that run is in this
store and no longer running, the process is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterable

from .model import RunState
from .proc import boot_id, environments, is_same_process
from .records import RunRecord
from .store.reader import RunReader
from .store.sqlite import SqliteStore, fetch_dicts

__all__ = ["get_run", "list_runs", "owner_gone", "reap_crashed", "sweep_leftovers", "tagged_runs"]

_LOG = logging.getLogger("planrun")
_TAG = b"PLANRUN_RUN_ID="


def tagged_runs() -> dict[str, list[int]]:
    """Live processes carrying a ``PLANRUN_RUN_ID`` tag, by run id (a ``/proc`` scan)."""
    found: dict[str, list[int]] = {}
    for pid, environ in environments():
        for item in environ:
            if item.startswith(_TAG):
                run_id = item[len(_TAG) :].decode(errors="replace")
                found.setdefault(run_id, []).append(pid)
    return found


async def sweep_leftovers(store: SqliteStore) -> list[int]:
    """Kill processes of this store's runs that are over (crashed, failed, ...).

    Runs still ``running`` with a live owner, and run ids this store does not know
    (another state dir's), are left alone. Returns the pids killed.
    """
    tagged = tagged_runs()
    if not tagged:
        return []
    marks = ",".join("?" * len(tagged))
    rows = await fetch_dicts(
        store.db,
        f"SELECT run_id, state FROM runs WHERE run_id IN ({marks})",  # noqa: S608 - only ?s
        tuple(tagged),
    )
    ended = [row["run_id"] for row in rows if row["state"] != RunState.RUNNING.value]
    running = [row["run_id"] for row in rows if row["state"] == RunState.RUNNING.value]
    if running:
        async with RunReader.open(store.state_dir) as reader:
            records = [run for rid in running if (run := await reader.get_run(rid)) is not None]
        gone = [run for run in records if owner_gone(run)]
        await _mark_crashed(store, gone)
        ended += [run.run_id for run in gone]
    killed = []
    for run_id in ended:
        for pid in tagged[run_id]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    if killed:
        _LOG.warning("killed %d leftover step process(es) of ended runs", len(killed))
    return killed


async def _mark_crashed(store: SqliteStore, gone: Iterable[RunRecord]) -> bool:
    """Mark each run of ``gone`` (owner checked dead) crashed; True if any was."""
    marked = False
    for run in gone:
        reason = f"the planrun process that ran it (pid {run.owner_pid}) is gone"
        marked |= await store.mark_crashed(run.run_id, reason)
    return marked


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
    async with SqliteStore.open(state_dir) as store:
        return await _mark_crashed(store, gone)


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
