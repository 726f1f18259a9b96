"""Scale figures of issue 16: 100,000 steps outside the engine's hot loop.

Times, as whole processes, with their CPU time (user+sys) and peak RSS (``wait4``):

- ``planrun validate`` of a flat plan and of a layered one (100 layers of 1,000, each
  step depending on 3 of the layer before: 297,000 edges);
- a run of the flat plan: ``--run true`` runs it with ``planrun run -j 8`` (``true``
  steps: minutes), ``--run scripted`` through the ScriptedExecutor (no processes: the
  engine, the store and the recorder only; a few steps fail, to give ``show`` failures),
  ``--run none`` reuses the run in ``--state`` (made by an earlier call);
- on that run: ``list``, ``show``, ``show --json``, ``show --all``, ``watch --plain``.

``--old SRC`` also measures another source tree (e.g. ``git archive main src | tar -x -C
/tmp/old``, then ``--old /tmp/old/src``), interleaved with this one round by round; the
run is made once by each tree (it is long) unless ``--run none``. Prints a table of
medians and minima; asserts nothing.

Run: ``python bench/bench_scale.py [--steps N] [--rounds R] [--run scripted|true|none]
[--old SRC] [--state DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

#: Steps that fail in the scripted run (``on_failure: continue``), by position.
FAILING = (7, 4_242, 77_777)

_SCRIPTED = """
import sys, anyio
from planrun import run_plan
from planrun.testing import Fail, ScriptedExecutor
plan, state, failing = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
ex = ScriptedExecutor({s: Fail(exit_code=3) for s in failing if s})
result = anyio.run(lambda: run_plan(plan, state_dir=state, run_id="scale", executor=ex))
print(result.state)
"""


@dataclass
class Sample:
    """One process: wall and CPU seconds, peak RSS in MB."""

    wall: float
    cpu: float
    rss_mb: float


def measure(argv: list[str], src: Path, cwd: Path) -> Sample:
    """Run ``argv`` with ``src`` first on PYTHONPATH; its wall/CPU time and peak RSS."""
    env = dict(os.environ, PYTHONPATH=str(src), NO_COLOR="1", COLUMNS="120")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # both trees compiled alike (see main)
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"{argv}: exit {proc.returncode}\n{err[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def planrun(*args: str) -> list[str]:
    """The command line of ``planrun ARGS`` under this interpreter."""
    return [sys.executable, "-m", "planrun", *args]


def make_plans(work: Path, steps: int) -> tuple[Path, Path, Path]:
    """The flat plan, the layered plan, and the flat plan with a few failing steps.

    Written by a child process: this one stays small, and a child's peak RSS (as
    ``wait4`` reports it) counts what it inherited at the fork."""
    flat, layers, run = work / "flat.json", work / "layers.json", work / "run.json"
    gen = [sys.executable, str(HERE / "gen_scale.py")]
    width = max(1, steps // 100)
    failing = ",".join(f"s{i}" for i in FAILING if i < steps)
    subprocess.run([*gen, "flat", str(flat), str(steps)], check=True)
    subprocess.run([*gen, "layers", str(layers), f"{steps // width}x{width}", "3"], check=True)
    subprocess.run([*gen, "flat", str(run), str(steps), failing], check=True)
    return flat, layers, run


def make_run(mode: str, plan: Path, state: Path, src: Path) -> Sample:
    """Run ``plan`` into ``state`` (run id ``scale``)."""
    if mode == "scripted":
        failing = ",".join(f"s{i}" for i in FAILING)
        argv = [sys.executable, "-c", _SCRIPTED, str(plan), str(state), failing]
    else:
        argv = planrun("run", str(plan), "--max-concurrency", "8", "--plain", "--run-id", "scale")
        argv += ["--state-dir", str(state)]
    return measure(argv, src, plan.parent)


def row(name: str, samples: list[Sample]) -> str:
    """One table row: medians and minima."""
    walls = [s.wall for s in samples]
    cpus = [s.cpu for s in samples]
    rss = [s.rss_mb for s in samples]
    return (
        f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
        f"{statistics.median(cpus):.2f} | {max(rss):.0f} | {len(samples)} |"
    )


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--run", choices=("scripted", "true", "none"), default="scripted")
    parser.add_argument("--old", type=Path, help="another src/ tree to compare against")
    parser.add_argument("--state", type=Path, help="where the runs are (default: a temp dir)")
    parser.add_argument("--only", help="comma-separated commands to time (default: all)")
    parser.add_argument(
        "--old-once",
        default="show",
        help="commands the old tree runs in the first round only (slow: `show` took 112 s)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    state_root = args.state or work / "state"
    flat, layers, run_plan = make_plans(work, args.steps)
    trees = {"new": SRC} | ({"old": args.old.resolve()} if args.old else {})
    for src in trees.values():  # else a tree without .pyc files pays for compiling
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    states = {name: state_root / name for name in trees}
    results: dict[str, list[Sample]] = {}
    for name, src in trees.items():
        if args.run != "none":
            print(f"running {args.steps} steps ({args.run}) with {name} ...", file=sys.stderr)
            results[f"run {args.run} ({name})"] = [make_run(args.run, run_plan, states[name], src)]
    commands = {
        "validate flat": planrun("validate", str(flat)),
        "validate layered": planrun("validate", str(layers)),
        "list": planrun("list", "--state-dir", "{state}"),
        "show": planrun("show", "scale", "--state-dir", "{state}"),
        "show --json": planrun("show", "scale", "--json", "--state-dir", "{state}"),
        "show --all": planrun("show", "scale", "--all", "--state-dir", "{state}"),
        "watch --plain": planrun("watch", "scale", "--plain", "--state-dir", "{state}"),
    }
    only = set(args.only.split(",")) if args.only else set(commands)
    once = set(args.old_once.split(",")) if args.old_once else set()
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        for label, argv in commands.items():
            if label not in only:
                continue
            for name, src in trees.items():  # interleaved: new, old, new, old, ...
                if label == "show --all" and name == "old":
                    continue  # the old show has no --all (it always shows every row)
                if name == "old" and r and label in once:
                    continue
                filled = [a.replace("{state}", str(states[name])) for a in argv]
                results.setdefault(f"{label} ({name})", []).append(measure(filled, src, work))
    print(f"\n{args.steps:,} steps; {args.rounds} rounds, interleaved\n")
    print("| command | wall median s | wall min s | CPU median s | peak RSS MB | n |")
    print("|---|--:|--:|--:|--:|--:|")
    for name, samples in results.items():
        print(row(name, samples))


if __name__ == "__main__":
    main()
