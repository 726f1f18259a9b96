"""``planrun show`` as text: the run's heading and its step table, fitted to the
terminal without cutting an id or a path (see :mod:`.tables`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..records import AttemptRecord, RunRecord, StepRecord
from ..triggers import fired_summary
from .tables import GAP, Column, kept_columns, table_line, utc_clock, utc_stamp, wrap_words
from .view import format_duration

__all__ = ["StepTable", "run_lines", "state_dir_lines"]


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
    if run.trigger:
        lines.append(f"trigger   {fired_summary(run.trigger)}")
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


class StepTable:
    """One row per step and per attempt, for steps that stream by. A detail (log path
    relative to the state dir, error or reason) is a last column when every row fits
    the width; else a line of its own under its row, wrapped between words only, so no
    path or id is ever cut. Every step is :meth:`measure` d first, then :meth:`fit`
    decides the layout, then :meth:`header` and each step's :meth:`lines` (in the same
    order) give the table, holding one step at a time (``show --all`` of a run of
    100,000 steps)."""

    def __init__(self, state_dir: Path) -> None:
        # Resolved once, not per log path (a resolve is a system call per component).
        self._bases = (state_dir.absolute(), state_dir.resolve())
        columns = (*_STEP_COLUMNS, Column("detail"))
        self._widths = [len(c.header) for c in columns]
        #: Column index -> the longest value (right-stripped) of the rows whose last
        #: non-blank value is in that column: how long their inline line is.
        self._tails: dict[int, int] = {}
        self._measure_values([c.header for c in columns])
        self._id_width = len("step")
        self._inline = True
        self._keep: list[int] = list(range(len(columns)))
        self._indent = 0
        self._width: int | None = None

    def _rows(self, step: StepRecord) -> list[tuple[list[str], str]]:
        """The step's rows (its own, then one per attempt), each with its detail."""
        rows = [(_row(step.step_id, "", step, ""), _detail(step))]
        for a in step.attempts:
            # A failed child's error names it already.
            child = f"child run {a.child_run_id}" if a.child_run_id else None
            detail = a.error or child or _relative(a.log_path, self._bases)
            rows.append((_row("", str(a.attempt), a, str(a.pid or "")), detail))
        return rows

    def _measure_values(self, values: list[str]) -> None:
        widths = self._widths
        last = -1
        for i, value in enumerate(values):
            widths[i] = max(widths[i], len(value))
            if value.strip():
                last = i
        if last >= 0:
            self._tails[last] = max(self._tails.get(last, 0), len(values[last].rstrip()))

    def measure(self, step: StepRecord) -> None:
        """Take the step's values into the column widths."""
        self._id_width = max(self._id_width, len(step.step_id))
        for row, detail in self._rows(step):
            self._measure_values([*row, detail])

    def fit(self, width: int | None) -> None:
        """Lay the table out for ``width`` (None: no limit), every step measured."""
        self._width = width
        offsets = [sum(w + GAP for w in self._widths[:i]) for i in range(len(self._widths))]
        longest = max((offsets[i] + n for i, n in self._tails.items()), default=0)
        self._inline = width is None or longest <= width
        if not self._inline:
            self._keep = kept_columns(_STEP_COLUMNS, self._widths[:-1], width)
            # Under the "try" column, or 8 columns in when step ids are long.
            self._indent = min(self._id_width + GAP, 8)

    def header(self) -> list[str]:
        """The header line."""
        columns = _STEP_COLUMNS if not self._inline else (*_STEP_COLUMNS, Column("detail"))
        return [table_line([c.header for c in columns], self._widths, self._keep)]

    def lines(self, step: StepRecord) -> list[str]:
        """The step's lines (its row, its attempts' rows, their details)."""
        out: list[str] = []
        for row, detail in self._rows(step):
            if self._inline:
                out.append(table_line([*row, detail], self._widths, self._keep))
                continue
            out.append(table_line(row, self._widths, self._keep))
            if detail:
                assert self._width is not None
                # A path that would not fit under its row moves left (never cut).
                longest = max(map(len, detail.split()), default=0)
                out += wrap_words(
                    detail, self._width, max(2, min(self._indent, self._width - longest))
                )
        return out


def _relative(path: str | None, bases: tuple[Path, ...]) -> str:
    """``path`` relative to the state dir (``bases``: its absolute and its resolved
    path) when it lies inside it (as log paths do)."""
    if not path:
        return ""
    for base in bases:
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
