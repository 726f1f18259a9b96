"""Crash detection: a run whose owner process is verifiably gone becomes ``crashed``.

"Verifiably" is the point: a live owner that is merely busy (a blocked event loop, a
slow disk) must never be declared dead, so the decision uses identity, not heartbeat
age — same host, and then a different boot id or no live process with the owner's pid
*and* start time. Runs owned by another host are left alone (nothing here can tell).
Every planrun command that reads runs calls :func:`reap_crashed` first.

:func:`sweep_leftovers` runs when a run starts: a step process that escaped both its
process group and the watchdog (``setsid`` and every fd closed, or a watchdog that was
itself killed) still carries its run's key ``PLANRUN_RUN_KEY`` (``RUN_ID@SCOPE``: the
scope names the state dir, so a run of another store with the same id is never taken
for one of ours; for the steps of a nested run, the outer runs' keys are in
``PLANRUN_RUN_TREE``); if the innermost of those runs this store knows is no longer
running, the process is killed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from .model import RunState
from .proc import is_gone, kill_all, run_chains, scope_of, split_key
from .records import RunRecord
from .store.reader import RunReader
from .store.sqlite import SqliteStore

__all__ = ["get_run", "list_runs", "owner_gone", "reap_crashed", "reap_in", "sweep_leftovers"]

_LOG = logging.getLogger("planrun")


async def sweep_leftovers(store: SqliteStore) -> list[int]:
    """Kill processes of this store's runs that are over (crashed, failed, ...).

    A process belongs to its own run and to every run it descends from (a planrun
    started inside a step: see ``proc.RUN_TREE``); the innermost of those this store
    knows decides. So the steps of a live nested run are left alone even if an outer
    run is over (the nested planrun, a step of that outer run, is killed instead, and
    its watchdog stops its steps). Runs still ``running`` with a live owner, and runs
    of other state dirs (another scope in their key, even with an id this store also
    has), are left alone. Returns the pids killed.
    """
    chains = _chains_in(scope_of(store.state_dir))
    if not chains:
        return []
    ids = {run_id for runs in chains.values() for run_id in runs}
    known = await store.run_states(ids)
    running = [rid for rid, state in known.items() if state is RunState.RUNNING]
    if running:
        gone = [
            run for run in await store.runs_in_state(RunState.RUNNING, running) if owner_gone(run)
        ]
        await _mark_crashed(store, gone)
        for run in gone:
            known[run.run_id] = RunState.CRASHED
    killed = kill_all(pid for pid, runs in chains.items() if _over(runs, known))
    if killed:
        _LOG.warning("killed %d leftover step process(es) of ended runs", len(killed))
    return killed


def _chains_in(scope: str) -> dict[int, list[str]]:
    """``proc.run_chains()`` as run ids of the store ``scope`` names: the other
    stores' runs dropped from each chain, processes with none of ours left out."""
    chains: dict[int, list[str]] = {}
    for pid, keys in run_chains().items():
        ours = [run_id for run_id, s in map(split_key, keys) if s == scope]
        if ours:
            chains[pid] = ours
    return chains


def _over(runs: list[str], known: dict[str, RunState]) -> bool:
    """True if the innermost of ``runs`` (outermost first) that this store knows has
    ended; False if none is known or it is still running."""
    innermost = next((rid for rid in reversed(runs) if rid in known), None)
    return innermost is not None and known[innermost] is not RunState.RUNNING


async def _mark_crashed(store: SqliteStore, gone: Iterable[RunRecord]) -> bool:
    """Mark each run of ``gone`` (owner checked dead) crashed; True if any was."""
    marked = False
    for run in gone:
        reason = f"the planrun process that ran it (pid {run.owner_pid}) is gone"
        marked |= await store.mark_crashed(run.run_id, reason)
    return marked


def owner_gone(run: RunRecord) -> bool:
    """True only if ``run`` is ``running`` and its owner is known to be dead."""
    return run.state is RunState.RUNNING and is_gone(
        run.owner_pid,
        run.owner_start_time,
        host=run.owner_host,
        owner_boot_id=run.owner_boot_id,
    )


async def reap_crashed(state_dir: str | os.PathLike[str], runs: Iterable[RunRecord]) -> bool:
    """Mark every run in ``runs`` whose owner is gone as ``crashed``; True if any was."""
    gone = [run for run in runs if owner_gone(run)]
    if not gone:
        return False
    async with SqliteStore.open(state_dir) as store:
        return await _mark_crashed(store, gone)


async def reap_in(store: SqliteStore, runs: Iterable[RunRecord]) -> bool:
    """:func:`reap_crashed` through a store the caller has open."""
    return await _mark_crashed(store, [run for run in runs if owner_gone(run)])


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
    trigger: str | None = None,
) -> list[RunRecord]:
    """``reader.list_runs``, after marking crashed the listed runs whose owner is gone."""
    runs = await reader.list_runs(state=state, plan_id=plan_id, limit=limit, trigger=trigger)
    if await reap_crashed(reader.state_dir, runs):
        runs = await reader.list_runs(state=state, plan_id=plan_id, limit=limit, trigger=trigger)
    return runs
