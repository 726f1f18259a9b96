"""Dask executor benchmark (issue 17): what running steps on a Dask cluster costs, and
how much of it is planrun's.

On a 2-worker ``LocalCluster`` (worker processes, as ``planrun run --executor dask``
starts one), each figure median and min over ``--rounds``:

* *cluster start*: ``dask_connect.connected(None)``: the local cluster up, the client
  connected, every worker's planrun version checked;
* *500 steps*: ``run_plan`` of 500 independent ``true`` steps (``--concurrency``, default
  16) through a ``DaskExecutor``: steps/s (goal >= 100);
* *round trip*: a chain of ``--chain`` ``true`` steps (each waits for the one before),
  through ``run_plan``: ms per step (goal <= 15 ms);
* the chain on the local executor, for comparison (planrun's engine and store alone);
* the same two without planrun's coordinator: the remote runner
  (``dask_remote.run_attempt``, which runs the step with the local executor's code on
  the worker) submitted with a bare ``client.submit``, one after the other and 500 at
  once: Dask's own floor, and planrun's overhead on top of it (engine, events, SQLite,
  log streaming).

Run from the repository root with the project's venv (the ``dask`` extra installed)::

    python bench/bench_dask.py              # 5 rounds
    python bench/bench_dask.py --rounds 9 --concurrency 32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from planrun.api import run_plan
from planrun.executors.dask import DaskExecutor
from planrun.executors.dask_connect import connected
from planrun.executors.dask_remote import run_attempt
from planrun.ports import AttemptSpec


def _plan(steps: int, chain: bool) -> dict[str, Any]:
    def step(i: int) -> dict[str, Any]:
        after = {"depends_on": [f"s{i - 1}"]} if chain and i else {}
        return {"id": f"s{i}", "command": "true", **after}

    return {"plan_id": "bench-dask", "steps": [step(i) for i in range(steps)]}


async def _through_planrun(
    client: Any, address: str | None, steps: int, chain: bool, conc: int
) -> float:
    """Seconds for ``run_plan`` of ``steps`` ``true`` steps on the cluster (with no
    ``address``: on the local executor, for comparison)."""
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as state:
        async with contextlib.AsyncExitStack() as stack:
            executor = None
            if address is not None:
                executor = await stack.enter_async_context(DaskExecutor(client, address=address))
            started = time.perf_counter()
            plan = _plan(steps, chain)
            result = await run_plan(
                plan, state_dir=Path(state), executor=executor, max_concurrency=conc
            )
            took = time.perf_counter() - started
    assert result.exit_code == 0, result
    return took


def _spec(index: int) -> AttemptSpec:
    return AttemptSpec(
        run_id="bench",
        step_id=f"s{index}",
        attempt=1,
        argv=("true",),
        env={},
        cwd=None,
        timeout=None,
        kill_grace=1.0,
        log_path=None,
    )


async def _bare(client: Any, steps: int, chain: bool) -> float:
    """Seconds for ``steps`` bare submits of the remote runner (one at a time when
    ``chain``, else all at once)."""
    owner = uuid.uuid4().hex
    topic = f"bench-{owner}"

    def submit(i: int) -> Any:
        key = f"bench-{owner}-{i}"
        return client.submit(
            run_attempt, _spec(i), key, owner, topic, 30.0, key=key, pure=False, retries=0
        )

    started = time.perf_counter()
    if chain:
        for i in range(steps):
            await submit(i)
    else:
        await client.gather([submit(i) for i in range(steps)])
    return time.perf_counter() - started


def _row(name: str, values: list[float], unit: str, goal: str = "") -> str:
    return f"{name:<44} {statistics.median(values):>9.2f} {min(values):>9.2f}  {unit:<8} {goal}"


async def _timed(work: Callable[[], Awaitable[float]], rounds: int) -> list[float]:
    return [await work() for _ in range(rounds)]


async def main(rounds: int, chain: int, conc: int, many: int) -> None:
    starts: list[float] = []
    for _ in range(rounds - 1):  # the last start is the one the steps run on
        began = time.perf_counter()
        async with connected(None):
            starts.append(time.perf_counter() - began)
    began = time.perf_counter()
    async with connected(None) as cluster:
        starts.append(time.perf_counter() - began)
        client, address = cluster.client, cluster.address
        await _bare(client, 20, chain=False)  # warm: imports on the workers
        many_planrun: list[float] = []
        many_bare: list[float] = []
        chain_planrun: list[float] = []
        chain_bare: list[float] = []
        chain_local: list[float] = []
        for _ in range(rounds):  # interleaved: planrun, bare, planrun, bare ...
            many_planrun.append(await _through_planrun(client, address, many, False, conc))
            many_bare.append(await _bare(client, many, chain=False))
            chain_planrun.append(await _through_planrun(client, address, chain, True, conc))
            chain_bare.append(await _bare(client, chain, chain=True))
            chain_local.append(await _through_planrun(client, None, chain, True, conc))
    print(f"Dask executor, 2-worker local cluster, {rounds} rounds (median, min)")
    print(f"{'':<44} {'median':>9} {'min':>9}")
    print(_row("cluster start + connect + checks", starts, "s"))
    rate = [many / t for t in many_planrun]
    print(_row(f"{many} true steps via run_plan (j={conc})", rate, "steps/s", "goal >= 100"))
    print(
        _row(f"{many} bare client.submit of the runner", [many / t for t in many_bare], "steps/s")
    )
    trip = [1000 * t / chain for t in chain_planrun]
    print(_row(f"round trip: chain of {chain} via run_plan", trip, "ms/step", "goal <= 15"))
    bare_trip = [1000 * t / chain for t in chain_bare]
    print(_row(f"round trip: {chain} bare submits in a row", bare_trip, "ms/step"))
    local_trip = [1000 * t / chain for t in chain_local]
    print(_row(f"round trip: chain of {chain}, local executor", local_trip, "ms/step"))
    over = [p - b for p, b in zip(trip, bare_trip, strict=True)]
    print(_row("planrun's overhead per step (chain)", over, "ms/step"))
    ratio = [p / b for p, b in zip(many_planrun, many_bare, strict=True)]
    print(_row(f"{many} steps: run_plan time / bare time", ratio, "x"))


if __name__ == "__main__":  # LocalCluster's worker processes are spawned: keep this guard
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    anyio.run(main, args.rounds, args.chain, args.concurrency, args.steps, backend="asyncio")
