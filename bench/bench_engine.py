"""Engine benchmark: what planrun's scheduler and recorder cost per step, against ninja.

Shapes (the same as ``../shared/peerbench``'s): ``chain`` (500 ``true`` steps, each
depending on the one before: per-step latency), ``layers`` (10 layers of 50, each step
depending on every step of the layer before: 22,500 edges), ``diamond`` (10 stages of
``sleep 0.05`` fan-out/fan-in of 8: latency per round) and, with ``--shapes``, ``wide``
(2,000 independent steps). Modes:

* ``scripted``: ``run_plan`` with :class:`planrun.testing.ScriptedExecutor` (no processes:
  the engine, the masker, the reducer and the recorder alone);
* ``processes``: ``run_plan`` with the real local executor.

Every planrun row records with ``PLANRUN_SYNC=full`` but ``normal`` (``--normal``: this
checkout with ``PLANRUN_SYNC=normal``, to see what the fsync per commit costs).

Each run is ``run_plan`` in a fresh worker process (imports not timed) with a fresh state
dir; ninja (if installed) runs the same DAG for the ``processes`` rows. ``--compare SRC``
also runs every cell with another checkout's ``src`` (``git archive main src | tar -x -C
/tmp/old``) first on ``PYTHONPATH``; variants take turns round by round (A B, then B A),
so machine drift hits them alike. Ratios are medians of per-round ratios. CPU is user+sys
of the worker and its children (the step processes).

Run from the repository root with the project's venv::

    python bench/bench_engine.py                          # 5 rounds, every cell
    python bench/bench_engine.py --compare /tmp/old/src   # against the old code
    python bench/bench_engine.py --shapes chain --modes processes --rounds 9
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLEEP = 0.05
SIZES = {"chain": "500", "layers": "10x50", "diamond": "10x8", "wide": "2000"}
DEFAULT_JOBS = {"chain": [8], "layers": [2, 8], "diamond": [8], "wide": [8]}

Steps = list[tuple[str, list[str], list[str]]]


def build(shape: str, size: str) -> Steps:
    """``(id, argv, deps)`` of every step, as peerbench's gen.py makes them."""
    steps: Steps = []

    def add(argv: list[str], deps: list[str]) -> str:
        sid = f"s{len(steps) + 1}"
        steps.append((sid, argv, deps))
        return sid

    if shape in ("wide", "chain"):
        prev: list[str] = []
        for _ in range(int(size)):
            sid = add(["true"], prev if shape == "chain" else [])
            prev = [sid]
    elif shape == "layers":
        layers, width = (int(x) for x in size.split("x"))
        prev = []
        for _ in range(layers):
            prev = [add(["true"], prev) for _ in range(width)]
    elif shape == "diamond":
        depth, width = (int(x) for x in size.split("x"))
        cmd = ["sleep", str(SLEEP)]
        join = add(cmd, [])
        for _ in range(depth):
            mids = [add(cmd, [join]) for _ in range(width)]
            join = add(cmd, mids)
    else:
        raise SystemExit(f"unknown shape {shape!r}")
    return steps


def rounds_of(shape: str, size: str, jobs: int) -> int:
    """Diamond: how many sleep rounds the ideal schedule has (levels of ceil(w/j))."""
    depth, width = (int(x) for x in size.split("x"))
    return 1 + depth * (-(-width // jobs) + 1)


def write_inputs(d: Path, shape: str, steps: Steps, jobs: int) -> tuple[Path, Path]:
    plan = {
        "plan_id": f"bench-{shape}",
        "globals": {"max_concurrency": jobs},
        "steps": [
            {"id": sid, "command": argv[0], "args": argv[1:], "depends_on": deps}
            for sid, argv, deps in steps
        ],
    }
    plan_path = d / f"plan.j{jobs}.json"
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    lines = ["rule r", "  command = $cmd", ""]
    for sid, argv, deps in steps:
        lines += [
            f"build {sid}: r" + (" | " + " ".join(deps) if deps else ""),
            f"  cmd = {' '.join(argv)}",
        ]
    lines.append(f"default {' '.join(sid for sid, _, _ in steps)}")
    (d / "build.ninja").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return plan_path, d / "build.ninja"


# --- one run, in a worker process ----------------------------------------------------


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def worker(plan: str, mode: str, delay: float) -> None:
    """Run ``plan`` once with ``run_plan`` and print ``{"wall", "cpu", "ok"}``."""
    import anyio

    from planrun import run_plan
    from planrun.ports import Executor
    from planrun.testing import ScriptedExecutor, Succeed

    async def main() -> dict[str, Any]:
        executor: Executor | None = None
        if mode == "scripted":
            executor = ScriptedExecutor(default=Succeed(delay=delay))
        with tempfile.TemporaryDirectory(prefix="bench-engine-") as state:
            start, cpu = time.perf_counter(), _cpu()
            result = await run_plan(plan, state_dir=state, executor=executor)
            wall, used = time.perf_counter() - start, _cpu() - cpu
        return {"wall": wall, "cpu": used, "ok": result.ok}

    print(json.dumps(anyio.run(main)))


# --- the driver ----------------------------------------------------------------------


@dataclass
class Cell:
    shape: str
    jobs: int
    mode: str
    plan: Path
    ninja: Path
    steps: int
    times: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def run_variant(cell: Cell, src: str | None, sync: str) -> tuple[float, float]:
    env = {**os.environ, "PLANRUN_SYNC": sync}
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    delay = SLEEP if cell.shape == "diamond" else 0.0
    argv = [sys.executable, __file__, "--worker", str(cell.plan), cell.mode, str(delay)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker failed: {out.stderr[-2000:]}")
    got = json.loads(out.stdout.strip().splitlines()[-1])
    if not got["ok"]:
        raise SystemExit(f"the run of {cell.plan} failed")
    return float(got["wall"]), float(got["cpu"])


def run_ninja(cell: Cell) -> tuple[float, float]:
    d = cell.ninja.parent
    for junk in (".ninja_log", ".ninja_deps"):
        (d / junk).unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        ["ninja", "-j", str(cell.jobs), "-f", cell.ninja.name],
        cwd=d,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu


def _ratio(cell: Cell, name: str, base: str) -> str:
    if base not in cell.times or name == base:
        return "-"
    pairs = zip(cell.times[name], cell.times[base], strict=False)
    return f"{statistics.median(a[0] / b[0] for a, b in pairs):.2f}"


def _per(cell: Cell, wall: float) -> str:
    if cell.shape == "diamond":
        rounds = rounds_of(cell.shape, SIZES["diamond"], cell.jobs)
        ideal = rounds * SLEEP
        return f"{(wall - ideal) / rounds * 1000:.2f} ms/round"
    return f"{wall / cell.steps * 1000:.2f} ms/step"


def report(cells: list[Cell], rounds: int) -> None:
    print(f"\n{rounds} rounds, interleaved; medians (min) of wall and CPU (user+sys)\n")
    print(
        "| shape | j | mode | variant | wall s | min s | cpu s | per step/round | x old | x ninja |"
    )
    print("|---|--:|---|---|--:|--:|--:|--:|--:|--:|")
    for cell in cells:
        for name, runs in cell.times.items():
            walls = [w for w, _ in runs]
            wall = statistics.median(walls)
            cpu = statistics.median(c for _, c in runs)
            print(
                f"| {cell.shape} | {cell.jobs} | {cell.mode} | {name} | {wall:.3f} | "
                f"{min(walls):.3f} | {cpu:.3f} | {_per(cell, wall)} | "
                f"{_ratio(cell, name, 'old')} | {_ratio(cell, name, 'ninja')} |"
            )
    if any(c.shape == "diamond" for c in cells):
        print(
            "\ndiamond: latency per round = (median wall - ideal) / rounds, ideal = rounds x "
            f"{SLEEP:g} s (planrun's rows include validation and opening the store)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", nargs=3, metavar=("PLAN", "MODE", "DELAY"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", default="chain,layers,diamond")
    parser.add_argument("--modes", default="scripted,processes")
    parser.add_argument("--jobs", default="", help="e.g. 2,8 (default: per shape)")
    parser.add_argument("--compare", metavar="SRC", help="another checkout's src directory")
    parser.add_argument(
        "--normal", action="store_true", help="also this checkout with PLANRUN_SYNC=normal"
    )
    args = parser.parse_args()
    if args.worker:
        plan, mode, delay = args.worker
        worker(plan, mode, float(delay))
        return
    ninja = shutil.which("ninja") is not None
    with tempfile.TemporaryDirectory(prefix="bench-engine-in-") as tmp:
        cells: list[Cell] = []
        for shape in args.shapes.split(","):
            steps = build(shape, SIZES[shape])
            jobs = [int(j) for j in args.jobs.split(",")] if args.jobs else DEFAULT_JOBS[shape]
            for j in jobs:
                d = Path(tmp) / f"{shape}-{j}"
                d.mkdir()
                plan, ninja_file = write_inputs(d, shape, steps, j)
                for mode in args.modes.split(","):
                    cells.append(Cell(shape, j, mode, plan, ninja_file, len(steps)))
        # (label, src on PYTHONPATH, $PLANRUN_SYNC)
        variants: list[tuple[str, str | None, str]] = [("new", None, "full")]
        if args.compare:
            variants.append(("old", args.compare, "full"))
        if args.normal:
            variants.append(("normal", None, "normal"))
        for r in range(args.rounds + 1):  # round 0: warm-up, not counted
            order = variants if r % 2 else variants[::-1]
            for cell in cells:
                for name, src, sync in order:
                    got = run_variant(cell, src, sync)
                    if r:
                        cell.times.setdefault(name, []).append(got)
                if ninja and cell.mode == "processes":
                    got = run_ninja(cell)
                    if r:
                        cell.times.setdefault("ninja", []).append(got)
            print(f"round {r}/{args.rounds} done", file=sys.stderr, flush=True)
        report(cells, args.rounds)


if __name__ == "__main__":
    main()
