"""Start-up benchmark: what one short ``planrun`` command costs, phase by phase.

Every figure is a whole process started from here (``posix_spawn``, waited with
``wait4``, so each child's own CPU time is known), median and min over ``--runs``:

* ``python -c pass``: the interpreter alone, the floor;
* ``import planrun.cli.app``: what the CLI imports before it parses its arguments;
* ``planrun --version`` and ``planrun validate one.json``;
* ``planrun run one.json`` (one ``true`` step, fresh state dir each time), cut into
  phases by the run's own event timestamps (``events.jsonl``) against the moment of
  the spawn: *run recorded* (imports, validation, store open and schema check, leftover
  sweep, run lock, ``run_started`` written), *first step started* (``attempt_started``:
  the watchdog and the step's process are up), *run end* (``run_finished``) and *exit*
  (the summary, closing the store, the interpreter's exit);
* ``planrun run one.json`` again in a state dir that already holds runs (what a user
  running a plan again pays: no new files to create and sync);
* with ``--doit PATH``, ``doit`` of the same one-step task (its own ``.doit.db`` kept
  between rounds), the peer the issue measures start-up against.

With ``--old-src DIR`` (a copy of another version's ``src``, e.g.
``git archive main src | tar -x -C /tmp/old``) every command also runs with
``PYTHONPATH=DIR``, interleaved with the current code round by round (A B A B), and
the table gains the old figures and the ratio new / old.

Run from the repository root with the project's venv::

    python bench/bench_startup.py                       # 15 rounds
    python bench/bench_startup.py --runs 30 --old-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PLAN = {"plan_id": "one", "steps": [{"id": "a", "command": "true"}]}

#: Row names, in the order the table shows them.
ROWS = (
    "python -c pass",
    "import planrun.cli.app",
    "planrun --version",
    "planrun validate",
    "run: run recorded",
    "run: first step started",
    "run: run end",
    "run: exit (whole process)",
    "run, existing state dir (whole process)",
    "doit, one task (whole process)",
)

DODO = """DOIT_CONFIG = {"verbosity": 0, "default_tasks": ["step"]}


def task_step():
    yield {"name": "a", "actions": [["true"]], "uptodate": [False], "verbosity": 0}
"""


@dataclass
class Samples:
    """Wall (ms) and CPU (ms, user+sys of the child and what it reaped) per row."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def add(self, row: str, wall_s: float, cpu_s: float | None = None) -> None:
        self.wall.setdefault(row, []).append(wall_s * 1000)
        if cpu_s is not None:
            self.cpu.setdefault(row, []).append(cpu_s * 1000)


def _spawn(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Run ``argv`` to its end; (wall-clock start, wall seconds, CPU seconds)."""
    path = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        started = time.time()
        t0 = time.perf_counter()
        pid = os.posix_spawn(
            path,
            list(argv),
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
        )
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({os.waitstatus_to_exitcode(status)})")
    return started, wall, usage.ru_utime + usage.ru_stime


def _event_times(state_dir: Path) -> dict[str, float]:
    """The wall-clock time of each event type of the only run in ``state_dir``."""
    (events,) = state_dir.glob("runs/*/events.jsonl")
    times: dict[str, float] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        stamp = dt.datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        times.setdefault(event["type"], stamp.timestamp())
    return times


def _one_round(
    samples: Samples, env: dict[str, str], work: Path, python: str, doit: str | None
) -> None:
    """Every row once, with ``env`` (doit's only when ``doit`` is its path)."""
    # What the console script runs: cli.entry's main where that version has one.
    src = Path(env.get("PYTHONPATH") or Path(__file__).resolve().parents[1] / "src")
    entry = "entry" if (src / "planrun" / "cli" / "entry.py").exists() else "app"
    planrun = [python, "-c", f"import sys; from planrun.cli.{entry} import main; sys.exit(main())"]
    _, wall, cpu = _spawn([python, "-c", "pass"], env, work)
    samples.add(ROWS[0], wall, cpu)
    _, wall, cpu = _spawn([python, "-c", "import planrun.cli.app"], env, work)
    samples.add(ROWS[1], wall, cpu)
    _, wall, cpu = _spawn([*planrun, "--version"], env, work)
    samples.add(ROWS[2], wall, cpu)
    _, wall, cpu = _spawn([*planrun, "validate", "one.json"], env, work)
    samples.add(ROWS[3], wall, cpu)
    state = Path(tempfile.mkdtemp(dir=work))
    try:
        argv = [*planrun, "run", "one.json", "--plain", "--state-dir", str(state)]
        started, wall, cpu = _spawn(argv, env, work)
        times = _event_times(state)
    finally:
        shutil.rmtree(state)
    samples.add(ROWS[4], times["run_started"] - started)
    samples.add(ROWS[5], times["attempt_started"] - started)
    samples.add(ROWS[6], times["run_finished"] - started)
    samples.add(ROWS[7], wall, cpu)
    # One state dir per environment, kept across rounds (the old code keeps its own).
    kept = work / ("state-old" if "PYTHONPATH" in env else "state-new")
    argv = [*planrun, "run", "one.json", "--plain", "--state-dir", str(kept)]
    _, wall, cpu = _spawn(argv, env, work)
    samples.add(ROWS[8], wall, cpu)
    if doit is not None:
        argv = [doit, "-f", "dodo.py", "--db-file", ".doit.db", "-n", "8", "-P", "thread"]
        _, wall, cpu = _spawn(argv, env, work)
        samples.add(ROWS[9], wall, cpu)


def _cell(values: list[float] | None) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):.1f} / {min(values):.1f}"


def _ratio(new: list[float] | None, old: list[float] | None) -> str:
    if not new or not old:
        return "—"
    return f"{statistics.median(new) / statistics.median(old):.2f}x"


def _print_table(runs: int, new: Samples, old: Samples | None) -> None:
    """The rows, then each whole-process row against doit's (when timed)."""
    head = "| phase (ms from spawn, median / min) | wall | CPU |"
    rule = "|---|--:|--:|"
    if old is not None:
        head += " old wall | old CPU | wall new/old | CPU new/old |"
        rule += "--:|--:|--:|--:|"
    print(f"\nstart-up, {runs} rounds{' interleaved with the old code' if old else ''}\n")
    print(head)
    print(rule)
    for row in ROWS:
        line = f"| {row} | {_cell(new.wall.get(row))} | {_cell(new.cpu.get(row))} |"
        if old is not None:
            line += (
                f" {_cell(old.wall.get(row))} | {_cell(old.cpu.get(row))} |"
                f" {_ratio(new.wall.get(row), old.wall.get(row))} |"
                f" {_ratio(new.cpu.get(row), old.cpu.get(row))} |"
            )
        print(line)
    doit = new.wall.get(ROWS[9])
    if not doit:
        return
    print("\nagainst doit in the same rounds (median wall / median CPU)\n")
    print("| command | new / doit | old / doit |" if old else "| command | / doit |")
    print("|---|--:|--:|" if old else "|---|--:|")
    for row in (ROWS[2], ROWS[3], ROWS[7], ROWS[8]):
        cells = [_vs(new, row, new), *([_vs(old, row, new)] if old else [])]
        print(f"| {row} | {' | '.join(cells)} |")


def _vs(samples: Samples, row: str, peer: Samples) -> str:
    """``row`` of ``samples`` against doit's row of ``peer``: wall and CPU ratios."""
    wall = _ratio(samples.wall.get(row), peer.wall.get(ROWS[9]))
    cpu = _ratio(samples.cpu.get(row), peer.cpu.get(ROWS[9]))
    return f"{wall} / {cpu}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--old-src", type=Path, help="another version's src/ to compare")
    parser.add_argument("--python", default=sys.executable, help="the venv's python")
    parser.add_argument("--doit", help="a doit executable: time it in the same rounds")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    # Cached bytecode, as an installed planrun has: without it every module is compiled
    # from source on every start (PYTHONDONTWRITEBYTECODE is set on some CI machines).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    old_env = None
    if args.old_src is not None:
        old_env = {**env, "PYTHONPATH": str(args.old_src.resolve())}
    new, old = Samples(), (Samples() if old_env is not None else None)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        work = Path(tmp)
        (work / "one.json").write_text(json.dumps(PLAN))
        (work / "dodo.py").write_text(DODO)
        os.chdir(work)
        for index in range(args.runs + 1):  # round 0 warms the caches, not counted
            target = new if index else Samples()
            _one_round(target, env, work, args.python, args.doit)
            if old_env is not None:
                _one_round(old if index and old else Samples(), old_env, work, args.python, None)
    _print_table(args.runs, new, old)


if __name__ == "__main__":
    main()
