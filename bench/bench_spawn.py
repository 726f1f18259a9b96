"""Spawn-overhead benchmark: planrun against make (and ninja) on trivial steps.

Every step runs ``true``, so the wall time is almost all per-step overhead: process
spawn, scheduling, event recording (SQLite + JSONL) and log files. Two workloads:

* ``independent``: N steps with no dependencies (default 2,000; 200 with ``--quick``);
* ``chain``: a chain of M steps, step i depending on step i-1 (default 500; 100).

Tools, each run with 8-way concurrency:

* ``make -j8`` and ``ninja -j8`` (if installed) on equivalent build files;
* ``planrun cli``: ``python -m planrun run PLAN --max-concurrency 8 --plain
  --state-dir <fresh>`` as a subprocess (includes interpreter start-up and imports);
* ``planrun api``: ``anyio.run(run_plan, ...)`` in this process (asyncio backend),
  with a fresh state dir each repetition;
* ``planrun api+out`` (with ``--on-output``): the same with an ``on_output`` callback
  that does nothing (every step's output then goes through a pipe and the pump).

Each planrun run is checked (exit 0 / ``RunResult.ok``) and its ``runs.db`` must hold
``3 * steps + 2`` events. The table shows the best and median wall time
(``time.perf_counter``) of ``--repeat`` runs, milliseconds per step (best / steps) and
the ratio to make's best time; the peak RSS of this process (which runs the API
workloads) is printed under it.

Run from the repository root with the project's venv::

    python bench/bench_spawn.py              # default sizes, 3 repetitions
    python bench/bench_spawn.py --quick      # 200 / 100 steps, 1 repetition
    python bench/bench_spawn.py --profile    # also cProfile one API run (top 15)
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from planrun import OutputLine, run_plan

CONCURRENCY = 8


@dataclass(frozen=True)
class Workload:
    name: str
    steps: int
    plan: Path
    makefile: Path
    ninja_file: Path | None


@dataclass(frozen=True)
class Row:
    workload: str
    tool: str
    steps: int
    times: list[float]
    check: str

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


# --- generating ----------------------------------------------------------------------


def _step_ids(n: int) -> list[str]:
    return [f"s{i:04d}" for i in range(n)]


def write_plan(path: Path, n: int, *, chain: bool) -> None:
    ids = _step_ids(n)
    steps: list[dict[str, object]] = []
    for i, sid in enumerate(ids):
        step: dict[str, object] = {"id": sid, "command": "true"}
        if chain and i > 0:
            step["depends_on"] = [ids[i - 1]]
        steps.append(step)
    plan = {"plan_id": path.stem, "steps": steps}
    path.write_text(json.dumps(plan), encoding="utf-8")


def write_makefile(path: Path, n: int, *, chain: bool) -> None:
    ids = _step_ids(n)
    lines = [f".PHONY: all {' '.join(ids)}", f"all: {ids[-1] if chain else ' '.join(ids)}"]
    for i, sid in enumerate(ids):
        dep = f" {ids[i - 1]}" if chain and i > 0 else ""
        lines += [f"{sid}:{dep}", "\ttrue"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_ninja(path: Path, n: int, *, chain: bool) -> None:
    # Outputs are never created, so every edge is dirty and runs on each invocation.
    ids = _step_ids(n)
    lines = ["rule t", "  command = true", ""]
    for i, sid in enumerate(ids):
        dep = f" {ids[i - 1]}" if chain and i > 0 else ""
        lines.append(f"build {sid}: t{dep}")
    lines.append(f"default {ids[-1] if chain else ' '.join(ids)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_workload(root: Path, name: str, n: int, *, chain: bool, ninja: bool) -> Workload:
    d = root / name
    d.mkdir()
    plan, makefile = d / f"{name}.json", d / "Makefile"
    write_plan(plan, n, chain=chain)
    write_makefile(makefile, n, chain=chain)
    ninja_file = d / "build.ninja" if ninja else None
    if ninja_file is not None:
        write_ninja(ninja_file, n, chain=chain)
    return Workload(name, n, plan, makefile, ninja_file)


# --- measuring -----------------------------------------------------------------------


def count_events(state_dir: Path) -> int:
    con = sqlite3.connect(state_dir / "runs.db")
    try:
        (count,) = con.execute("SELECT count(*) FROM events").fetchone()
        return int(count)
    finally:
        con.close()


def time_subprocess(argv: list[str], cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    wall = time.perf_counter() - start
    return wall, proc.returncode, proc.stderr.decode(errors="replace").strip()


def bench_build_tool(tool: str, argv: list[str], w: Workload, repeat: int) -> Row:
    times: list[float] = []
    failures: list[str] = []
    for _ in range(repeat):
        for junk in (".ninja_log", ".ninja_deps"):
            (w.plan.parent / junk).unlink(missing_ok=True)
        wall, rc, err = time_subprocess(argv, w.plan.parent)
        times.append(wall)
        if rc != 0:
            failures.append(f"exit {rc}: {err[-200:]}")
    return Row(w.name, tool, w.steps, times, failures[0] if failures else "exit 0")


def _check(ok: bool, events: int, expected: int) -> str:
    if ok and events == expected:
        return f"ok, {events} events"
    return f"FAIL (ok={ok}, {events}/{expected} events)"


def bench_cli(w: Workload, root: Path, repeat: int) -> Row:
    times: list[float] = []
    checks: list[str] = []
    expected = 3 * w.steps + 2
    for i in range(repeat):
        state = root / f"state-cli-{w.name}-{i}"
        argv = [
            sys.executable,
            "-m",
            "planrun",
            "run",
            str(w.plan),
            "--max-concurrency",
            str(CONCURRENCY),
            "--plain",
            "--state-dir",
            str(state),
        ]
        wall, rc, err = time_subprocess(argv, w.plan.parent)
        times.append(wall)
        events = count_events(state) if (state / "runs.db").exists() else 0
        checks.append(_check(rc == 0, events, expected) + (f" {err[-200:]}" if rc else ""))
        shutil.rmtree(state, ignore_errors=True)
    bad = [c for c in checks if not c.startswith("ok")]
    return Row(w.name, "planrun cli", w.steps, times, bad[0] if bad else checks[-1])


def _ignore_line(line: OutputLine) -> None:
    """An ``on_output`` that does nothing: what the pipe and the pump cost."""


def api_once(w: Workload, state: Path, on_output: bool = False) -> tuple[float, bool]:
    call = functools.partial(
        run_plan,
        w.plan,
        state_dir=state,
        max_concurrency=CONCURRENCY,
        on_output=_ignore_line if on_output else None,
    )
    start = time.perf_counter()
    result = anyio.run(call, backend="asyncio")
    return time.perf_counter() - start, result.ok


def bench_api(w: Workload, root: Path, repeat: int, on_output: bool = False) -> Row:
    times: list[float] = []
    checks: list[str] = []
    expected = 3 * w.steps + 2
    for i in range(repeat):
        state = root / f"state-api-{w.name}-{i}"
        wall, ok = api_once(w, state, on_output)
        times.append(wall)
        checks.append(_check(ok, count_events(state), expected))
        shutil.rmtree(state, ignore_errors=True)
    bad = [c for c in checks if not c.startswith("ok")]
    tool = "planrun api+out" if on_output else "planrun api"
    return Row(w.name, tool, w.steps, times, bad[0] if bad else checks[-1])


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux; it is the peak of the whole process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_api(w: Workload, root: Path, top: int = 15) -> None:
    state = root / f"state-profile-{w.name}"
    profiler = cProfile.Profile()
    profiler.enable()
    _, ok = api_once(w, state)
    profiler.disable()
    print(f"\ncProfile of one API run of {w.name} ({w.steps} steps, ok={ok}), top {top}:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)
    shutil.rmtree(state, ignore_errors=True)


# --- reporting -----------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    make_best = {r.workload: r.best for r in rows if r.tool == "make"}
    header = ("workload", "tool", "best s", "median s", "ms/step", "x make", "check")
    fmt = "{:<20} {:<12} {:>8} {:>9} {:>8} {:>7}  {}"
    print(fmt.format(*header))
    print(fmt.format(*("-" * len(h) for h in header)))
    for r in rows:
        ratio = r.best / make_best[r.workload] if r.workload in make_best else float("nan")
        print(
            fmt.format(
                f"{r.workload} ({r.steps})",
                r.tool,
                f"{r.best:.3f}",
                f"{r.median:.3f}",
                f"{r.best * 1000 / r.steps:.2f}",
                f"{ratio:.1f}",
                r.check,
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200/100 steps, 1 repetition")
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile one API run")
    parser.add_argument(
        "--on-output", action="store_true", help="also the API with an on_output callback"
    )
    args = parser.parse_args(argv)
    repeat: int = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    n_independent, n_chain = (200, 100) if args.quick else (2000, 500)
    make = shutil.which("make")
    ninja = shutil.which("ninja")
    if make is None:
        print("make not found", file=sys.stderr)
        return 2

    rows: list[Row] = []
    rss: list[tuple[str, float]] = [("before any API run", peak_rss_mib())]
    with tempfile.TemporaryDirectory(prefix="planrun-bench-") as tmp:
        root = Path(tmp)
        workloads = [
            make_workload(root, "independent", n_independent, chain=False, ninja=bool(ninja)),
            make_workload(root, "chain", n_chain, chain=True, ninja=bool(ninja)),
        ]
        for w in workloads:
            make_argv = [make, f"-j{CONCURRENCY}", "-f", str(w.makefile)]
            tools: list[Callable[[], Row]] = [
                functools.partial(bench_build_tool, "make", make_argv, w, repeat)
            ]
            if ninja is not None and w.ninja_file is not None:
                ninja_argv = [ninja, f"-j{CONCURRENCY}", "-f", str(w.ninja_file)]
                tools.append(functools.partial(bench_build_tool, "ninja", ninja_argv, w, repeat))
            tools.append(functools.partial(bench_cli, w, root, repeat))
            tools.append(functools.partial(bench_api, w, root, repeat))
            if args.on_output:
                tools.append(functools.partial(bench_api, w, root, repeat, True))
            for run in tools:
                rows.append(run())
            rss.append((f"after API runs of {w.name}", peak_rss_mib()))
        print(f"concurrency {CONCURRENCY}, {repeat} repetition(s), python {sys.version.split()[0]}")
        print_table(rows)
        print("peak RSS of this process (ru_maxrss, process-wide peak so far):")
        for label, mib in rss:
            print(f"  {label:<28} {mib:7.1f} MiB")
        if args.profile:
            profile_api(workloads[0], root)
    return 0 if all(r.check.startswith(("ok", "exit 0")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
