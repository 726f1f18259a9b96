"""``list`` and ``prune`` on a store that has seen 100,000 runs (issue 18, retention).

Builds a state dir of N finished runs (default 100,000; one a minute going back, the
newest first): 60% of plan ``every-minute``, the rest spread over 9 other plans. Each
is a copy of one real 3-step run (``run_plan`` with the local executor) with its own
id and times, written through the store's own statements and event projection
(``store.sql``, ``store.projection.Projection``) in large transactions, with its
``events.jsonl`` and one log per attempt, as a real run leaves them.

Then times, as the user runs them (``python -m planrun ...`` in a fresh process,
output to a pipe that is read and dropped): ``list``, ``list --plan every-minute``,
``list --plan plan-3 --state failed``, ``prune --dry-run --keep-last 100`` (lists
about 99,000 runs), each ``--rounds`` times interleaved (median and min wall, median
CPU = user+sys); then three real prunes of 10,000 runs each (``--older-than``: the
10,000 oldest left), one round each (a prune cannot be repeated on the same store),
and ``list`` again after them.

Run from the repository root with the project's venv::

    python bench/bench_list.py                 # 100,000 runs, 5 rounds
    python bench/bench_list.py --runs 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import msgspec

from planrun import run_plan
from planrun.events import AttemptStarted, Event, encode_event
from planrun.store import sql
from planrun.store.projection import Projection
from planrun.store.reader import RunReader

PLANRUN = [sys.executable, "-m", "planrun"]
CHUNK = 5000
STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def _template(root: Path) -> tuple[dict[str, object], list[tuple[str, str]], list[Event]]:
    """One real run: its ``runs`` row, its ``(step_id, name)`` steps and its events."""
    plan = {
        "plan_id": "template",
        "steps": [
            {"id": "build", "command": "sh", "args": ["-c", "echo building"]},
            {"id": "test", "command": "sh", "args": ["-c", "echo ok"], "depends_on": ["build"]},
            {"id": "ship", "command": "true", "depends_on": ["test"]},
        ],
    }

    async def go() -> tuple[str, list[Event]]:
        result = await run_plan(plan, state_dir=root, run_id="template")
        async with RunReader.open(root) as reader:
            return result.run_id, await reader.get_events(result.run_id)

    run_id, events = anyio.run(go)
    con = sqlite3.connect(root / "runs.db")
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone())
    steps = [(r["step_id"], r["name"]) for r in con.execute(sql.SELECT_STEPS, (run_id,))]
    con.close()
    return row, steps, events


def _copy(events: list[Event], run_id: str, start: datetime, state_dir: Path) -> list[Event]:
    """The template's events as run ``run_id`` that started at ``start``."""
    first = datetime.fromisoformat(events[0].ts.replace("Z", "+00:00"))
    out: list[Event] = []
    for event in events:
        at = start + (datetime.fromisoformat(event.ts.replace("Z", "+00:00")) - first)
        changes: dict[str, object] = {"run_id": run_id, "ts": at.strftime(STAMP)}
        if isinstance(event, AttemptStarted) and event.log_path:
            log = state_dir / "runs" / run_id / "logs" / Path(event.log_path).name
            changes["log_path"] = str(log)
        out.append(msgspec.structs.replace(event, **changes))
    return out


def _plan_of(i: int) -> str:
    return "every-minute" if i % 10 < 6 else f"plan-{i % 10 - 5}"


def build(state_dir: Path, runs: int) -> None:
    """A store of ``runs`` finished runs (see the module docstring)."""
    template_dir = state_dir.parent / "template"
    row, steps, events = _template(template_dir)
    # The schema, by the store itself (the template run made it): copy its empty shape.
    con = sqlite3.connect(state_dir / "runs.db", isolation_level=None)
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=OFF"):
        con.execute(pragma)
    for version in sorted(sql.MIGRATIONS):
        for statement in sql.MIGRATIONS[version]:
            con.execute(statement)
    con.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")
    (state_dir / "runs").mkdir(mode=0o700)
    now = datetime.now(UTC)
    logs = {Path(e.log_path).name for e in events if isinstance(e, AttemptStarted) and e.log_path}
    for start in range(0, runs, CHUNK):
        con.execute("BEGIN IMMEDIATE")
        for i in range(start, min(start + CHUNK, runs)):
            began = now - timedelta(minutes=i + 1)
            run_id = began.strftime("%Y%m%dT%H%M%S%f")[:-3] + f"Z-{i:06x}"
            mine = _copy(events, run_id, began, state_dir)
            bodies = [encode_event(e) for e in mine]
            run = row | {
                "run_id": run_id,
                "plan_id": _plan_of(i),
                "started_at": mine[0].ts,
                "parent_run_id": None,
                "parent_step_id": None,
            }
            con.execute(sql.INSERT_RUN, run)
            con.executemany(
                sql.INSERT_STEP,
                [
                    {"run_id": run_id, "step_id": s, "position": n, "name": name}
                    for n, (s, name) in enumerate(steps)
                ],
            )
            project = Projection(mine, bodies)
            con.executemany(sql.INSERT_EVENT, project.events)
            con.executemany(sql.UPSERT_ATTEMPT, project.attempts())
            con.executemany(sql.UPDATE_STEP, project.steps())
            con.executemany(sql.FINISH_RUN, project.run_updates)
            con.execute(
                sql.UPDATE_RUN_SEQ, {"seq": mine[-1].seq, "ts": mine[-1].ts, "run_id": run_id}
            )
            _files(state_dir / "runs" / run_id, bodies, logs)
        con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    os.chmod(state_dir / "runs.db", 0o600)
    shutil.rmtree(template_dir)


def _files(run_dir: Path, bodies: list[bytes], logs: set[str]) -> None:
    (run_dir / "logs").mkdir(mode=0o700, parents=True)
    (run_dir / "events.jsonl").write_bytes(b"".join(b + b"\n" for b in bodies))
    for name in logs:
        (run_dir / "logs" / name).write_bytes(b"building\n")


def timed(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user+sys) and output lines of ``planrun ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([*PLANRUN, *args], capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"planrun {' '.join(args)}: exit {done.returncode}: {done.stderr!r}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout.count(b"\n")


def _row(name: str, samples: list[tuple[float, float, int]]) -> str:
    walls = [s[0] for s in samples]
    cpu = statistics.median(s[1] for s in samples)
    return (
        f"| {name} | {len(samples)} | {statistics.median(walls):.3f} | {min(walls):.3f} "
        f"| {cpu:.3f} | {samples[-1][2]} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the store here")
    opts = parser.parse_args()
    base = opts.keep or Path(tempfile.mkdtemp(prefix="bench-list-"))
    state = base / "state"
    try:
        if not (state / "runs.db").exists():
            state.mkdir(parents=True, mode=0o700, exist_ok=True)
            t0 = time.perf_counter()
            build(state, opts.runs)
            print(f"built {opts.runs} runs in {time.perf_counter() - t0:.1f}s at {state}")
        sd = ["--state-dir", str(state)]
        reads = {
            "list": ["list", *sd],
            "list --plan every-minute": ["list", "--plan", "every-minute", *sd],
            "list --plan plan-3 --state failed": [
                "list",
                "--plan",
                "plan-3",
                "--state",
                "failed",
                *sd,
            ],
            "list --state succeeded": ["list", "--state", "succeeded", *sd],
            "list --limit 1000": ["list", "--limit", "1000", *sd],
            "prune --dry-run --keep-last 100": ["prune", "--dry-run", "--keep-last", "100", *sd],
        }
        samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in reads}
        for _ in range(opts.rounds):
            for name, args in reads.items():
                samples[name].append(timed(args))
        print("| command | rounds | median s | min s | CPU s (median) | lines out |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in reads:
            print(_row(name, samples[name]))
        left, each = opts.runs, min(10_000, opts.runs // 5)
        for _ in range(3):
            minutes = left - each - 0.5  # the oldest ``each`` left are older than this
            args = ["prune", "--older-than", f"{minutes}m", *sd]
            print(_row(f"prune --older-than {minutes}m ({each} runs)", [timed(args)]))
            left -= each
        print(_row("list (after the prunes)", [timed(reads["list"]) for _ in range(opts.rounds)]))
    finally:
        if opts.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
