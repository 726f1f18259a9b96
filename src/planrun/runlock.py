"""A run's lock (``globals.lock``): which key it names, and taking it for the run.

The lock itself (``flock`` on a file, its holder record) is :mod:`planrun.locks`;
this module fills the plan's variables into the key and waits or refuses as
``on_lock_conflict`` says, for :func:`planrun.api.execute`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio

from . import subst
from .errors import LockConflict
from .events import Event, LockAcquired, utc_now
from .locks import HeldLock, LockKey, resolve_key, try_lock
from .model import OnLockConflict, Plan
from .prepare import PreparedRun

__all__ = ["LOCK_POLL_SEC", "Prelude", "lock_key", "run_lock"]

#: Seconds between two tries for a held lock (``on_lock_conflict: wait``).
LOCK_POLL_SEC = 0.2

#: Events the engine emits before ``run_started`` (type and fields).
Prelude = tuple[tuple[type[Event], dict[str, Any]], ...]

#: The locks the runs around the current task hold. A ``uses`` step's child run runs
#: in a task its parent's engine started inside the parent's :func:`run_lock` block,
#: so it sees the parent's (and grandparents') locks here: a child whose plan names
#: the same lock runs under the parent's hold instead of waiting for it for ever
#: (``flock`` is per open file, so the parent's hold would exclude its own child).
_HELD: contextvars.ContextVar[frozenset[LockKey]] = contextvars.ContextVar(
    "planrun_held_locks", default=frozenset()
)


def lock_key(prepared: PreparedRun) -> LockKey | None:
    """The run's lock with its variables filled in and its path made canonical.

    A relative ``path`` is taken from where the steps run by default: ``globals.cwd``
    (itself relative to the plan's directory) if set, else the working directory.
    """
    lock = prepared.plan.globals.lock
    if lock is None:
        return None
    if isinstance(lock, str):
        return LockKey(subst.substitute(lock, prepared.variables))
    base = Path.cwd()
    if prepared.plan.globals.cwd is not None:
        plan_dir = Path(prepared.source).parent if prepared.source else base
        base = plan_dir / subst.substitute(prepared.plan.globals.cwd, prepared.variables)
    path = subst.substitute(lock.path, prepared.variables) if lock.path is not None else None
    return resolve_key(subst.substitute(lock.name, prepared.variables), path, lock.resolve, base)


@contextlib.asynccontextmanager
async def run_lock(
    key: LockKey | None,
    run_id: str,
    state_dir: Path,
    plan: Plan,
    on_notice: Callable[[str], None] | None,
) -> AsyncIterator[Prelude]:
    """Hold the run's lock (if it has one) inside the block; yields the
    ``lock_acquired`` event to emit (empty without a lock, or when a run this one is a
    child of holds the same lock: see :data:`_HELD`). ``LockConflict`` if it is held
    and the plan does not wait, or on ``lock_timeout_sec``."""
    held_around = _HELD.get()
    if key is None or key in held_around:
        yield ()  # no lock, or a parent run holds it for this child run
        return
    held, taken = await _take_lock(key, run_id, state_dir, plan, on_notice)
    token = _HELD.set(held_around | {key})
    try:
        yield (taken,)
    finally:
        _HELD.reset(token)
        held.release()


async def _take_lock(
    key: LockKey,
    run_id: str,
    state_dir: Path,
    plan: Plan,
    on_notice: Callable[[str], None] | None,
) -> tuple[HeldLock, tuple[type[Event], dict[str, Any]]]:
    """Take the run lock; the held lock and its ``lock_acquired`` event.

    Waiting polls (``flock`` with ``LOCK_NB``): the holder is another process, which
    cannot wake us, and a blocking ``flock`` would hold a worker thread uncancellably.
    """
    began = anyio.current_time()
    timeout = plan.globals.lock_timeout_sec
    announced = False
    while True:
        held, holder = try_lock(key, run_id, state_dir, utc_now())
        if held is not None:
            fields: dict[str, Any] = {
                "name": key.name,
                "path": key.path,
                "waited_sec": round(anyio.current_time() - began, 3),
            }
            if holder is not None:
                fields["reclaimed_from_run"] = holder.run_id
                fields["reclaimed_from_pid"] = holder.pid
            return held, (LockAcquired, fields)
        # No record yet: the holder took the lock a moment ago and is writing it.
        who = holder.describe() if holder is not None else "another run (starting)"
        if plan.globals.on_lock_conflict is OnLockConflict.FAIL:
            raise LockConflict(f"lock {key.label} is held by {who}; try again when it ends")
        waited = anyio.current_time() - began
        if timeout is not None and waited >= timeout:
            raise LockConflict(f"lock {key.label} still held by {who} after {timeout:g}s")
        if not announced and on_notice is not None:
            on_notice(f"waiting for lock {key.label}, held by {who}")
            announced = True
        await anyio.sleep(LOCK_POLL_SEC)
