"""The SQLite run store and the recorder that writes events into it.

Layout of a state dir (0700; every file 0600)::

    runs.db                            runs, steps, attempts, events (WAL mode)
    runs/<run_id>/events.jsonl         every event, one JSON object per line
    runs/<run_id>/logs/<step>.<n>.log  output of attempt n of a step

One writer connection per process, owned by the recorder task. Every write is one
``BEGIN IMMEDIATE`` transaction per *batch* of events, idempotent (events are
``INSERT OR IGNORE`` by ``(run_id, seq)``, rows are upserts), so a statement that
completes after its await was cancelled does no harm. Other processes read at any time
(WAL). sqlite errors become :class:`~planrun.errors.StoreError` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from ..errors import LockConflict, StoreError, UsageError
from ..events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    RunCrashed,
    RunFinished,
    StepFinished,
    encode_event,
    event_type,
    utc_now,
)
from ..model import AttemptState, StepState
from ..paths import default_state_dir  # the one definition; re-exported for old imports
from ..proc import boot_id, process_start_time
from . import files, sql

__all__ = ["RunPaths", "SqliteStore", "default_state_dir"]

#: Most events written in one transaction.
MAX_BATCH = 2000
#: Seconds without events after which the recorder writes a heartbeat.
HEARTBEAT_SEC = 10.0


def _ignore_itself(root: Path) -> None:
    """``root/.gitignore`` of ``*`` (like pytest's cache), so a state dir in a git work
    tree never shows up as untracked. Never replaces an existing one (O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root / ".gitignore", flags, 0o600)
    except FileExistsError:
        return
    try:
        _write_all(fd, b"# Created by planrun: its run store, ignored by git.\n*\n")
    finally:
        os.close(fd)


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))


def _lexists(path: Path) -> bool:
    # A metadata lookup on a local disk: not worth a worker thread.
    return os.path.lexists(path)


#: Files next to runs.db that SQLite opens by name (never through a planted link).
DB_SIDE_FILES = ("runs.db-wal", "runs.db-shm", "runs.db-journal")


def _private_store(root: Path) -> None:
    """The state dir (0700), its ``runs/`` (0700) and ``runs.db`` (0600), made or
    checked without following a link (see :mod:`planrun.store.files`)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    _ignore_itself(root)
    files.private_dir(root, ["runs"])
    os.close(files.open_file(root, ["runs.db"], os.O_RDWR, create=True))
    for name in DB_SIDE_FILES:
        files.check_not_link(root, [name])


def _private_files(root: Path, run_id: str, *, new: bool) -> None:
    """A run's directories (0700) and events file (0600), whatever the umask, without
    following a link; ``new``: the events file must not exist yet."""
    files.private_dir(root, ["runs", run_id, "logs"])
    os.close(
        files.open_file(
            root, ["runs", run_id, "events.jsonl"], os.O_WRONLY, create=True, exclusive=new
        )
    )


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"run store: {what} failed: {exc}") from exc


@contextlib.asynccontextmanager
async def immediate(db: aiosqlite.Connection) -> AsyncIterator[None]:
    """One ``BEGIN IMMEDIATE`` ... ``COMMIT`` around the body (a ``return`` inside
    commits); rolled back if the body raises or is cancelled."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        yield
        await db.execute("COMMIT")
    except BaseException:
        # A cancelled await does not cancel the statement (it may have COMMITted):
        # roll back only what is still open, and never replace the original error.
        with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
            if db.in_transaction:
                await db.execute("ROLLBACK")
        raise


@dataclass(frozen=True)
class RunPaths:
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

    def __init__(self, state_dir: Path, db: aiosqlite.Connection) -> None:
        self.state_dir = state_dir
        self._db = db

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, state_dir: str | os.PathLike[str]) -> AsyncIterator[SqliteStore]:
        """Create the state dir if needed, open the database, migrate the schema."""
        # Absolute, so the log paths stored in attempts work from any directory.
        root = _absolute(state_dir)
        try:
            _private_store(root)
        except OSError as exc:
            raise StoreError(f"cannot create the state dir {root}: {exc}") from exc
        with _translated(f"opening {root / 'runs.db'}"):
            db = await aiosqlite.connect(root / "runs.db", isolation_level=None)
        try:
            with _translated("setting up the database"):
                for pragma in sql.PRAGMAS:
                    await db.execute(pragma)
                await _enable_wal(db)
                await migrate(db)
            yield cls(root, db)
        finally:
            with anyio.CancelScope(shield=True):
                await db.close()

    @property
    def db(self) -> aiosqlite.Connection:
        """The connection, for short reads between writes (never inside ``record``)."""
        return self._db

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
    ) -> RunPaths:
        """Reserve ``run_id`` (``UsageError`` if taken) and create its directory and rows.

        ``plan_json`` is the plan as run (what ``resume`` compares against); values
        must already be masked.
        """
        paths = self.paths(run_id)
        pid = os.getpid()
        with _translated("creating the run"):
            async with immediate(self._db):
                await self._check_free(run_id, paths)
                await self._db.execute(
                    sql.INSERT_RUN,
                    (
                        run_id,
                        plan_id,
                        plan_path,
                        msgspec.json.encode(variables).decode(),
                        started_at,
                        pid,
                        process_start_time(pid),
                        socket.gethostname(),
                        owner_kind,
                        len(steps),
                        boot_id(),
                        plan_json,
                        msgspec.json.encode(list(secret_names)).decode(),
                        started_at,
                    ),
                )
                await self._db.executemany(
                    sql.INSERT_STEP,
                    [(run_id, sid, i, name) for i, (sid, name) in enumerate(steps)],
                )
                # Inside the transaction: a planted link undoes the run's rows.
                _private_files(self.state_dir, run_id, new=True)
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
        or resumes it: crash detection must have run first) or when its last ``seq`` is
        no longer ``expected_last_seq`` (another resume ran it since the caller decided
        what to rerun), and :class:`UsageError` when there is no such run.
        """
        paths = self.paths(run_id)
        pid = os.getpid()
        now = utc_now()
        with _translated("claiming the run"):
            async with immediate(self._db):
                rows = await fetch_dicts(self._db, sql.SELECT_CLAIMABLE, (run_id,))
                row = _claimable(run_id, rows, self.state_dir, expected_last_seq)
                # Before the claim: a planted link leaves the run as it was.
                _private_files(self.state_dir, run_id, new=False)
                await self._db.execute(
                    sql.CLAIM_RUN,
                    (
                        pid,
                        process_start_time(pid),
                        socket.gethostname(),
                        owner_kind,
                        boot_id(),
                        now,
                        msgspec.json.encode(variables).decode(),
                        plan_json,
                        msgspec.json.encode(list(secret_names)).decode(),
                        run_id,
                    ),
                )
                await self._db.executemany(
                    sql.UPSERT_PLAN_STEP,
                    [(run_id, sid, i, name) for i, (sid, name) in enumerate(steps)],
                )
                await self._drop_steps_not_in(run_id, {sid for sid, _ in steps})
                await self._db.executemany(sql.RESUME_STEP, [(run_id, sid) for sid in rerun])
                await self._db.execute(sql.UPDATE_STEP_COUNT, (run_id, run_id))
        await self._repair_jsonl(run_id)
        return paths, int(row["last_seq"])

    async def _drop_steps_not_in(self, run_id: str, keep: set[str]) -> None:
        """Delete the rows of the run's steps (and attempts) that are not in ``keep``."""
        rows = await fetch_dicts(self._db, sql.SELECT_STEP_IDS, (run_id,))
        gone = [(run_id, r["step_id"]) for r in rows if r["step_id"] not in keep]
        await self._db.executemany(sql.DELETE_STEP_ATTEMPTS, gone)
        await self._db.executemany(sql.DELETE_STEP, gone)

    async def heartbeat(self, run_id: str) -> None:
        """Record that the owner is alive now (shown by ``show``; never used to decide
        that a run crashed)."""
        with _translated("writing the heartbeat"):
            async with immediate(self._db):
                await self._db.execute(sql.HEARTBEAT, (utc_now(), run_id))

    async def mark_crashed(self, run_id: str, reason: str) -> bool:
        """Record that ``run_id``'s owner died: the run and its running steps and
        attempts become ``crashed``, with a ``run_crashed`` event (the next ``seq``).

        Also appends to ``events.jsonl`` whatever committed events it lacks (the owner
        may have died between a commit and its JSONL write). False if the run was not
        running any more. The caller must have checked that the owner is gone.
        """
        now = utc_now()
        with anyio.CancelScope(shield=True), _translated("marking the run crashed"):
            async with immediate(self._db):
                rows = await fetch_dicts(
                    self._db,
                    "SELECT state, last_seq, owner_pid FROM runs WHERE run_id = ?",
                    (run_id,),
                )
                if not rows or rows[0]["state"] != "running":
                    return False
                seq = int(rows[0]["last_seq"]) + 1
                event = RunCrashed(
                    run_id=run_id,
                    seq=seq,
                    ts=now,
                    reason=reason,
                    owner_pid=int(rows[0]["owner_pid"]),
                )
                body = encode_event(event)
                await self._db.execute(sql.CRASH_RUN, (now, reason, seq, run_id))
                await self._db.execute(sql.CRASH_STEPS, (now, reason, run_id))
                await self._db.execute(sql.CRASH_ATTEMPTS, (now, run_id))
                await self._db.execute(
                    sql.INSERT_EVENT,
                    (run_id, seq, now, "run_crashed", None, body.decode()),
                )
            await self._repair_jsonl(run_id)
        return True

    async def _repair_jsonl(self, run_id: str) -> None:
        """Append to ``events.jsonl`` the committed events it lacks (never through a link)."""
        parts = ["runs", run_id, "events.jsonl"]
        try:
            fd = files.open_file(self.state_dir, parts, os.O_RDONLY)
        except FileNotFoundError:
            have = 0
        else:
            with os.fdopen(fd, "rb") as f:
                have = sum(1 for _ in f)  # lines are seq 1..N, in order
        missing = await self.get_event_bodies(run_id, after_seq=have)
        if missing:
            fd = files.open_file(self.state_dir, parts, os.O_WRONLY | os.O_APPEND, create=True)
            try:
                _write_all(fd, "".join(body + "\n" for body in missing).encode())
            finally:
                os.close(fd)

    async def abandon_run(self, run_id: str, reason: str) -> None:
        """Mark a run that never got going ``cancelled`` (its engine never started)."""
        with anyio.CancelScope(shield=True), _translated("abandoning the run"):
            async with immediate(self._db):
                await self._db.execute(sql.ABANDON_RUN, (utc_now(), reason, run_id))
                await self._db.execute(sql.ABANDON_STEPS, (reason, run_id))

    async def _check_free(self, run_id: str, paths: RunPaths) -> None:
        if paths.run_dir.is_symlink():  # a dangling one too
            raise files.refusal(paths.run_dir, OSError(errno.ELOOP, "a symbolic link"))
        cursor = await self._db.execute(sql.RUN_EXISTS, (run_id,))
        if await cursor.fetchone() is not None or _lexists(paths.run_dir):
            raise UsageError(f"run id '{run_id}' already exists; choose another --run-id")

    async def record(self, events: MemoryObjectReceiveStream[Event], paths: RunPaths) -> None:
        """Write events from ``events`` until the stream ends, one transaction per batch.

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
                while True:
                    first: Event | None = None
                    with anyio.move_on_after(HEARTBEAT_SEC):
                        try:
                            first = await events.receive()
                        except anyio.EndOfStream:
                            return
                    if first is None:  # a quiet spell: say we are still here
                        await self.heartbeat(paths.run_dir.name)
                        continue
                    batch = [first]
                    while len(batch) < MAX_BATCH:
                        try:
                            batch.append(events.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    bodies = [encode_event(e) for e in batch]
                    await self.write_batch(batch, bodies)
                    _write_all(jsonl, b"".join(b + b"\n" for b in bodies))
            finally:
                os.close(jsonl)

    async def write_batch(self, batch: Sequence[Event], bodies: Sequence[bytes]) -> None:
        """Apply a batch of events to every table in one ``BEGIN IMMEDIATE`` transaction."""
        project = _Projection(batch, bodies)
        with _translated("recording events"):
            async with immediate(self._db):
                await self._db.executemany(sql.INSERT_EVENT, project.events)
                await self._db.executemany(sql.UPSERT_ATTEMPT, project.attempts())
                await self._db.executemany(sql.UPDATE_STEP, project.steps())
                for params in project.run_updates:
                    await self._db.execute(sql.FINISH_RUN, params)
                await self._db.execute(
                    sql.UPDATE_RUN_SEQ, (batch[-1].seq, batch[-1].ts, batch[-1].run_id)
                )

    # --- reading ---------------------------------------------------------------------

    async def get_event_bodies(self, run_id: str, after_seq: int = 0) -> list[str]:
        """The stored JSON of every event after ``after_seq``, in ``seq`` order."""
        with _translated("reading"):
            rows = await fetch_dicts(self._db, sql.SELECT_EVENTS, (run_id, after_seq))
        return [str(r["body"]) for r in rows]


async def fetch_dicts(
    db: aiosqlite.Connection, query: str, params: tuple[Any, ...] = ()
) -> list[dict[str, Any]]:
    """Run ``query`` and return its rows as dicts (the cursor is closed on return)."""
    async with db.execute(query, params) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


def _claimable(
    run_id: str, rows: list[dict[str, Any]], state_dir: Path, expected_last_seq: int | None
) -> dict[str, Any]:
    """The run's row, if a resume may take it over (else the error saying why)."""
    if not rows:
        raise UsageError(f"no run '{run_id}' in {state_dir}")
    row = rows[0]
    if row["state"] == "running":
        raise LockConflict(
            f"run {run_id} is running (pid {row['owner_pid']} on {row['owner_host']}); "
            "resume it when it has ended"
        )
    if expected_last_seq is not None and row["last_seq"] != expected_last_seq:
        raise LockConflict(
            f"run {run_id} was resumed by another process since this resume read it; "
            "look at `planrun show` and resume again if needed"
        )
    return row


def _json_or_none(value: object) -> str | None:
    return msgspec.json.encode(value).decode() if value is not None else None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def _enable_wal(db: aiosqlite.Connection) -> None:
    """Switch the database to WAL, waiting out other connections' locks.

    Changing the journal mode of a fresh database needs an exclusive lock, and SQLite
    reports SQLITE_BUSY at once for it, ignoring the busy timeout. Another process that
    is creating the same store holds that lock only briefly, so retry (with backoff) for
    as long as the busy timeout would have waited. Once the file is in WAL mode the
    pragma needs no lock, so this loop only ever runs on a brand-new store.
    """
    deadline = anyio.current_time() + sql.BUSY_TIMEOUT_SEC
    delay = 0.005
    while True:
        try:
            cursor = await db.execute(sql.ENABLE_WAL)
            row = await cursor.fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or anyio.current_time() + delay > deadline:
                raise
        else:
            mode = str(row[0]) if row else "?"
            if mode.lower() != "wal":
                raise StoreError(f"the run store cannot use WAL mode (journal_mode={mode})")
            return
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.2)


async def migrate(db: aiosqlite.Connection) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (``StoreError`` if it is newer)."""
    cursor = await db.execute("PRAGMA user_version")
    row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > sql.SCHEMA_VERSION:
        raise StoreError(
            f"the run store was written by a newer planrun (schema {version}); upgrade planrun"
        )
    if version < sql.SCHEMA_VERSION:
        # One transaction; the version is read again inside it because another
        # process may have created the schema meanwhile.
        async with immediate(db):
            cursor = await db.execute("PRAGMA user_version")
            row = await cursor.fetchone()
            for step in range((int(row[0]) if row else 0) + 1, sql.SCHEMA_VERSION + 1):
                for statement in sql.MIGRATIONS[step]:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {step}")


class _Projection:
    """Turns a batch of events into rows: the row changes merged per key, in order."""

    def __init__(self, batch: Sequence[Event], bodies: Sequence[bytes]) -> None:
        self.events = [
            (e.run_id, e.seq, e.ts, event_type(e), getattr(e, "step_id", None), b.decode())
            for e, b in zip(batch, bodies, strict=True)
        ]
        self._attempts: dict[tuple[str, str, int], list[Any]] = {}
        self._steps: dict[tuple[str, str], list[Any]] = {}
        self.run_updates: list[tuple[Any, ...]] = []
        for event in batch:
            self._add(event)

    def _add(self, event: Event) -> None:
        match event:
            case AttemptStarted():
                key = (event.run_id, event.step_id, event.attempt)
                self._attempts[key] = [
                    AttemptState.RUNNING.value,
                    None,
                    event.pid,
                    event.log_path,
                    event.ts,
                    None,
                    None,
                    None,
                ]
                self._step(
                    event.run_id,
                    event.step_id,
                    StepState.RUNNING,
                    event.attempt,
                    None,
                    None,
                    event.ts,
                    None,
                    None,
                    None,
                )
            case AttemptFinished():
                key = (event.run_id, event.step_id, event.attempt)
                row = self._attempts.setdefault(key, [None] * 8)
                row[0], row[1], row[5] = event.state.value, event.exit_code, event.ts
                row[6], row[7] = event.duration_sec, event.error
            case StepFinished():
                self._step(
                    event.run_id,
                    event.step_id,
                    event.state,
                    event.attempts,
                    event.exit_code,
                    event.reason,
                    None,
                    event.ts,
                    _json_or_none(event.outputs),
                    _json_or_none(event.masked_outputs),
                )
            case RunFinished():
                self.run_updates.append(
                    (event.state.value, event.exit_code, event.reason, event.ts, event.run_id)
                )
            case _:
                pass

    def _step(
        self,
        run_id: str,
        step_id: str,
        state: StepState,
        attempts: int,
        exit_code: int | None,
        reason: str | None,
        started: str | None,
        ended: str | None,
        outputs: str | None,
        masked: str | None,
    ) -> None:
        row = self._steps.get((run_id, step_id))
        new = [state.value, attempts, exit_code, reason, started, ended, outputs, masked]
        if row is not None:
            new = [n if n is not None else o for n, o in zip(new, row, strict=True)]
            new[4] = row[4] or started  # a step started when its first attempt did
        self._steps[(run_id, step_id)] = new

    def attempts(self) -> list[tuple[Any, ...]]:
        return [(*key, *row) for key, row in self._attempts.items()]

    def steps(self) -> list[tuple[Any, ...]]:
        return [(*row, *key) for key, row in self._steps.items()]
