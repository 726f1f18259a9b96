"""The SQLite run store and the recorder that writes events into it.

Layout of a state dir (0700; every file 0600)::

    runs.db                            runs, steps, attempts, events (WAL mode)
    runs/<run_id>/events.jsonl         every event, one JSON object per line
    runs/<run_id>/logs/<step>.<n>.log  output of attempt n of a step

One writer connection per process, owned by the recorder task. Every write is one
``BEGIN IMMEDIATE`` transaction per *batch* of events, idempotent (events are
``INSERT OR IGNORE`` by ``(run_id, seq)``, rows are upserts), so a statement that
completes after its await was cancelled does no harm. Other processes read at any time
(WAL). sqlite errors become :class:`~planrun.errors.StoreError` (:mod:`.connection`).

The SQL is in :mod:`.sql`, the rows an event batch changes in :mod:`.projection`, and
the state dir's files in :mod:`.files`: callers ask this class, never the connection.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from sqlite3 import Connection
from typing import Any, TypeVar

import aiosqlite
import anyio
import anyio.lowlevel
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from ..errors import LockConflict, ResumeConflict, RunExists, StoreError, UsageError
from ..events import Event, RunCrashed, encode_event, utc_now
from ..exitcodes import ExitCode
from ..model import RunState
from ..proc import boot_id, process_start_time
from ..records import RunRecord
from . import files, sql
from .apply import apply_batch, json_text
from .batches import gather
from .connection import (
    fetch_dicts,
    immediate,
    in_worker,
    set_up,
    translated,
)
from .projection import Projection
from .rows import run_record
from .walsync import WalSync

__all__ = ["RunPaths", "SqliteStore"]

T = TypeVar("T")

#: Seconds without events after which the recorder writes a heartbeat.
HEARTBEAT_SEC = 10.0


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))


def _lexists(path: Path) -> bool:
    # A metadata lookup on a local disk: not worth a worker thread.
    return os.path.lexists(path)


def _owner(kind: str) -> dict[str, Any]:
    """This process as a run's owner: the identity that crash detection checks
    (pid, start time, host, boot id: see :mod:`planrun.proc`), and its kind."""
    pid = os.getpid()
    return {
        "owner_pid": pid,
        "owner_start_time": process_start_time(pid),
        "owner_host": socket.gethostname(),
        "owner_kind": kind,
        "owner_boot_id": boot_id(),
    }


def _step_rows(run_id: str, steps: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """``(step_id, name)`` pairs, in plan order, as ``steps`` rows."""
    return [
        {"run_id": run_id, "step_id": sid, "position": i, "name": name}
        for i, (sid, name) in enumerate(steps)
    ]


class RunPaths(msgspec.Struct, frozen=True):
    """Where one run's files live."""

    run_dir: Path

    @property
    def events_jsonl(self) -> Path:
        return self.run_dir / "events.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"


class SqliteStore:
    """The run store of one state dir. Open with ``async with SqliteStore.open(dir)``."""

    def __init__(
        self, state_dir: Path, db: aiosqlite.Connection, wal_sync: WalSync | None = None
    ) -> None:
        self.state_dir = state_dir
        self._db = db
        #: ``full`` durability: the paced sync of the recorder's batches (walsync.py).
        self._wal_sync = wal_sync
        # Uncontended (the usual case: one recorder), taking it costs no loop turn.
        self._lock = anyio.Lock(fast_acquire=True)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction at a time on this connection: the child
        runs of ``uses`` steps record through their parent's store (one connection per
        process: opening a second one would close a descriptor of ``runs.db`` in this
        process, which drops every POSIX lock the first holds on it)."""
        async with self._lock, immediate(self._db):
            yield

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, state_dir: str | os.PathLike[str], *, durability: str = "full"
    ) -> AsyncIterator[SqliteStore]:
        """Create the state dir if needed, open the database, migrate the schema.
        ``durability``: ``"full"`` or ``"normal"`` (:class:`planrun.options.Durability`)."""
        # Absolute, so the log paths stored in attempts work from any directory.
        root = _absolute(state_dir)
        try:
            files.private_store(root)
        except OSError as exc:
            raise StoreError(f"cannot create the state dir {root}: {exc}") from exc
        with translated(f"opening {root / 'runs.db'}"):
            db = await aiosqlite.connect(root / "runs.db", isolation_level=None)
        try:
            with translated("setting up the database"):
                await set_up(db, (*sql.PRAGMAS, sql.SYNCHRONOUS[durability]))
            wal_sync = WalSync(root / "runs.db-wal") if durability == "full" else None
            try:
                yield cls(root, db, wal_sync)
            finally:
                if wal_sync is not None:
                    wal_sync.close()
        finally:
            with anyio.CancelScope(shield=True):
                await db.close()

    def paths(self, run_id: str) -> RunPaths:
        return RunPaths(self.state_dir / "runs" / run_id)

    # --- writing ---------------------------------------------------------------------

    async def create_run(
        self,
        run_id: str,
        plan_id: str,
        plan_path: str | None,
        variables: dict[str, str],
        steps: Sequence[tuple[str, str]],
        started_at: str,
        owner_kind: str = "api",
        plan_json: str | None = None,
        secret_names: Sequence[str] = (),
        parent: tuple[str, str] | None = None,
    ) -> RunPaths:
        """Reserve ``run_id`` (:class:`~planrun.errors.RunExists` if taken) and create
        its directory and rows.

        ``plan_json`` is the plan as run (what ``resume`` compares against); values
        must already be masked. ``parent`` is ``(run id, step id)`` for a child run
        (a ``uses`` step's).
        """
        paths = self.paths(run_id)
        run = {
            "run_id": run_id,
            "plan_id": plan_id,
            "plan_path": plan_path,
            "variables": json_text(variables),
            "started_at": started_at,
            "step_count": len(steps),
            "plan_json": plan_json,
            "secret_names": json_text(list(secret_names)),
            "parent_run_id": parent[0] if parent is not None else None,
            "parent_step_id": parent[1] if parent is not None else None,
            **_owner(owner_kind),
        }
        with translated("creating the run"):
            async with self._transaction():
                await self._check_free(run_id, paths)
                await self._db.execute(sql.INSERT_RUN, run)
                await self._db.executemany(sql.INSERT_STEP, _step_rows(run_id, steps))
                # Inside the transaction: a planted link undoes the run's rows.
                files.private_run_files(self.state_dir, run_id, new=True)
        return paths

    async def claim_run(
        self,
        run_id: str,
        *,
        variables: dict[str, str],
        plan_json: str | None,
        secret_names: Sequence[str],
        steps: Sequence[tuple[str, str]],
        rerun: Sequence[str],
        owner_kind: str,
        expected_last_seq: int | None = None,
    ) -> tuple[RunPaths, int]:
        """Take over a finished run for a resume, atomically; returns its paths and last
        ``seq``. ``rerun`` steps go back to ``pending``; ``steps`` (the plan's, in order)
        become the run's steps: new ones are added, every position follows the plan, and
        steps no longer in the plan are removed with their attempt rows (their events stay
        in the log).

        Raises :class:`LockConflict` when the run is ``running`` (another process runs
        or resumes it: crash detection must have run first), :class:`ResumeConflict`
        when its last ``seq`` is no longer ``expected_last_seq`` (another resume ran it
        since the caller decided what to rerun), and :class:`UsageError` when there is
        no such run.
        """
        claim = {
            "run_id": run_id,
            "now": utc_now(),
            "variables": json_text(variables),
            "plan_json": plan_json,
            "secret_names": json_text(list(secret_names)),
            **_owner(owner_kind),
        }
        with translated("claiming the run"):
            async with self._transaction():
                rows = await fetch_dicts(self._db, sql.SELECT_RUN_HEAD, (run_id,))
                row = _claimable(run_id, rows, self.state_dir, expected_last_seq)
                # Before the claim: a planted link leaves the run as it was.
                files.private_run_files(self.state_dir, run_id, new=False)
                await self._db.execute(sql.CLAIM_RUN, claim)
                await self._db.executemany(sql.UPSERT_PLAN_STEP, _step_rows(run_id, steps))
                await self._drop_steps_not_in(run_id, {sid for sid, _ in steps})
                await self._db.executemany(sql.RESUME_STEP, [(run_id, sid) for sid in rerun])
                await self._db.execute(sql.UPDATE_STEP_COUNT, (run_id, run_id))
        await self._repair_jsonl(run_id)
        return self.paths(run_id), int(row["last_seq"])

    async def _drop_steps_not_in(self, run_id: str, keep: set[str]) -> None:
        """Delete the rows of the run's steps (and attempts) that are not in ``keep``."""
        rows = await fetch_dicts(self._db, sql.SELECT_STEP_IDS, (run_id,))
        gone = [(run_id, r["step_id"]) for r in rows if r["step_id"] not in keep]
        await self._db.executemany(sql.DELETE_STEP_ATTEMPTS, gone)
        await self._db.executemany(sql.DELETE_STEP, gone)

    async def heartbeat(self, run_id: str) -> None:
        """Record that the owner is alive now (shown by ``show``; never used to decide
        that a run crashed)."""
        with translated("writing the heartbeat"):
            async with self._transaction():
                await self._db.execute(sql.HEARTBEAT, (utc_now(), run_id))

    async def mark_crashed(self, run_id: str, reason: str) -> bool:
        """Record that ``run_id``'s owner died: the run and its running steps and
        attempts become ``crashed``, with a ``run_crashed`` event (the next ``seq``).

        Also appends to ``events.jsonl`` whatever committed events it lacks (the owner
        may have died between a commit and its JSONL write). False if the run was not
        running any more. The caller must have checked that the owner is gone.
        """
        now = utc_now()
        with anyio.CancelScope(shield=True), translated("marking the run crashed"):
            async with self._transaction():
                rows = await fetch_dicts(self._db, sql.SELECT_RUN_HEAD, (run_id,))
                if not rows or rows[0]["state"] != RunState.RUNNING.value:
                    return False
                seq = int(rows[0]["last_seq"]) + 1
                owner_pid = int(rows[0]["owner_pid"])
                event = RunCrashed(
                    run_id=run_id, seq=seq, ts=now, reason=reason, owner_pid=owner_pid
                )
                crash = {"run_id": run_id, "now": now, "reason": reason, "seq": seq}
                await self._db.execute(sql.CRASH_RUN, crash)
                await self._db.execute(sql.CRASH_STEPS, crash)
                await self._db.execute(sql.CRASH_ATTEMPTS, (now, run_id))
                await self._db.executemany(
                    sql.INSERT_EVENT, Projection([event], [encode_event(event)]).events
                )
            await self._repair_jsonl(run_id)
        return True

    async def _repair_jsonl(self, run_id: str) -> None:
        """Append to ``events.jsonl`` the committed events it lacks (never through a link)."""
        parts = ["runs", run_id, "events.jsonl"]
        have = files.line_count(self.state_dir, parts)  # lines are seq 1..N, in order
        missing = await self.get_event_bodies(run_id, after_seq=have)
        if missing:
            files.append(self.state_dir, parts, "".join(body + "\n" for body in missing).encode())

    async def abandon_run(self, run_id: str, reason: str) -> None:
        """Mark a run that never got going ``cancelled`` (its engine never started)."""
        abandon = {
            "run_id": run_id,
            "now": utc_now(),
            "reason": reason,
            "exit_code": int(ExitCode.CANCELLED),
        }
        with anyio.CancelScope(shield=True), translated("abandoning the run"):
            async with self._transaction():
                await self._db.execute(sql.ABANDON_RUN, abandon)
                await self._db.execute(sql.ABANDON_STEPS, (reason, run_id))

    async def _check_free(self, run_id: str, paths: RunPaths) -> None:
        if paths.run_dir.is_symlink():  # a dangling one too
            raise files.refusal(paths.run_dir, OSError(errno.ELOOP, "a symbolic link"))
        cursor = await self._db.execute(sql.RUN_EXISTS, (run_id,))
        if await cursor.fetchone() is not None or _lexists(paths.run_dir):
            raise RunExists(run_id)

    async def record(
        self,
        events: MemoryObjectReceiveStream[Event],
        paths: RunPaths,
        launching: Callable[[], bool] = lambda: False,
    ) -> None:
        """Write events from ``events`` until the stream ends, one transaction per batch.

        ``launching()`` says whether attempts are being spawned whose ``attempt_started``
        is still to come: a batch waits for those (at most ``LAUNCH_WAIT_SEC``), so a
        step's end and the start of the step it let go land in one transaction. Only
        the recording waits: the spawn is already under way.

        Runs shielded: a cancelled run still sends its last events (the cancellation
        itself), and they must land. The stream's sender ending is the only way out.
        """
        with anyio.CancelScope(shield=True), events:
            jsonl = files.open_file(
                self.state_dir,
                ["runs", paths.run_dir.name, "events.jsonl"],
                os.O_WRONLY | os.O_APPEND,
            )
            try:
                await self._record(events, paths, launching, jsonl)
                await self._sync_wal()  # the run's last events: on disk now
            finally:
                os.close(jsonl)

    async def _record(
        self,
        events: MemoryObjectReceiveStream[Event],
        paths: RunPaths,
        launching: Callable[[], bool],
        jsonl: int,
    ) -> None:
        """:meth:`record`'s loop, until the stream ends."""
        while True:
            first: Event | None = None
            with anyio.move_on_after(self._quiet_sec()):
                try:
                    first = await events.receive()
                except anyio.EndOfStream:
                    return
            if first is None:  # a quiet spell: the pending sync (now due), or a heartbeat
                if not await self._sync_wal():
                    await self.heartbeat(paths.run_dir.name)
                continue
            # One turn of the loop first: what the other tasks emit in it joins this
            # transaction, and a step it starts is not kept waiting behind the recorder.
            await anyio.lowlevel.checkpoint()
            batch, ended = await gather(first, events, launching)
            await self._write(batch, None, jsonl)
            if ended:
                return

    def _quiet_sec(self) -> float:
        """How long the recorder waits for an event: until a pending sync of the WAL
        is due, else until the heartbeat."""
        paced = self._wal_sync
        return paced.due_in() if paced is not None and paced.pending else HEARTBEAT_SEC

    async def _sync_wal(self) -> bool:
        """Make the pending sync of the WAL now, if there is one; was there?"""
        paced = self._wal_sync
        if paced is None or not paced.pending:
            return False
        with translated("syncing the database"):
            async with self._lock:
                await in_worker(self._db, lambda conn: paced.sync())
        return True

    async def write_batch(self, batch: Sequence[Event], bodies: Sequence[bytes]) -> None:
        """Apply a batch of events to every table in one ``BEGIN IMMEDIATE`` transaction."""
        await self._write(batch, bodies, None)

    async def _write(
        self, batch: Sequence[Event], bodies: Sequence[bytes] | None, jsonl: int | None
    ) -> None:
        """One batch, as one call on the connection's worker thread (:func:`.apply.apply_batch`):
        the event loop only queues it."""
        # The run's own batches (``jsonl``) are synced at a pace (walsync.py).
        paced = self._wal_sync if jsonl is not None else None
        work = functools.partial(apply_batch, batch, bodies, jsonl, paced)
        with translated("recording events"):
            async with self._lock:
                await in_worker(self._db, work)

    async def call(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` with the connection on its worker thread, as one queued call,
        alone on this connection (for the store's own helpers, e.g. :mod:`.prune`)."""
        with translated(what):
            async with self._lock:
                return await in_worker(self._db, fn)

    # --- reading ---------------------------------------------------------------------

    async def get_event_bodies(self, run_id: str, after_seq: int = 0) -> list[str]:
        """The stored JSON of every event after ``after_seq``, in ``seq`` order."""
        with translated("reading"):
            rows = await fetch_dicts(self._db, sql.SELECT_EVENTS, (run_id, after_seq))
        return [str(r["body"]) for r in rows]

    async def run_states(self, run_ids: Iterable[str]) -> dict[str, RunState]:
        """The state of each of ``run_ids`` this store knows (other ids are left out)."""
        with translated("reading run states"):
            rows = await fetch_dicts(self._db, sql.SELECT_RUN_STATES, (json_text(sorted(run_ids)),))
        return {row["run_id"]: RunState(row["state"]) for row in rows}

    async def runs_in_state(self, state: RunState, run_ids: Iterable[str]) -> list[RunRecord]:
        """The runs among ``run_ids`` that are in ``state`` (ids it does not know are
        left out), as records."""
        params = {"state": state.value, "run_ids": json_text(sorted(run_ids))}
        with translated("reading runs"):
            rows = await fetch_dicts(self._db, sql.SELECT_RUNS_IN_STATE, params)
        return [run_record(row) for row in rows]


def _claimable(
    run_id: str, rows: list[dict[str, Any]], state_dir: Path, expected_last_seq: int | None
) -> dict[str, Any]:
    """The run's row, if a resume may take it over (else the error saying why)."""
    if not rows:
        raise UsageError(f"no run '{run_id}' in {state_dir}")
    row = rows[0]
    if row["state"] == RunState.RUNNING.value:
        raise LockConflict(
            f"run {run_id} is running (pid {row['owner_pid']} on {row['owner_host']}); "
            "resume it when it has ended"
        )
    if expected_last_seq is not None and row["last_seq"] != expected_last_seq:
        raise ResumeConflict(run_id)
    return row
