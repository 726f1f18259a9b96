"""Retention: delete finished runs with their logs and events (``planrun prune``, and
``planrun serve`` after each run of a plan with ``"retention"``).

:mod:`planrun.retention` decides which runs (pure); :mod:`planrun.store.prune` deletes
them, rows first and then files, whole trees (a run and its child runs) at a time.
A ``running`` run is never deleted; one whose owner process is verifiably gone is
first marked ``crashed`` (as ``list`` does: :mod:`planrun.crash`), and is then a
finished run like any other.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import msgspec

from . import crash
from .model import RunState
from .model_triggers import Retention
from .paths import state_dir_or_default
from .retention import Candidate, Policy, age_sec, policy_of, select
from .store import prune as store_prune
from .store.sqlite import SqliteStore

__all__ = ["PruneResult", "PrunedRun", "apply_retention", "prune"]

StateDir = str | os.PathLike[str] | None


class PrunedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run deleted (or, in a dry run, to be deleted), with its child runs."""

    run_id: str
    plan_id: str
    state: RunState
    started_at: str
    ended_at: str | None
    age_sec: float
    child_run_ids: list[str]


class PruneResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a prune did: ``runs`` deleted (``dry_run``: would delete), newest first,
    and ``swept``: directories of runs deleted earlier that a killed prune left."""

    dry_run: bool
    runs: list[PrunedRun]
    swept: list[str]

    @property
    def run_ids(self) -> list[str]:
        """Every run id deleted: each run's, then its child runs'."""
        return [rid for run in self.runs for rid in (run.run_id, *run.child_run_ids)]


async def prune(
    policy: Policy, *, now: datetime, state_dir: StateDir = None, dry_run: bool = False
) -> PruneResult:
    """Delete the finished runs ``policy`` selects at ``now`` (see
    :func:`planrun.retention.select`) from ``state_dir``'s store; nothing to do
    where no run was ever stored. ``UsageError`` if the policy sets no limit."""
    select([], policy, now)  # the policy's own check, before any I/O
    root = state_dir_or_default(state_dir)
    if not (root / "runs.db").exists():
        return PruneResult(dry_run=dry_run, runs=[], swept=[])
    async with SqliteStore.open(root) as store:
        return await prune_store(store, policy, now=now, dry_run=dry_run)


async def prune_store(
    store: SqliteStore,
    policy: Policy,
    *,
    now: datetime,
    dry_run: bool = False,
    sweep: bool = True,
) -> PruneResult:
    """:func:`prune` on a store the caller has open (``sweep=False``: without first
    removing what an interrupted prune left)."""
    swept = await store_prune.sweep(store) if sweep and not dry_run else []
    runs = await _candidates(store, policy.plan_id)
    chosen = sorted(select(runs, policy, now), key=lambda r: (r.started_at, r.run_id), reverse=True)
    ids = [run.run_id for run in chosen]
    if dry_run:
        trees = await store_prune.trees(store, ids)
    else:
        trees = await store_prune.delete_trees(store, ids)
    pruned = [
        PrunedRun(
            run_id=run.run_id,
            plan_id=run.plan_id,
            state=run.state,
            started_at=run.started_at,
            ended_at=run.ended_at,
            age_sec=age_sec(run, now),
            child_run_ids=trees[run.run_id][1:],
        )
        for run in chosen
        if run.run_id in trees
    ]
    return PruneResult(dry_run=dry_run, runs=pruned, swept=swept)


async def _candidates(store: SqliteStore, plan_id: str | None) -> list[Candidate]:
    """The store's top-level runs, after marking crashed the running ones whose owner
    is verifiably gone."""
    rows = await store_prune.candidates(store, plan_id)
    running = [row["run_id"] for row in rows if row["state"] == RunState.RUNNING.value]
    if running and await crash.reap_in(store, await store.runs_in_state(RunState.RUNNING, running)):
        rows = await store_prune.candidates(store, plan_id)
    return [msgspec.convert(row, Candidate) for row in rows]


async def apply_retention(
    state_dir_or_store: str | os.PathLike[str] | SqliteStore,
    plan_id: str,
    retention: Retention,
    *,
    now: datetime,
) -> list[str]:
    """Apply a plan's ``"retention": {"days": D, "keep_last": N}`` to its runs at
    ``now`` (an aware datetime): delete its finished runs older than D days except its
    newest N finished ones. Returns the run ids deleted (child runs included); [] when
    the retention sets neither field. Takes a state dir, or a store already open.
    The directories an interrupted prune left are removed on the first call per state
    dir in a process. Raises ``StoreError`` (a ``PlanrunError``) if the store fails."""
    if retention.days is None and retention.keep_last is None:
        return []
    policy = policy_of(plan_id, retention)
    if isinstance(state_dir_or_store, SqliteStore):
        return await _apply(state_dir_or_store, policy, now)
    root = state_dir_or_default(state_dir_or_store)
    if not (root / "runs.db").exists():
        return []
    async with SqliteStore.open(root) as store:
        return await _apply(store, policy, now)


async def _apply(store: SqliteStore, policy: Policy, now: datetime) -> list[str]:
    # The leftovers of an interrupted prune are swept once per store and process:
    # this runs after every run of a plan, and a sweep lists every run's directory.
    sweep = store.state_dir not in _SWEPT
    _SWEPT.add(store.state_dir)
    return (await prune_store(store, policy, now=now, sweep=sweep)).run_ids


#: The state dirs :func:`apply_retention` has swept in this process.
_SWEPT: set[Path] = set()
