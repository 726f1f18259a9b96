"""Cancelling a run another process owns: :func:`cancel_run` (``planrun cancel``).

A run is cancelled by its owner: the ``planrun`` process that runs it cancels it on
SIGTERM (TERM, grace, KILL for every step, then ``cancelled`` is recorded). So this
checks the owner is that process — same host, same pid *and* start time, a CLI
owner — signals it and waits for the store to say the run ended. A run embedded in a
service (``run_plan``) is refused: SIGTERM would stop the whole service; the task
awaiting it is what to cancel there. A run ``planrun serve`` started (``owner_kind``
``"serve"``: one process, many runs) is asked by a request file in its run directory
(:func:`request_path`) and SIGUSR1, on which serve cancels the runs that have one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

import anyio

from . import crash
from .errors import CancelError, UsageError
from .model import RunState
from .paths import state_dir_or_default
from .proc import is_same_process
from .records import RunRecord
from .store.reader import RunReader

__all__ = ["CANCEL_POLL_SEC", "SERVE_OWNER", "cancel_run", "request_path"]

#: Seconds between two reads of the run's state while waiting for it to end.
CANCEL_POLL_SEC = 0.1

#: ``owner_kind`` of the runs ``planrun serve`` starts (cancelled per run, see above).
SERVE_OWNER = "serve"


def request_path(state_dir: Path, run_id: str) -> Path:
    """The file whose existence asks a serve process to cancel run ``run_id``."""
    return state_dir / "runs" / run_id / "cancel-requested"


async def cancel_run(
    run_id: str,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    wait_sec: float = 60.0,
) -> RunRecord:
    """Cancel running run ``run_id`` and wait (up to ``wait_sec`` seconds) until it is
    recorded ``cancelled``; its final record.

    Raises ``UsageError`` (``field="run_id"``) if there is no such run, and
    :class:`~planrun.errors.CancelError` if it is not running (its state then says
    how it ended), runs on another host, its owner is gone, it is embedded in a
    service (``owner_kind`` neither ``"cli"`` nor ``"serve"``), or it did not end as
    cancelled in time.
    """
    directory = state_dir_or_default(state_dir)
    async with RunReader.open(directory) as reader:
        run = await crash.get_run(reader, run_id)
        if run is None:
            raise UsageError(f"no run '{run_id}' in {directory}", field="run_id")
        _check_cancellable(run)
        wake = signal.SIGTERM
        if run.owner_kind == SERVE_OWNER:  # SIGTERM would stop serve and all its runs
            request_path(directory, run_id).touch()
            wake = signal.SIGUSR1
        with contextlib.suppress(ProcessLookupError):  # it just ended: the state says how
            os.kill(run.owner_pid, wake)
        current = await _wait_ended(reader, run_id, wait_sec)
    if current is not None and current.state is RunState.CANCELLED:
        return current
    state = current.state.value if current is not None else "unknown"
    raise CancelError(
        f"run {run_id} did not end as cancelled within {wait_sec:g}s (state: {state})",
        state=state,
    )


def _check_cancellable(run: RunRecord) -> None:
    """``CancelError`` unless ``run`` is running in a live CLI or serve process on
    this host."""
    run_id = run.run_id
    if run.state is not RunState.RUNNING:
        raise CancelError(
            f"run {run_id} is not running (state: {run.state.value})", state=run.state.value
        )
    if run.parent_run_id is not None:  # it shares its parent's process
        raise CancelError(
            f"run {run_id} is a child run of run {run.parent_run_id} (step "
            f"{run.parent_step_id}); cancel run {run.parent_run_id}",
            state="running",
        )
    if run.owner_host != socket.gethostname():
        raise CancelError(
            f"run {run_id} runs on {run.owner_host}; cancel it there", state="running"
        )
    if not is_same_process(run.owner_pid, run.owner_start_time):
        raise CancelError(
            f"run {run_id} is not running: its process (pid {run.owner_pid}) is gone",
            state="running",
        )
    if run.owner_kind not in ("cli", SERVE_OWNER):
        raise CancelError(
            f"run {run_id} is embedded in process {run.owner_pid} (run_plan); cancel "
            "the task awaiting it there",
            state="running",
        )


async def _wait_ended(reader: RunReader, run_id: str, wait_sec: float) -> RunRecord | None:
    """The run's record once it is no longer running, or after ``wait_sec`` seconds.

    Polls: the owner is another process, and nothing it writes can wake this one.
    """
    with anyio.move_on_after(wait_sec):
        while True:
            current = await reader.get_run(run_id)
            if current is None or current.state is not RunState.RUNNING:
                return current
            await anyio.sleep(CANCEL_POLL_SEC)
    return await reader.get_run(run_id)
