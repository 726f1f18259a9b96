"""Read runs back from a state dir: for ``watch``, ``list``, ``show``, ``logs``,
``cancel`` and the monitor API, usually from another process than the writer.

Every read is one short statement in autocommit mode: no transaction stays open
between calls, so a watcher never pins the WAL or blocks the writer's checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec

from ..errors import NoRunStore
from ..events import Event, decode_event
from ..model import RunState
from ..records import AttemptRecord, RunRecord, StepRecord
from . import files, sql
from .connection import fetch_dicts, migrate, translated
from .rows import attempt_record, run_record, step_record


class _Named(msgspec.Struct):
    """A step of a stored plan, as far as its id."""

    id: str


__all__ = ["RunReader"]


class RunReader:
    """Read-only view of one state dir. Open with ``async with RunReader.open(dir)``."""

    def __init__(self, db: aiosqlite.Connection, state_dir: Path) -> None:
        self._db = db
        self.state_dir = state_dir

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, state_dir: str | os.PathLike[str]) -> AsyncIterator[RunReader]:
        """Open ``<state_dir>/runs.db``; :class:`NoRunStore` if there is no store there."""
        path = Path(state_dir) / "runs.db"
        if not await anyio.Path(path).exists():
            raise NoRunStore(str(path))
        # SQLite opens these by name, and a reader too may create the -shm and -wal:
        # never through a planted link.
        for name in ("runs.db", *files.DB_SIDE_FILES):
            files.check_not_link(Path(state_dir), [name])
        files.check_not_link(Path(state_dir), ["runs"], directory=True)
        with translated(f"opening {path}"):
            db = await aiosqlite.connect(path, isolation_level=None)
        try:
            with translated("setting up the connection"):
                await db.execute("PRAGMA busy_timeout=5000")
                await migrate(db)  # a store written by an older planrun
                await db.execute("PRAGMA query_only=ON")
            yield cls(db, Path(state_dir))
        finally:
            with anyio.CancelScope(shield=True):
                await db.close()

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """Make the reads inside one consistent snapshot (a short read transaction)."""
        with translated("reading the run store"):
            await self._db.execute("BEGIN")
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True), translated("reading the run store"):
                await self._db.execute("COMMIT")

    async def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with translated("reading the run store"):
            return await fetch_dicts(self._db, query, params)

    async def list_runs(
        self,
        *,
        state: RunState | str | None = None,
        plan_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered by state and plan id."""
        where, params = [], []
        if state is not None:
            where.append("r.state = ?")
            params.append(str(state))
        if plan_id is not None:
            where.append("r.plan_id = ?")
            params.append(plan_id)
        query = sql.SELECT_RUNS + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY r.started_at DESC, r.run_id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(str(int(limit)))
        return [run_record(row) for row in await self._rows(query, tuple(params))]

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None."""
        rows = await self._rows(sql.SELECT_RUNS + " WHERE r.run_id = ?", (run_id,))
        return run_record(rows[0]) if rows else None

    async def get_child_runs(self, run_id: str) -> list[RunRecord]:
        """The child runs the ``uses`` steps of ``run_id`` started, oldest first."""
        rows = await self._rows(sql.SELECT_CHILD_RUNS, (run_id,))
        return [run_record(row) for row in rows]

    async def get_plan(self, run_id: str) -> dict[str, Any] | None:
        """The plan ``run_id`` ran (masked), as builtins; None if not recorded."""
        rows = await self._rows(sql.SELECT_PLAN_JSON, (run_id,))
        if not rows or rows[0]["plan_json"] is None:
            return None
        plan: dict[str, Any] = msgspec.json.decode(rows[0]["plan_json"])
        return plan

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """The steps of a run in plan order, each with its attempts."""
        attempts: dict[str, list[AttemptRecord]] = {}
        for row in await self._rows(sql.SELECT_ATTEMPTS, (run_id,)):
            attempts.setdefault(row["step_id"], []).append(attempt_record(row))
        steps = await self._rows(sql.SELECT_STEPS, (run_id,))
        kinds = await self._handler_kinds(run_id)
        return [
            step_record(row, attempts.get(row["step_id"], []), kinds.get(row["step_id"]))
            for row in steps
        ]

    async def _handler_kinds(self, run_id: str) -> dict[str, str]:
        """The run handlers of run ``run_id``: step id -> its list (from its plan)."""
        rows = await self._rows(sql.SELECT_HANDLERS, (run_id,))
        text = rows[0]["handlers"] if rows else None
        if not text:
            return {}
        try:
            lists = msgspec.json.decode(text, type=dict[str, list[_Named]])
        except msgspec.MsgspecError:
            return {}
        return {step.id: kind for kind, steps in lists.items() for step in steps}

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """Events of a run with ``seq > after_seq``, in ``seq`` order."""
        return [decode_event(body) for body in await self.get_event_bodies(run_id, after_seq)]

    async def get_event_bodies(self, run_id: str, after_seq: int = 0) -> list[str]:
        """Like :meth:`get_events`, as the stored JSON text (for ``watch --json``)."""
        rows = await self._rows(sql.SELECT_EVENTS, (run_id, after_seq))
        return [str(row["body"]) for row in rows]
