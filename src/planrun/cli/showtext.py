"""``planrun show`` as text: the run's heading and its step table, fitted to the
terminal without cutting an id or a path (see :mod:`.tables`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..records import AttemptRecord, RunRecord, StepRecord
from .tables import GAP, Column, layout, utc_clock, utc_stamp, wrap_words
from .view import format_duration

__all__ = ["run_lines", "state_dir_lines", "step_lines"]


def run_lines(run: RunRecord, state_dir: Path) -> list[str]:
    """``show``'s heading: one fact a line, times in UTC, each variable on its own line."""
    lines = [f"run       {run.run_id}", f"plan      {run.plan_id}"]
    if run.plan_path:
        lines.append(f"plan file {run.plan_path}")
    lines += [
        f"state     {run.state.value}"
        + (f" (exit code {run.exit_code})" if run.exit_code is not None else "")
        + (f": {run.reason}" if run.reason else ""),
        f"started   {utc_stamp(run.started_at)}",
        f"ended     {utc_stamp(run.ended_at) or '-'}"
        + (f" ({format_duration(run.duration_sec)})" if run.duration_sec is not None else ""),
        f"owner     pid {run.owner_pid} on {run.owner_host} ({run.owner_kind})",
    ]
    if run.executor:
        lines.append(f"executor  {run.executor}")
    if run.parent_run_id:
        lines.append(f"parent    run {run.parent_run_id}, step {run.parent_step_id}")
    if run.heartbeat_at:
        lines.append(f"heartbeat {utc_stamp(run.heartbeat_at)}")
    if run.resumes:
        lines.append(f"resumed   {run.resumes} time(s)")
    for index, (name, value) in enumerate(run.variables.items()):
        lines.append(("variables " if index == 0 else " " * 10) + f"{name}={value}")
    if run.secret_names:
        lines.append("secrets   " + " ".join(run.secret_names) + " (values masked as ***)")
    return lines


def state_dir_lines(state_dir: Path, width: int | None) -> list[str]:
    """Where the log paths below are relative to (wrapped between words at ``width``)."""
    text = f"state dir {state_dir.absolute()} (log paths below are relative to it)"
    return wrap_words(text, width, 0, hang=10)


#: ``show``'s step table (the detail column is added when it fits; otherwise each
#: detail goes on its own line under its row).
_STEP_COLUMNS = (
    Column("step"),
    Column("try", drop=3),
    Column("state"),
    Column("exit", drop=2),
    Column("started (UTC)", drop=1),
    Column("took", drop=4),
    Column("pid", drop=0),
)


def step_lines(steps: list[StepRecord], state_dir: Path, width: int | None) -> list[str]:
    """One row per step and per attempt. A detail (log path relative to the state dir,
    error or reason) is a last column when every row fits ``width``; else a line of its
    own under its row, wrapped between words only, so no path or id is ever cut."""
    rows: list[list[str]] = []
    details: list[str] = []
    for step in steps:
        rows.append(_row(step.step_id, "", step, ""))
        details.append(_detail(step))
        for a in step.attempts:
            rows.append(_row("", str(a.attempt), a, str(a.pid or "")))
            # A failed child's error names it already.
            child = f"child run {a.child_run_id}" if a.child_run_id else None
            details.append(a.error or child or _relative(a.log_path, state_dir))
    columns = (*_STEP_COLUMNS, Column("detail"))
    inline = layout(columns, [[*r, d] for r, d in zip(rows, details, strict=True)], None)
    if width is None or max(map(len, inline)) <= width:
        return inline
    lines = layout(_STEP_COLUMNS, rows, width)
    # Under the "try" column, or 8 columns in when step ids are long.
    indent = min(max([len("step"), *(len(s.step_id) for s in steps)]) + GAP, 8)
    out = lines[:1]
    for line, detail in zip(lines[1:], details, strict=True):
        out.append(line)
        if detail:
            # A path that would not fit under its row moves left (never cut).
            longest = max(map(len, detail.split()), default=0)
            out += wrap_words(detail, width, max(2, min(indent, width - longest)))
    return out


def _relative(path: str | None, state_dir: Path) -> str:
    """``path`` relative to the state dir when it lies inside it (as log paths do)."""
    if not path:
        return ""
    for base in (state_dir.absolute(), state_dir.resolve()):
        with contextlib.suppress(ValueError):
            return str(Path(path).relative_to(base))
    return path


def _row(first: str, attempt: str, record: StepRecord | AttemptRecord, pid: str) -> list[str]:
    return [
        first,
        attempt,
        record.state.value,
        "" if record.exit_code is None else str(record.exit_code),
        utc_clock(record.started_at),
        format_duration(record.duration_sec),
        pid,
    ]


def _detail(step: StepRecord) -> str:
    """A step's reason; a run handler's says which list it is in."""
    reason = step.reason or ""
    if step.handler is None or reason.startswith(f"handler {step.handler}"):
        return reason
    return f"handler {step.handler}: {reason}" if reason else f"handler {step.handler}"
