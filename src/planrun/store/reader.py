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

from ..errors import StoreError
from ..events import Event, decode_event
from ..model import AttemptState, RunState, StepState
from ..records import AttemptRecord, RunRecord, StepRecord, duration_between
from .sqlite import _translated, migrate

__all__ = ["RunReader"]

_SELECT_RUNS = """
SELECT r.*, (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id
             AND s.state NOT IN ('pending', 'running')) AS steps_done
FROM runs r
"""


class RunReader:
    """Read-only view of one state dir. Open with ``async with RunReader.open(dir)``."""

    def __init__(self, db: aiosqlite.Connection, state_dir: Path) -> None:
        self._db = db
        self.state_dir = state_dir

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, state_dir: str | os.PathLike[str]) -> AsyncIterator[RunReader]:
        """Open ``<state_dir>/runs.db``; ``StoreError`` if there is no store there."""
        path = Path(state_dir) / "runs.db"
        if not await anyio.Path(path).exists():
            raise StoreError(
                f"no run store at {path}; pass --state-dir (or set PLANRUN_STATE_DIR) "
                "to where the run was started"
            )
        with _translated(f"opening {path}"):
            db = await aiosqlite.connect(path, isolation_level=None)
        try:
            with _translated("setting up the connection"):
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
        with _translated("reading the run store"):
            await self._db.execute("BEGIN")
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True), _translated("reading the run store"):
                await self._db.execute("COMMIT")

    async def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with _translated("reading the run store"):
            async with self._db.execute(query, params) as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

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
        query = _SELECT_RUNS + (" WHERE " + " AND ".join(where) if where else "")
        query += " ORDER BY r.started_at DESC, r.run_id DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(str(int(limit)))
        return [_run(row) for row in await self._rows(query, tuple(params))]

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run ``run_id``, or None."""
        rows = await self._rows(_SELECT_RUNS + " WHERE r.run_id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    async def get_steps(self, run_id: str) -> list[StepRecord]:
        """The steps of a run in plan order, each with its attempts."""
        attempts: dict[str, list[AttemptRecord]] = {}
        for row in await self._rows(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY step_id, attempt", (run_id,)
        ):
            attempts.setdefault(row["step_id"], []).append(_attempt(row))
        steps = await self._rows(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY position", (run_id,)
        )
        return [_step(row, attempts.get(row["step_id"], [])) for row in steps]

    async def get_events(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """Events of a run with ``seq > after_seq``, in ``seq`` order."""
        query = "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (run_id, after_seq)
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, int(limit))
        return [decode_event(row["body"]) for row in await self._rows(query, params)]

    async def get_event_bodies(self, run_id: str, after_seq: int = 0) -> list[str]:
        """Like :meth:`get_events`, as the stored JSON text (for ``watch --json``)."""
        rows = await self._rows(
            "SELECT body FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
        return [str(row["body"]) for row in rows]


def _run(row: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        plan_id=row["plan_id"],
        plan_path=row["plan_path"],
        state=RunState(row["state"]),
        variables=msgspec.json.decode(row["variables"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_sec=duration_between(row["started_at"], row["ended_at"]),
        exit_code=row["exit_code"],
        reason=row["reason"],
        owner_pid=row["owner_pid"],
        owner_start_time=row["owner_start_time"],
        owner_host=row["owner_host"],
        owner_kind=row["owner_kind"],
        owner_boot_id=row["owner_boot_id"],
        step_count=row["step_count"],
        steps_done=row["steps_done"],
        last_seq=row["last_seq"],
    )


def _attempt(row: dict[str, Any]) -> AttemptRecord:
    return AttemptRecord(
        attempt=row["attempt"],
        state=AttemptState(row["state"]),
        exit_code=row["exit_code"],
        pid=row["pid"],
        log_path=row["log_path"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_sec=row["duration_sec"],
        error=row["error"],
    )


def _step(row: dict[str, Any], attempts: list[AttemptRecord]) -> StepRecord:
    return StepRecord(
        step_id=row["step_id"],
        name=row["name"],
        position=row["position"],
        state=StepState(row["state"]),
        exit_code=row["exit_code"],
        reason=row["reason"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_sec=duration_between(row["started_at"], row["ended_at"]),
        attempts=attempts,
    )
