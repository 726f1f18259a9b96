"""Deleting finished runs from the store (retention: :mod:`planrun.prune` decides which).

A *tree* is a run with its child runs (``uses`` steps), theirs, and so on: it is
deleted whole or not at all, never leaving a child without its parent.

Order, so that a crash at any point leaves no half-deleted run:

1. **Rows**: every row of the trees (``events``, ``attempts``, ``steps``, ``runs``) in
   one ``BEGIN IMMEDIATE`` transaction per batch of at most :data:`BATCH` trees. Inside
   it, each tree is checked again: one with a ``running`` run (a resume may have
   claimed it since it was chosen) is left alone. A crash before the commit deletes
   nothing (SQLite rolls the transaction back).
2. **Files**, after the commit: each run's ``runs/<run_id>/`` (its ``events.jsonl``
   and every attempt's log), never following a link. A crash here leaves directories
   of runs that no longer exist: nothing reads them (every command starts from the
   rows; ``list``, ``show``, ``resume`` do not see the run), and :func:`sweep` (the
   next prune's first step) removes them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from sqlite3 import Connection
from typing import Any

import msgspec

from ..errors import StoreError
from ..model import RunState
from . import files, sql
from .connection import immediate_sync
from .sqlite import SqliteStore

__all__ = ["BATCH", "candidates", "delete_trees", "sweep", "trees"]

_LOG = logging.getLogger("planrun")

#: Most trees deleted in one transaction: each transaction stays short, so the
#: recorders of running runs are never kept waiting long.
BATCH = 200

#: A tree: root id -> its runs' ids (the root first).
Trees = dict[str, list[str]]


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _rows(query: str, params: tuple[Any, ...], conn: Connection) -> list[dict[str, Any]]:
    cursor = conn.execute(query, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


async def candidates(store: SqliteStore, plan_id: str | None = None) -> list[dict[str, Any]]:
    """The top-level runs (of ``plan_id`` if given) as dicts: ``run_id``, ``plan_id``,
    ``state``, ``started_at``, ``ended_at`` and the owner's identity. A child run whose
    parent row is gone counts as top-level (else nothing could ever delete it)."""
    if plan_id is None:
        work = functools.partial(_rows, sql.SELECT_PRUNE_CANDIDATES, ())
    else:
        work = functools.partial(_rows, sql.SELECT_PRUNE_CANDIDATES_OF_PLAN, (plan_id,))
    return await store.call(work, "reading the runs to prune")


def _trees(roots: Sequence[str], conn: Connection) -> Trees:
    """The trees of ``roots`` that have no ``running`` run (in the order of ``roots``;
    roots the store does not have are left out)."""
    members: dict[str, list[tuple[str, str]]] = {}
    for root, run_id, state in conn.execute(sql.SELECT_RUN_TREES, (_json(list(roots)),)):
        members.setdefault(root, []).append((run_id, state))
    found: Trees = {}
    for root in roots:
        runs = members.get(root)
        if runs and all(state != RunState.RUNNING.value for _, state in runs):
            found[root] = [root, *(rid for rid, _ in runs if rid != root)]
    return found


async def trees(store: SqliteStore, roots: Sequence[str]) -> Trees:
    """What :func:`delete_trees` would delete now (read only)."""
    return await store.call(functools.partial(_trees, list(roots)), "reading run trees")


def _delete_rows(conn: Connection, run_ids: Sequence[str]) -> None:
    """Every row of ``run_ids``, inside the caller's transaction."""
    ids = _json(list(run_ids))
    for statement in sql.DELETE_RUN_ROWS:
        conn.execute(statement, (ids,))


def _delete_batch(roots: Sequence[str], conn: Connection) -> Trees:
    """One transaction: the rows of the trees of ``roots`` that have no running run."""
    with immediate_sync(conn):
        found = _trees(roots, conn)
        if found:
            _delete_rows(conn, [rid for runs in found.values() for rid in runs])
    return found


async def delete_trees(store: SqliteStore, roots: Sequence[str]) -> Trees:
    """Delete the trees of ``roots`` (rows, then files: see the module docstring);
    returns those deleted. A tree with a running run, or a root the store no longer
    has, is left out. A directory that cannot be removed is logged and left for
    :func:`sweep`."""
    deleted: Trees = {}
    for start in range(0, len(roots), BATCH):
        batch = roots[start : start + BATCH]
        done = await store.call(functools.partial(_delete_batch, batch), "deleting runs")
        deleted.update(done)
        _remove_dirs(store.state_dir, [rid for runs in done.values() for rid in runs])
    return deleted


def _remove_dirs(root: Path, run_ids: Sequence[str]) -> list[str]:
    """Remove each run's directory; the ids whose directory existed."""
    removed = []
    for run_id in run_ids:
        try:
            if files.remove_run_dir(root, run_id):
                removed.append(run_id)
        except (OSError, StoreError) as exc:
            _LOG.warning("could not remove the files of deleted run %s: %s", run_id, exc)
    return removed


def _orphans(root: Path, conn: Connection) -> list[str]:
    """The directories in ``runs/`` of no run in the store. Read inside a write
    transaction: a run being created makes its directory inside one (``create_run``),
    so none is half-made while this looks."""
    with immediate_sync(conn):
        names = files.run_dir_names(root)
        known = {row[0] for row in conn.execute(sql.SELECT_KNOWN_RUN_IDS, (_json(names),))}
    return [name for name in names if name not in known]


async def sweep(store: SqliteStore) -> list[str]:
    """Remove the directories of runs the store no longer has (left by a prune that
    was killed after its commit); returns their names."""
    orphans = await store.call(functools.partial(_orphans, store.state_dir), "sweeping")
    return _remove_dirs(store.state_dir, orphans)
