"""What the dashboard shows, read through the monitor API and shaped as JSON builtins.

Every page, JSON endpoint and server-sent event is built from these few functions, so
the HTML, ``/api/...`` and the live updates cannot disagree. Nothing here reads SQLite:
runs come from :mod:`planrun.monitor` (progress from :func:`monitor.percent_done`, the
one definition), logs from the attempt's ``log_path`` (masked when it was written).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .. import monitor
from ..errors import NoRunStore
from ..model import RunState, base_id
from ..records import RunRecord, StepRecord
from ..triggers import fired_summary

__all__ = [
    "MAX_TAIL_BYTES",
    "MAX_TAIL_LINES",
    "RunDetail",
    "list_runs",
    "log_tail",
    "run_detail",
    "run_summary",
    "step_summary",
]

#: Most lines a log tail returns, and most bytes read from the end of a log for it.
MAX_TAIL_LINES = 2000
MAX_TAIL_BYTES = 1024 * 1024
#: Runs shown in the runs list at most (newest first).
LIST_LIMIT = 500


def run_summary(run: RunRecord) -> dict[str, Any]:
    """One run as the runs list and a run page's header show it."""
    out = run.to_builtins()
    out["progress_pct"] = monitor.percent_done(run.steps_done, run.step_count)
    out["trigger_summary"] = fired_summary(run.trigger)  # "" for a run started by hand
    return out


def step_summary(step: StepRecord) -> dict[str, Any]:
    """One step with its attempts (as stored: outputs already masked)."""
    out: dict[str, Any] = msgspec.to_builtins(step)
    return out


async def list_runs(
    state_dir: Path, *, state: str | None = None, plan_id: str | None = None
) -> list[dict[str, Any]]:
    """Runs newest first (filtered); no store at ``state_dir`` is no runs, never an
    error (``monitor.list_runs``)."""
    runs = await monitor.list_runs(
        state=state or None, plan_id=plan_id or None, limit=LIST_LIMIT, state_dir=state_dir
    )
    return [run_summary(r) for r in runs]


@dataclass(frozen=True)
class RunDetail:
    """A run page's data: the run, its steps, the plan's edges, the event timeline."""

    run: dict[str, Any]
    steps: list[dict[str, Any]]
    #: step id -> ids it depends on (from the plan the run ran); empty if unknown.
    deps: dict[str, list[str]]
    timeline: list[dict[str, Any]]

    def to_builtins(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "steps": self.steps,
            "deps": self.deps,
            "timeline": self.timeline,
        }


async def run_detail(state_dir: Path, run_id: str) -> RunDetail | None:
    """Everything a run page shows, or None if there is no such run (or no store)."""
    try:
        async with monitor.open_session(state_dir) as session:
            progress = await session.progress(run_id)
            if progress is None:
                return None
            plan = await session.get_plan(run_id)
    except NoRunStore:
        return None
    steps = [step_summary(s) for s in progress.steps]
    run = run_summary(progress.run)
    run["progress_pct"] = progress.progress_pct
    timeline = [
        {"seq": e.seq, "ts": e.ts, "type": e.type, "step_id": e.step_id} for e in progress.timeline
    ]
    return RunDetail(run, steps, plan_deps(plan, progress.steps), timeline)


def plan_deps(plan: dict[str, Any] | None, steps: list[StepRecord]) -> dict[str, list[str]]:
    """step id -> its dependencies, from the stored plan (every step of the run is a
    key, in plan order, but the run handlers, which run after the graph; a run stored
    without its plan has no edges)."""
    deps: dict[str, list[str]] = {s.step_id: [] for s in steps if s.handler is None}
    # The stored plan is the plan as written: a matrix step ``test`` is not a step of
    # the run, its instances (``test[python=3.11]``) are, and so are its edges.
    matrix: dict[str, list[str]] = {}
    for sid in deps:
        if base_id(sid) != sid and base_id(sid) not in deps:
            matrix.setdefault(base_id(sid), []).append(sid)
    for step in (plan or {}).get("steps", []):
        if not isinstance(step, dict) or not isinstance(step.get("id"), str):
            continue
        sid = step["id"]
        wanted = [
            x for d in step.get("depends_on", []) for x in ([d] if d in deps else matrix.get(d, []))
        ]
        for target in [sid] if sid in deps else matrix.get(sid, []):
            deps[target] = wanted
    # An instance of a for_each step (``process[0:a]``) waits for what its step waits
    # for, and the step ends after its instances: draw it between them.
    made = [sid for sid in deps if base_id(sid) != sid and base_id(sid) in deps]
    upstream = {base_id(sid): deps[base_id(sid)] for sid in made}
    for sid in made:
        deps[sid] = list(upstream[base_id(sid)])
    for base in upstream:
        deps[base] = [sid for sid in made if base_id(sid) == base]
    return deps


async def step_record(state_dir: Path, run_id: str, step_id: str) -> StepRecord | None:
    """One step of a run, or None (no such run, step or store)."""
    try:
        steps = await monitor.get_steps(run_id, state_dir=state_dir)
    except NoRunStore:
        return None
    return next((s for s in steps if s.step_id == step_id), None)


async def run_exists(state_dir: Path, run_id: str) -> bool:
    """Whether ``state_dir``'s store has run ``run_id``."""
    try:
        return await monitor.get_run(run_id, state_dir=state_dir) is not None
    except NoRunStore:
        return False


def is_state(value: str | None) -> bool:
    return value is None or value == "" or value in RunState.__members__.values()


async def log_tail(
    state_dir: Path, run_id: str, step_id: str, lines: int, attempt: int | None = None
) -> dict[str, Any] | None:
    """The last ``lines`` lines of a step's attempt log (the last attempt by default),
    or None if there is no such run, step or attempt."""
    step = await step_record(state_dir, run_id, step_id)
    if step is None or not step.attempts:
        return None if step is None or attempt is not None else _no_log(step_id, None)
    chosen = step.attempts[-1] if attempt is None else None
    for a in step.attempts:
        if a.attempt == attempt:
            chosen = a
    if chosen is None:
        return None
    if chosen.log_path is None:
        return _no_log(step_id, chosen.attempt)
    text, problem, truncated = read_tail(chosen.log_path, max(1, min(lines, MAX_TAIL_LINES)))
    return {
        "step_id": step_id,
        "attempt": chosen.attempt,
        "lines": text.splitlines(),
        "truncated": truncated,
        "problem": problem,
    }


def _no_log(step_id: str, attempt: int | None) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "attempt": attempt,
        "lines": [],
        "truncated": False,
        "problem": "no log yet",
    }


def read_tail(path: str, lines: int) -> tuple[str, str | None, bool]:
    """(text of the last ``lines`` lines, why it cannot be read or None, whether older
    lines were left out). Reads at most :data:`MAX_TAIL_BYTES` from the end; never
    follows a link or blocks on a FIFO planted at the log path (only regular files)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "", "missing", False
    except OSError as exc:
        why = "a symbolic link: not read" if exc.errno == errno.ELOOP else exc.strerror
        return "", f"cannot be read: {why}", False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "", "not a regular file: not read", False
        end = f.seek(0, os.SEEK_END)
        start = max(0, end - MAX_TAIL_BYTES)
        f.seek(start)
        data = f.read(end - start)
    kept = data.splitlines()
    cut = start > 0 or len(kept) > lines
    if start > 0 and kept:
        kept = kept[1:]  # the first line read is probably partial
    return b"\n".join(kept[-lines:]).decode("utf-8", "replace"), None, cut
