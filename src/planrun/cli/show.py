"""``planrun show RUN``: a run, its steps and attempts, at any size of run.

A run of up to :data:`SHOW_ROWS` steps is shown whole, as always. A larger one gets a
summary instead: how many steps ended in each state, the steps that did not succeed
and the first rows, and how to see the rest (``--all``: every row, ``--json``). Both
of these stream: the rows are written as they are read from the store, so memory
stays bounded whatever the size of the run (``--all`` reads the steps twice: once to
measure the columns, once to write them, inside one consistent snapshot).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import msgspec
from rich.console import Console

from .. import monitor
from ..errors import UsageError
from ..exitcodes import ExitCode
from ..model import StepState
from ..records import RunRecord, StepRecord
from .common import command_hint, out_console
from .showtext import StepTable, run_lines, state_dir_lines
from .view import STYLE, format_duration, log_tail

__all__ = ["SHOW_ROWS", "print_lines", "show_run", "watch_summary"]

#: Above this many steps ``show`` prints a summary (``--all``: every step).
SHOW_ROWS = 200
#: The states ``show``'s summary lists the steps of: the ones that did not end well.
_TROUBLE = (StepState.FAILED, StepState.TIMED_OUT, StepState.CRASHED, StepState.CANCELLED)
#: Lines handed to the console at once (one call per line costs 7x as much).
_CHUNK = 500


async def show_run(session: monitor.Session, run: RunRecord, as_json: bool, every: bool) -> int:
    """Print run ``run`` (found in ``session``) as ``show`` does; the exit code."""
    run_id = run.run_id
    async with session.snapshot():
        current = await session.get_run(run_id, check_owner=False)
        if current is None:  # deleted (`planrun prune`) since it was found
            raise UsageError(f"run {run_id} was just deleted (pruned)")
        if as_json:
            await _write_json(session, current)
            return ExitCode.OK
        counts = await session.count_steps(run_id)
        console = out_console()
        width = console.width if console.is_terminal else None
        heading = run_lines(current, session.state_dir)
        heading += state_dir_lines(session.state_dir, width)
        total = sum(counts.values())
        if every or total <= SHOW_ROWS:
            print_lines(console, heading)
            await _every_step(console, session, run_id, width)
        else:
            print_lines(console, [*heading, _counts_line(total, counts)])
            await _summary(console, session, run_id, width, total)
    return ExitCode.OK


def print_lines(console: Console, lines: Iterable[str]) -> None:
    """Print ``lines`` as they are, a chunk at a time."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == _CHUNK:
            console.print("\n".join(chunk), markup=False, emoji=False)
            chunk = []
    if chunk:
        console.print("\n".join(chunk), markup=False, emoji=False)


async def _write_json(session: monitor.Session, run: RunRecord) -> None:
    """``{"run": ..., "steps": [...]}``, byte for byte as one ``msgspec`` encoding of
    it, written a step at a time."""
    out = sys.stdout
    encode = msgspec.json.Encoder().encode
    out.write('{"run":' + encode(run).decode() + ',"steps":[')
    first = True
    async for step in session.iter_steps(run.run_id):
        out.write(("" if first else ",") + encode(step).decode())
        first = False
    out.write("]}\n")


async def _every_step(
    console: Console, session: monitor.Session, run_id: str, width: int | None
) -> None:
    """Every step's rows, then the outputs: measured in one pass, written in the next."""
    table = StepTable(session.state_dir)
    has_outputs = False
    async for step in session.iter_steps(run_id):
        table.measure(step)
        has_outputs = has_outputs or bool(step.outputs)
    table.fit(width)
    print_lines(console, table.header())
    batch: list[str] = []
    async for step in session.iter_steps(run_id):
        batch += table.lines(step)
        if len(batch) >= _CHUNK:
            print_lines(console, batch)
            batch = []
    print_lines(console, batch)
    if has_outputs:
        console.print("outputs", markup=False)
        lines: list[str] = []
        async for step in session.iter_steps(run_id):
            lines += _output_lines(step)
        print_lines(console, lines)


def _output_lines(step: StepRecord) -> list[str]:
    """``  STEP.KEY = 'value'`` for each of the step's outputs."""
    lines = []
    for key, value in (step.outputs or {}).items():
        masked = " (held a secret)" if key in step.masked_outputs else ""
        lines.append(f"  {step.step_id}.{key} = {value!r}{masked}")
    return lines


def _counts_line(total: int, counts: dict[str, int]) -> str:
    """``steps     100,000: 99,997 succeeded, 3 failed`` (states in their enum order)."""
    parts = [f"{counts[s.value]:,} {s.value}" for s in StepState if counts.get(s.value)]
    return f"steps     {total:,}: " + ", ".join(parts)


async def _summary(
    console: Console, session: monitor.Session, run_id: str, width: int | None, total: int
) -> None:
    """The steps that did not end well and the first rows (each at most SHOW_ROWS),
    laid out as one table, then how many were left out and how to see them."""
    trouble = await session.get_some_steps(
        run_id, limit=SHOW_ROWS, states=[s.value for s in _TROUBLE]
    )
    first = await session.get_some_steps(run_id, limit=SHOW_ROWS)
    table = StepTable(session.state_dir)
    for step in (*trouble, *first):
        table.measure(step)
    table.fit(width)
    lines: list[str] = []
    if trouble:
        lines.append(f"steps that did not succeed (the first {len(trouble):,}, in plan order)")
        lines += _rows(table, trouble)
    lines.append(f"the first {len(first):,} steps")
    lines += _rows(table, first)
    shown = {s.step_id: s for s in (*trouble, *first)}
    outputs = [line for step in shown.values() for line in _output_lines(step)]
    if outputs:
        lines += ["outputs (of the steps above)", *outputs]
    all_rows = command_hint("show", run_id, "--all", state_dir=session.state_dir)
    as_json = command_hint("show", run_id, "--json", state_dir=session.state_dir)
    lines.append(
        f"{total - len(shown):,} of {total:,} steps not shown: `{all_rows}` shows every "
        f"step, `{as_json}` every step as JSON"
    )
    print_lines(console, lines)


def _rows(table: StepTable, steps: Iterable[StepRecord]) -> list[str]:
    return [*table.header(), *(line for step in steps for line in table.lines(step))]


async def watch_summary(console: Console, session: monitor.Session, run: RunRecord) -> int:
    """``watch`` of a finished run of over :data:`SHOW_ROWS` steps: its outcome from
    the store, as the end of a replay would say it (the steps by state, each failed
    step with its log's tail), without replaying every event; the run's exit code."""
    counts = await session.count_steps(run.run_id)
    failed = await session.get_some_steps(
        run.run_id, limit=SHOW_ROWS, states=[StepState.FAILED.value, StepState.TIMED_OUT.value]
    )
    parts = [f"{counts[s.value]} {s.value}" for s in StepState if counts.get(s.value)]
    lines = [
        f"run {run.run_id} {run.state.value} in {format_duration(run.duration_sec)} "
        f"({', '.join(parts) or 'none'})"
    ]
    if run.reason and run.state.value != "succeeded":
        lines.append(f"  reason: {run.reason}")
    for step in failed:
        lines.append(
            f"{STYLE[step.state][0]} {step.step_id}: {step.state.value}, {step.reason or ''}, "
            f"{len(step.attempts)} attempt(s)"
        )
        path = step.attempts[-1].log_path if step.attempts else None
        if path:
            lines += [f"  log: {path}", *(f"  | {line}" for line in log_tail(path))]
    events = command_hint("watch", run.run_id, "--json", state_dir=session.state_dir)
    steps = command_hint("show", run.run_id, state_dir=session.state_dir)
    lines.append(
        f"(a finished run of {sum(counts.values()):,} steps: its {run.last_seq:,} events are "
        f"not replayed; `{steps}` shows its steps, `{events}` streams every event)"
    )
    print_lines(console, lines)
    return run.exit_code if run.exit_code is not None else ExitCode.FAILED
