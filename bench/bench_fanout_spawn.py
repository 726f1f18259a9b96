"""Fan-out spawn benchmark: planrun's start-and-reap path against ``xargs -P`` and ninja.

Three flat workloads, each step one process, every event still recorded and every
attempt still logged:

* ``wide``: 2,000 independent ``true`` at concurrency 8 (also ``ninja -j8``);
* ``sleep256``: 2,000 ``sleep 0.1`` at concurrency 256 (ideal: 8 waves of 0.1 s);
* ``true10k``: 10,000 ``true`` at concurrency 8.

Beside planrun: ``xargs -P`` (C, records nothing), ninja (on ``wide``) and peerbench's
``minidag`` (~60 lines of anyio that spawn and wait, nothing recorded or logged: what a
Python design cannot go below on this machine).

Runners take turns round by round (A B A B ...), so drift on a shared machine hits
all alike. Each run is a whole process (``python -m planrun run PLAN --plain``, start-up
included; output to a file), timed with ``perf_counter`` around ``Popen``/``wait4``;
CPU is the run's user+sys including its reaped children (``wait4``'s rusage), which
noise affects less than the wall clock. ``--old SRC`` adds ``planrun-old``: the same
command with ``PYTHONPATH=SRC`` (e.g. ``git archive main src | tar -x -C /tmp/old``);
``--inline`` adds ``planrun-inline``: with ``PLANRUN_SPAWN_INLINE=1`` (spawns on the
event loop, not in the spawn thread).
Each planrun run must exit 0 and hold ``3 * steps + 2`` events in ``runs.db``.

The table shows, per runner, the median and min wall time, the median CPU, and the
median of the per-round ratios to ``xargs -P`` (and to planrun-old when given).

Run from the repository root with the project's venv::

    python bench/bench_fanout_spawn.py --rounds 5 --old /tmp/old/src
    python bench/bench_fanout_spawn.py --quick          # a tenth of the sizes, 3 rounds
    python bench/bench_fanout_spawn.py --only sleep256
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MINIDAG = Path(__file__).resolve().parent / "peerbench" / "minidag.py"


@dataclass(frozen=True)
class Workload:
    name: str
    steps: int
    argv: list[str]
    jobs: int


@dataclass
class Cell:
    """One runner's samples in one workload."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def workloads(scale: float) -> list[Workload]:
    return [
        Workload("wide", int(2000 * scale), ["true"], 8),
        Workload("sleep256", int(2000 * scale), ["sleep", "0.1"], 256),
        Workload("true10k", int(10000 * scale), ["true"], 8),
    ]


def write_inputs(d: Path, w: Workload) -> None:
    ids = [f"s{i}" for i in range(w.steps)]
    # (depends_on spelled out: minidag reads the plan format without defaults.)
    steps = [{"id": s, "command": w.argv[0], "args": w.argv[1:], "depends_on": []} for s in ids]
    plan = {"plan_id": w.name, "version": "1", "globals": {"max_concurrency": w.jobs}}
    plan["steps"] = steps  # type: ignore[assignment]
    (d / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    # xargs: one argument per line, so `xargs -n1 CMD` runs CMD [ARG] once per line.
    arg = w.argv[1] if len(w.argv) > 1 else None
    (d / "args.txt").write_text("".join(f"{arg or s}\n" for s in ids), encoding="utf-8")
    cmd = " ".join(w.argv)
    lines = ["rule t", f"  command = {cmd}", ""]
    lines += [f"build {s}: t" for s in ids]
    (d / "build.ninja").write_text("\n".join(lines) + "\n", encoding="utf-8")


def runners(
    w: Workload, d: Path, old: str | None, inline: bool
) -> dict[str, tuple[list[str], dict[str, str]]]:
    env = dict(os.environ)
    planrun = [sys.executable, "-m", "planrun", "run", str(d / "plan.json"), "--plain"]
    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    out["xargs"] = (
        ["xargs", "-a", str(d / "args.txt"), "-P", str(w.jobs), "-n", "1", w.argv[0]],
        env,
    )
    if w.name == "wide" and shutil.which("ninja"):
        out["ninja"] = (["ninja", "-j", str(w.jobs), "-f", str(d / "build.ninja")], env)
    # minidag: peerbench's ~60-line anyio runner that records and logs nothing, the
    # floor of a Python design on this machine (see bench/peerbench/minidag.py).
    minidag = [sys.executable, str(MINIDAG), "run", str(d / "plan.json"), "--watcher", "pidfd"]
    out["minidag"] = (minidag, env)
    out["planrun"] = (planrun, env)
    if inline:
        out["planrun-inline"] = (planrun, {**env, "PLANRUN_SPAWN_INLINE": "1"})
    if old:
        out["planrun-old"] = (planrun, {**env, "PYTHONPATH": old})
    return out


def count_events(state_dir: Path) -> int:
    con = sqlite3.connect(state_dir / "runs.db")
    try:
        (count,) = con.execute("SELECT count(*) FROM events").fetchone()
        return int(count)
    finally:
        con.close()


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall, cpu user+sys of it and its reaped children, exit status)."""
    with open(cwd / "out.log", "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def measure(w: Workload, root: Path, rounds: int, old: str | None, inline: bool) -> dict[str, Cell]:
    d = root / w.name
    d.mkdir()
    write_inputs(d, w)
    cells: dict[str, Cell] = {}
    for rnd in range(rounds + 1):  # round 0 warms the caches up and is not counted
        for name, (argv, env) in runners(w, d, old, inline).items():
            cell = cells.setdefault(name, Cell())
            state = d / ".planrun"
            shutil.rmtree(state, ignore_errors=True)
            for junk in (".ninja_log", ".ninja_deps"):
                (d / junk).unlink(missing_ok=True)
            wall, cpu, rc = run_once(argv, env, d)
            problem = f"exit {rc}" if rc else ""
            if name.startswith("planrun") and not rc:
                events = count_events(state)
                if events != 3 * w.steps + 2:
                    problem = f"{events} events"
            if problem:
                cell.failures.append(problem)
            if rnd:
                cell.wall.append(wall)
                cell.cpu.append(cpu)
    return cells


def ratio(cells: dict[str, Cell], name: str, base: str) -> str:
    if base not in cells or base == name:
        return ""
    per_round = [a / b for a, b in zip(cells[name].wall, cells[base].wall, strict=True)]
    return f"{statistics.median(per_round):.2f}x"


def report(w: Workload, cells: dict[str, Cell]) -> list[str]:
    lines = []
    for name, cell in cells.items():
        lines.append(
            f"| {w.name} ({w.steps} x {' '.join(w.argv)}, j={w.jobs}) | {name} "
            f"| {statistics.median(cell.wall):.2f} | {min(cell.wall):.2f} "
            f"| {statistics.median(cell.cpu):.2f} | {ratio(cells, name, 'xargs')} "
            f"| {ratio(cells, name, 'planrun-old')} "
            f"| {'; '.join(sorted(set(cell.failures))) or 'ok'} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a tenth of the sizes, 3 rounds")
    ap.add_argument("--only", action="append", help="wide, sleep256 or true10k (repeatable)")
    ap.add_argument("--old", metavar="SRC", help="also run planrun with PYTHONPATH=SRC")
    ap.add_argument(
        "--inline", action="store_true", help="also run planrun with PLANRUN_SPAWN_INLINE=1"
    )
    a = ap.parse_args()
    scale, rounds = (0.1, 3) if a.quick else (1.0, a.rounds)
    chosen = [w for w in workloads(scale) if not a.only or w.name in a.only]
    print(
        "| workload | runner | wall median s | wall min s | CPU median s | / xargs | / old | ok? |"
    )
    print("|---|---|--:|--:|--:|--:|--:|---|")
    with tempfile.TemporaryDirectory(prefix="planrun-fanout-") as tmp:
        for w in chosen:
            for line in report(w, measure(w, Path(tmp), rounds, a.old, a.inline)):
                print(line, flush=True)
    print(
        f"\n{rounds} counted rounds (plus one warm-up), runners interleaved; "
        f"ratios are medians of per-round ratios."
    )


if __name__ == "__main__":
    main()
