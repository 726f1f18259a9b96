"""The worker-thread side of recording a batch of events: one transaction that writes
it to every table, then the ``events.jsonl`` append (see :class:`.sqlite.SqliteStore`).

Runs on the connection's worker thread (``connection.in_worker``), never on the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from sqlite3 import Connection

import msgspec

from ..events import Event, encode_event
from ..model import base_id
from . import files, sql
from .connection import immediate_sync
from .projection import Projection
from .walsync import WalSync

__all__ = ["apply_batch", "json_text"]


def json_text(value: object) -> str:
    """``value`` as JSON text (a JSON column, a JSON parameter)."""
    return msgspec.json.encode(value).decode()


def apply_batch(
    batch: Sequence[Event],
    bodies: Sequence[bytes] | None,
    jsonl: int | None,
    paced: WalSync | None,
    conn: Connection,
) -> None:
    """On the worker thread: encode ``batch`` (unless ``bodies`` are given), write it to
    every table in one ``BEGIN IMMEDIATE`` transaction, then (committed) append it to
    the ``jsonl`` descriptor: the JSONL file never holds an event SQLite lacks, and
    ``_repair_jsonl`` appends what a crash between the two left out. With ``paced``,
    the commit does not sync the WAL: ``paced`` does, at its pace (walsync.py)."""
    if bodies is None:
        bodies = [encode_event(e) for e in batch]
    project = Projection(batch, bodies)
    last = batch[-1]
    if paced is not None:
        conn.execute(sql.SYNCHRONOUS["normal"])
    try:
        _write_rows(conn, project, last)
    finally:
        if paced is not None:
            conn.execute(sql.SYNCHRONOUS["full"])
    if paced is not None:
        paced.committed()
    if jsonl is not None:
        files.write_all(jsonl, b"".join(b + b"\n" for b in bodies))


def _write_rows(conn: Connection, project: Projection, last: Event) -> None:
    """The batch's rows, in one ``BEGIN IMMEDIATE`` transaction."""
    with immediate_sync(conn):
        conn.executemany(sql.INSERT_EVENT, project.events)
        for run_id, step_id, rows in project.expansions:
            _add_instances(conn, run_id, step_id, rows)
        conn.executemany(sql.UPSERT_ATTEMPT, project.attempts())
        conn.executemany(sql.UPDATE_STEP, project.steps())
        if project.run_updates:  # (most batches have neither)
            conn.executemany(sql.FINISH_RUN, project.run_updates)
        if project.executor_updates:
            conn.executemany(sql.SET_RUN_EXECUTOR, project.executor_updates)
        conn.execute(sql.UPDATE_RUN_SEQ, {"seq": last.seq, "ts": last.ts, "run_id": last.run_id})


def _add_instances(
    conn: Connection, run_id: str, step_id: str, rows: Sequence[tuple[str, str]]
) -> None:
    """Rows for the instances of for_each step ``step_id``, right after it (later
    rows move down); rows of its earlier instances not among them are removed."""
    at = {sid: int(pos) for sid, pos in conn.execute(sql.SELECT_STEP_POSITIONS, (run_id,))}
    ids = {sid for sid, _ in rows}
    stale = [
        (run_id, sid) for sid in at if sid != step_id and base_id(sid) == step_id and sid not in ids
    ]
    conn.executemany(sql.DELETE_STEP_ATTEMPTS, stale)
    conn.executemany(sql.DELETE_STEP, stale)
    position = at.get(step_id, max(at.values(), default=-1))
    shift = {"run_id": run_id, "n": len(rows), "position": position, "ids": json_text(list(ids))}
    conn.execute(sql.SHIFT_STEPS, shift)
    conn.executemany(
        sql.UPSERT_PLAN_STEP,
        [
            {"run_id": run_id, "step_id": sid, "position": position + 1 + i, "name": name}
            for i, (sid, name) in enumerate(rows)
        ],
    )
    conn.execute(sql.UPDATE_STEP_COUNT, (run_id, run_id))
