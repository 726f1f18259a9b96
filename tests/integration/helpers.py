"""Shared helpers for the integration tests: plan builders, timing records, /proc scans."""

from __future__ import annotations

import os
import secrets
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from planrun.events import Event

#: The test interpreter: starts much faster than a pyenv shim.
PY = sys.executable

#: A shell step that records "<step> start <t>" and "<step> end <t>" in $TIMES and
#: sleeps $1 seconds in between.
TIMED_SCRIPT = (
    'echo "$PLANRUN_STEP_ID start $(date +%s.%N)" >> "$TIMES"; '
    'sleep "$1"; '
    'echo "$PLANRUN_STEP_ID end $(date +%s.%N)" >> "$TIMES"'
)


def make_plan(
    steps: Sequence[dict[str, Any]],
    plan_id: str = "itest",
    **globals_: Any,
) -> dict[str, Any]:
    """A plan dict; ``kill_grace_sec`` defaults to 0.2 s to keep tests fast."""
    globals_.setdefault("kill_grace_sec", 0.2)
    return {"plan_id": plan_id, "globals": globals_, "steps": list(steps)}


def sh_step(step_id: str, script: str, *args: str, **fields: Any) -> dict[str, Any]:
    """A step running ``sh -c script sh args...`` (values reach the script as $1...)."""
    return {"id": step_id, "command": "sh", "args": ["-c", script, "sh", *args], **fields}


def timed_step(step_id: str, sleep: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A step that records its start and end time in ``$TIMES``."""
    return sh_step(step_id, TIMED_SCRIPT, f"{sleep:g}", **fields)


def py_step(step_id: str, code: str, *args: str, **fields: Any) -> dict[str, Any]:
    """A step running ``python -c code args...`` with the test interpreter."""
    return {"id": step_id, "command": PY, "args": ["-c", code, *args], **fields}


@dataclass(frozen=True)
class Interval:
    """When a step's process recorded its start and end (epoch seconds)."""

    start: float
    end: float


def read_intervals(path: Path) -> dict[str, Interval]:
    """Parse the ``$TIMES`` file written by :func:`timed_step` steps."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for line in path.read_text().splitlines():
        step_id, kind, stamp = line.split()
        (starts if kind == "start" else ends)[step_id] = float(stamp)
    assert set(starts) == set(ends), f"unfinished steps in {path}: {starts.keys() ^ ends.keys()}"
    return {k: Interval(starts[k], ends[k]) for k in starts}


def start_order(path: Path) -> list[str]:
    """Step ids in the order their start lines were written."""
    return [line.split()[0] for line in path.read_text().splitlines() if " start " in line]


def max_overlap(intervals: Iterable[Interval]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted(
        [(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals],
        key=lambda p: (p[0], p[1]),
    )
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def parse_ts(stamp: str | None) -> float:
    """Epoch seconds of an event/row timestamp (``2024-01-01T00:00:00.000000Z``)."""
    assert stamp is not None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _state_of(pid: str) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def unique_run_id(prefix: str) -> str:
    """A run id no other test (or concurrently running suite) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


#: Set per test (conftest.py) in the environment the test's step processes inherit:
#: a /proc scan that requires it sees this test's processes only, never those of
#: another planrun run on the machine (another suite may use the same run ids).
MARK_VAR = "PLANRUN_ITEST_MARK"


def live_run_processes(run_id: str) -> list[int]:
    """Pids of this test's live (not zombie) processes whose environment has
    PLANRUN_RUN_ID=run_id (and this test's mark)."""
    return live_processes_with(f"PLANRUN_RUN_ID={run_id}", f"{MARK_VAR}={os.environ[MARK_VAR]}")


def live_processes_with(*env_entries: str) -> list[int]:
    """Pids of live (not zombie) processes whose environment contains every
    ``NAME=value`` of ``env_entries``."""
    needles = [entry.encode() for entry in env_entries]
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        entries = environ.split(b"\0")
        if not all(needle in entries for needle in needles):
            continue
        if _state_of(entry) not in (None, "Z", "X"):
            found.append(int(entry))
    return found


def read_text(path: str | Path | None) -> str:
    """The text of a file (a log path from a result must not be None)."""
    assert path is not None
    return Path(path).read_text()


async def poll_until(predicate: Callable[[], bool]) -> None:
    """Call ``predicate`` in a worker thread every 20 ms until it is true (wrap the call in
    ``anyio.fail_after``)."""
    while True:
        if await anyio.to_thread.run_sync(predicate):
            return
        await anyio.sleep(0.02)


def query(db: Path, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` read through a separate plain ``sqlite3`` connection."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


class EventLog:
    """An ``on_event`` callback that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, cls: type[Any]) -> list[Any]:
        """The events of one class, in order."""
        return [e for e in self.events if isinstance(e, cls)]
