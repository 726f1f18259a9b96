"""Read runs back from a state dir: for ``watch``, ``list``, ``show``, ``logs``,
``cancel`` and the monitor API, usually from another process than the writer.

Every read is one short statement in autocommit mode: no transaction stays open
between calls, so a watcher never pins the WAL or blocks the writer's checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Collection
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
        trigger: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered by state, plan id and the kind of
        trigger that started them (``trigger="schedule"``; ``"manual"``: by hand)."""
        where, params = [], []
        if state is not None:
            where.append("r.state = ?")
            params.append(str(state))
        if plan_id is not None:
            where.append("r.plan_id = ?")
            params.append(plan_id)
        if trigger is not None:
            where.append(
                "r.trigger IS NULL"
                if trigger == "manual"
                else "json_extract(r.trigger, '$.kind') = ?"
            )
            params += [] if trigger == "manual" else [trigger]
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

    async def count_steps(self, run_id: str) -> dict[str, int]:
        """How many steps of the run are in each state (states without one left out)."""
        rows = await self._rows(sql.COUNT_STEPS_BY_STATE, (run_id,))
        return {str(row["state"]): int(row["n"]) for row in rows}

    async def get_some_steps(
        self, run_id: str, *, limit: int, states: Collection[str] | None = None
    ) -> list[StepRecord]:
        """The first ``limit`` steps of a run in plan order (only those in ``states``,
        when given), each with its attempts: a page of a large run, read without
        reading the rest."""
        if states is None:
            steps = await self._rows(sql.SELECT_FIRST_STEPS, (run_id, limit))
        else:
            chosen = msgspec.json.encode(sorted(states)).decode()
            steps = await self._rows(sql.SELECT_FIRST_STEPS_IN, (run_id, chosen, limit))
        ids = msgspec.json.encode([row["step_id"] for row in steps]).decode()
        attempts: dict[str, list[AttemptRecord]] = {}
        for row in await self._rows(sql.SELECT_ATTEMPTS_OF, (run_id, ids)):
            attempts.setdefault(row["step_id"], []).append(attempt_record(row))
        kinds = await self._handler_kinds(run_id)
        return [
            step_record(row, attempts.get(row["step_id"], []), kinds.get(row["step_id"]))
            for row in steps
        ]

    async def iter_steps(self, run_id: str, batch: int = 1000) -> AsyncIterator[StepRecord]:
        """The steps of a run in plan order, each with its attempts, as they are read:
        memory stays bounded by ``batch`` rows whatever the size of the run. Read it
        inside :meth:`snapshot` for a consistent view."""
        kinds = await self._handler_kinds(run_id)
        with translated("reading the run store"):
            async with (
                self._db.execute(sql.SELECT_STEPS, (run_id,)) as steps,
                self._db.execute(sql.SELECT_ATTEMPTS_BY_POSITION, (run_id,)) as attempts,
            ):
                pending = _Rows(attempts, batch)
                async for row in _Rows(steps, batch):
                    own = await pending.take_while(row["position"])
                    yield step_record(row, own, kinds.get(row["step_id"]))

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

    async def get_events(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """Events of a run with ``seq > after_seq``, in ``seq`` order (at most
        ``limit``: a page, for reading a long run in bounded memory)."""
        bodies = await self.get_event_bodies(run_id, after_seq, limit)
        return [decode_event(body) for body in bodies]

    async def get_event_bodies(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[str]:
        """Like :meth:`get_events`, as the stored JSON text (for ``watch --json``)."""
        page = -1 if limit is None else limit
        rows = await self._rows(sql.SELECT_EVENTS_PAGE, (run_id, after_seq, page))
        return [str(row["body"]) for row in rows]


class _Rows:
    """An open cursor's rows as dicts, fetched ``batch`` at a time."""

    def __init__(self, cursor: aiosqlite.Cursor, batch: int) -> None:
        self._cursor = cursor
        self._batch = batch
        self._names = [d[0] for d in cursor.description]
        self._buffer: list[dict[str, Any]] = []
        self._at = 0
        self._done = False

    async def _peek(self) -> dict[str, Any] | None:
        if self._at == len(self._buffer) and not self._done:
            fetched = list(await self._cursor.fetchmany(self._batch))
            self._buffer = [dict(zip(self._names, r, strict=True)) for r in fetched]
            self._at = 0
            self._done = len(fetched) < self._batch
        return self._buffer[self._at] if self._at < len(self._buffer) else None

    def __aiter__(self) -> _Rows:
        return self

    async def __anext__(self) -> dict[str, Any]:
        row = await self._peek()
        if row is None:
            raise StopAsyncIteration
        self._at += 1
        return row

    async def take_while(self, position: int) -> list[AttemptRecord]:
        """The attempts (rows ordered by their step's position) of the step at
        ``position``; earlier ones (of no step read: none, by the join) are passed."""
        out: list[AttemptRecord] = []
        while (row := await self._peek()) is not None and row["position"] <= position:
            self._at += 1
            if row["position"] == position:
                out.append(attempt_record(row))
        return out
