"""Embedded-run stall benchmark: how long an embedded ``run_plan`` blocks its caller's loop.

A service that embeds planrun runs ``await run_plan(...)`` on its own event loop; every
piece of planrun's work that runs without yielding delays everything else on that loop.
This script runs a plan of ``--steps`` independent ``true`` steps (default 2,000; ``--chain``:
each depends on the one before) with ``run_plan`` while a *ticker* task on the same loop
sleeps ``--tick`` ms (default 5) again and again and notes how late each wake-up was. The
table shows, per repetition, the run's wall and CPU time (user+sys of this process, the
store's worker thread included) and the lateness: max, p99 and median, how many ticks
were later than 20 ms (the goal: none), the full garbage collections that ran (they
stop the whole process, so a long one is a stall whoever caused it), and the CPU time
of the longest loop callback (a stall that does not depend on how busy the machine is:
lateness also counts the time the OS ran other processes).

``--scripted`` runs the steps on :class:`planrun.testing.ScriptedExecutor` (no processes:
the engine and the recorder alone). ``--slow MS`` also prints the slowest loop callbacks
(asyncio's debug mode), to find what stalls.

Run from the repository root with the project's venv::

    python bench/bench_stall.py                 # 2,000 steps, 5 ms ticker, 3 repetitions
    python bench/bench_stall.py --scripted --repeat 5
    python bench/bench_stall.py --slow 10       # which callbacks ran > 10 ms
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from planrun import run_plan
from planrun.ports import Executor
from planrun.testing import ScriptedExecutor

GOAL_MS = 20.0


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    late_ms: list[float]
    #: Durations (ms) of the full garbage collections during the run: they stop every
    #: thread, whoever allocates, so they show up as stalls too.
    full_gc_ms: list[float]
    #: CPU time (ms, of the loop's thread) of each loop callback: unlike the ticks'
    #: lateness, this does not grow when the machine is busy and the OS runs others.
    callback_cpu_ms: list[float]

    def row(self, label: str) -> str:
        late = sorted(self.late_ms) or [0.0]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        over = sum(1 for x in late if x > GOAL_MS)
        gcs = f"{len(self.full_gc_ms)} ({max(self.full_gc_ms, default=0.0):.1f})"
        steps = sorted(self.callback_cpu_ms) or [0.0]
        long_steps = sum(1 for x in steps if x > GOAL_MS)
        return (
            f"| {label} | {self.wall:.3f} | {self.cpu:.3f} | {late[-1]:.1f} | {p99:.1f} "
            f"| {statistics.median(late):.2f} | {len(late)} | {over} | {gcs} "
            f"| {steps[-1]:.1f} | {long_steps} |"
        )


class _CallbackCpu:
    """Times the CPU each event-loop callback takes (``Handle._run``), while in a ``with``."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._real = asyncio.events.Handle._run

    def __enter__(self) -> _CallbackCpu:
        real, ms = self._real, self.ms

        def timed(handle: asyncio.events.Handle) -> None:
            start = time.thread_time()
            real(handle)
            ms.append((time.thread_time() - start) * 1000)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._real  # type: ignore[method-assign]


class _FullCollections:
    """Times the generation-2 collections while it is in a ``with``."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> _FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def write_plan(path: Path, steps: int, *, chain: bool, concurrency: int) -> None:
    ids = [f"s{i:05d}" for i in range(steps)]
    plan = {
        "plan_id": "stall",
        "globals": {"max_concurrency": concurrency},
        "steps": [
            {"id": sid, "command": "true", **({"depends_on": [ids[i - 1]]} if chain and i else {})}
            for i, sid in enumerate(ids)
        ],
    }
    path.write_text(json.dumps(plan), encoding="utf-8")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _ticker(tick: float, late: list[float], stop: anyio.Event) -> None:
    while not stop.is_set():
        due = time.perf_counter() + tick
        await anyio.sleep(tick)
        late.append(max(0.0, (time.perf_counter() - due) * 1000))


async def one_run(plan: Path, tick: float, scripted: bool) -> Sample:
    late: list[float] = []
    stop = anyio.Event()
    executor: Executor | None = ScriptedExecutor() if scripted else None
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as state:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_ticker, tick, late, stop)
            await anyio.sleep(tick * 2)  # the ticker is going
            late.clear()
            start, cpu = time.perf_counter(), _cpu()
            with _FullCollections() as collections, _CallbackCpu() as callbacks:
                result = await run_plan(plan, state_dir=state, executor=executor)
            wall, used = time.perf_counter() - start, _cpu() - cpu
            stop.set()
        if not result.ok:
            raise SystemExit(f"the run failed: {result.state}")
    return Sample(wall, used, late, collections.ms, callbacks.ms)


def _slow_callbacks(ms: float) -> None:
    """asyncio's debug mode: log every callback that runs longer than ``ms``."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = ms / 1000
    logging.basicConfig(level=logging.WARNING, format="  slow: %(message)s")


async def main_async(args: argparse.Namespace) -> None:
    if args.slow:
        _slow_callbacks(args.slow)
    with tempfile.TemporaryDirectory(prefix="bench-stall-plan-") as d:
        plan = Path(d) / "plan.json"
        write_plan(plan, args.steps, chain=args.chain, concurrency=args.jobs)
        kind = "scripted" if args.scripted else "processes"
        shape = "chain" if args.chain else "wide"
        print(f"embedded run_plan, {args.steps} steps ({shape}, {kind}), j={args.jobs}")
        print(f"ticker every {args.tick:g} ms; goal: no tick later than {GOAL_MS:g} ms\n")
        print(
            "| run | wall s | cpu s | max late ms | p99 ms | median ms | ticks | > 20 ms "
            "| full GCs (max ms) | longest callback, cpu ms | callbacks > 20 ms cpu |"
        )
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        samples = []
        for i in range(args.repeat):
            sample = await one_run(plan, args.tick / 1000, args.scripted)
            samples.append(sample)
            print(sample.row(str(i + 1)), flush=True)
        worst = max(max(s.late_ms, default=0.0) for s in samples)
        print(f"\nworst tick lateness over {args.repeat} runs: {worst:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--tick", type=float, default=5.0, help="ticker period, ms")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chain", action="store_true")
    parser.add_argument("--scripted", action="store_true")
    parser.add_argument("--slow", type=float, default=0.0, help="log callbacks > MS")
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
