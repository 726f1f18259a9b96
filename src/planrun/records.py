"""What the store reads back: typed, JSON-ready records of runs, steps and attempts.

These are the shapes of ``planrun show --json``, ``planrun list --json`` and the monitor
API; keep them stable (add fields, never rename or remove). Pure data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .model import AttemptState, RunState, StepState

__all__ = ["AttemptRecord", "RunRecord", "StepRecord", "duration_between"]


def duration_between(start: str | None, end: str | None) -> float | None:
    """Seconds between two stored UTC timestamps (None if either is missing)."""
    if start is None or end is None:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(delta.total_seconds(), 6)


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a step. ``exit_code`` < 0: ended by that signal."""

    attempt: int
    state: AttemptState
    exit_code: int | None
    pid: int | None
    log_path: str | None
    started_at: str | None
    ended_at: str | None
    duration_sec: float | None
    error: str | None
    #: The child run of this attempt of a ``uses`` step (None: it was a process).
    child_run_id: str | None = None


class StepRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One step of a run, with every attempt in order."""

    step_id: str
    name: str
    position: int
    state: StepState
    exit_code: int | None
    reason: str | None
    started_at: str | None
    ended_at: str | None
    duration_sec: float | None
    attempts: list[AttemptRecord]
    #: What the step wrote to $PLANRUN_OUTPUT (succeeded steps); secrets masked.
    outputs: dict[str, str] | None = None
    #: Keys of ``outputs`` whose value held a secret (stored masked).
    masked_outputs: list[str] = msgspec.field(default_factory=list)
    #: A run handler's list (``on_failure``, ...); None for a step of the DAG.
    handler: str | None = None


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One run as stored. ``owner_*`` identify the process that runs it."""

    run_id: str
    plan_id: str
    plan_path: str | None
    state: RunState
    variables: dict[str, str]
    started_at: str
    ended_at: str | None
    duration_sec: float | None
    exit_code: int | None
    reason: str | None
    owner_pid: int
    owner_start_time: int | None
    owner_host: str
    owner_kind: str
    owner_boot_id: str | None
    step_count: int
    steps_done: int
    last_seq: int
    #: Names of the run's secrets (their values are never stored).
    secret_names: list[str] = msgspec.field(default_factory=list)
    #: Last time the owner wrote anything (informational: crashes are decided by pid).
    heartbeat_at: str | None = None
    #: How many times ``planrun resume`` took the run over.
    resumes: int = 0
    #: The executor's short name (``"local"``); None for runs recorded before it was.
    executor: str | None = None
    #: For a child run (a ``uses`` step's): the run and step that started it.
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    #: What started the run (``planrun serve``: ``{"kind": "schedule", ...}``); None:
    #: started by hand.
    trigger: dict[str, Any] | None = None

    def to_builtins(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out
