"""The executor's spawn thread (``executors/spawner.py``) and the attempt environment
built from ``os.environ``'s bytes (``executors/tags.py``), with real threads and real
processes."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from planrun.executors import spawner
from planrun.executors.local import LocalExecutor
from planrun.executors.spawner import SpawnThread
from planrun.ports import AttemptSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _after(event: threading.Event) -> str:
    """What a call returns once ``event`` is set (a spawn that takes its time)."""
    event.wait()
    return "started"


async def test_calls_run_in_order_off_the_loop_thread() -> None:
    spawner = SpawnThread()
    seen: list[tuple[int, str]] = []

    def record(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    try:
        results = [await spawner.call(functools.partial(record, n), print) for n in range(5)]
    finally:
        spawner.close()
    assert results == [0, 10, 20, 30, 40]
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert {name for _, name in seen} == {"planrun-spawn"}


async def test_an_exception_reaches_the_caller() -> None:
    spawner = SpawnThread()

    def fail() -> None:
        raise OSError(24, "Too many open files")

    try:
        with pytest.raises(OSError, match="Too many open files"):
            await spawner.call(fail, lambda _: None)
    finally:
        spawner.close()


async def test_an_anyio_cancel_waits_for_the_result_then_is_delivered() -> None:
    """Like a spawn on the loop, a call cannot be half done: the caller gets the result
    and the cancellation comes at its next checkpoint."""
    spawner = SpawnThread()
    release = threading.Event()
    got: list[str] = []
    orphans: list[object] = []
    timer = threading.Timer(0.1, release.set)  # after the cancel below
    timer.start()
    try:
        with anyio.CancelScope() as scope:

            async def cancel_soon() -> None:
                await anyio.sleep(0.05)
                scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_soon)
                got.append(await spawner.call(lambda: _after(release), orphans.append))
                await anyio.lowlevel.checkpoint()  # the cancellation is delivered here
                got.append("not reached")
    finally:
        release.set()
        timer.cancel()
        spawner.close()
    assert scope.cancelled_caught
    assert got == ["started"]
    assert orphans == []


async def test_a_native_cancel_hands_the_result_to_orphan() -> None:
    """A task cancelled from outside anyio (``Task.cancel``) leaves; the result goes to
    ``orphan`` on the loop, so a started process is never left unsupervised."""
    spawner = SpawnThread()
    release = threading.Event()
    orphaned = asyncio.Event()
    orphans: list[str] = []

    def orphan(result: str) -> None:
        orphans.append(result)
        orphaned.set()

    task = asyncio.ensure_future(spawner.call(lambda: _after(release), orphan))
    try:
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.05)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        with anyio.fail_after(10):
            await orphaned.wait()
    finally:
        release.set()
        spawner.close()
    assert orphans == ["started"]


def _spec(tmp_path: Path, n: int, env: dict[str, str] | None = None) -> AttemptSpec:
    out = tmp_path / f"env{n}.txt"
    return AttemptSpec(
        run_id="spawn-env",
        step_id=f"s{n}",
        attempt=1,
        argv=("sh", "-c", f"env > {out}"),
        env=env or {},
        cwd=None,
        timeout=30,
        kill_grace=1,
        log_path=None,
        hidden_env=frozenset({"SPAWN_TEST_HIDDEN"}),
    )


def _env_of(tmp_path: Path, n: int) -> dict[str, str]:
    text = (tmp_path / f"env{n}.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_each_attempt_gets_planrun_environment_as_it_is_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.environ`` changed between two attempts of one executor reaches the second;
    hidden variables stay out; the step's env beats planrun's; the markers beat both."""
    monkeypatch.setenv("SPAWN_TEST_A", "one")
    monkeypatch.setenv("SPAWN_TEST_HIDDEN", "secret")
    with LocalExecutor() as executor:
        executor.start_run("spawn-env@000000000000")
        first = await executor.run(_spec(tmp_path, 1), lambda pid: None)
        monkeypatch.setenv("SPAWN_TEST_A", "two")
        monkeypatch.setenv("SPAWN_TEST_B", "new")
        step_env = {
            "SPAWN_TEST_B": "step",
            "PLANRUN_STEP_ID": "forged",
            "SPAWN_TEST_U": "\u00e9t\u00e9",
        }
        second = await executor.run(_spec(tmp_path, 2, step_env), lambda pid: None)
    assert (first.exit_code, second.exit_code) == (0, 0)
    env1, env2 = _env_of(tmp_path, 1), _env_of(tmp_path, 2)
    assert env1["SPAWN_TEST_A"] == "one"
    assert "SPAWN_TEST_B" not in env1
    assert env2["SPAWN_TEST_A"] == "two"
    assert env2["SPAWN_TEST_B"] == "step"
    assert env2["SPAWN_TEST_U"] == "\u00e9t\u00e9"
    assert env2["PLANRUN_STEP_ID"] == "s2"
    assert env2["PLANRUN_ATTEMPT_TAG"] == "spawn-env@000000000000/s2/1"
    assert env2["PLANRUN_RUN_TREE"].endswith("spawn-env@000000000000/s2/1")
    assert "SPAWN_TEST_HIDDEN" not in env1
    assert "SPAWN_TEST_HIDDEN" not in env2
    assert env2["PLANRUN_OUTPUT"] != env1["PLANRUN_OUTPUT"]
    assert os.environ["SPAWN_TEST_A"] == "two"  # planrun's own environment untouched


# (A budget no burst of three can spend, not the real 4 ms: a loaded machine can.)
@pytest.mark.parametrize("budget", [60.0, 0.0])
async def test_spawns_run_on_the_loop_until_a_burst_spends_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: float
) -> None:
    """Spawns run inline (the thread's hand-offs cost more than they save), a chain's
    and a burst's alike, until the inline spawns of one loop turn have taken the
    budget: the rest of the burst goes to the thread. (Budget 0: the first spawn of
    a turn is inline, the others of that turn are not.)"""
    from planrun.executors import local, spawn

    threads: dict[str, str] = {}
    real_launch = spawn.launch

    def launch(prepared: spawn.Prepared, *args: Any) -> spawn.Launched:
        threads[prepared.spec.step_id] = threading.current_thread().name
        return real_launch(prepared, *args)

    monkeypatch.setattr(local, "launch", launch)
    monkeypatch.setattr(spawner, "INLINE_BUDGET_SEC", budget)
    with LocalExecutor() as executor:
        executor.start_run("spawn-env@000000000000")
        assert (await executor.run(_spec(tmp_path, 1), lambda pid: None)).exit_code == 0
        await anyio.lowlevel.checkpoint()  # a new turn of the loop: a new budget
        async with anyio.create_task_group() as tg:  # a burst: three in one turn
            for n in (2, 3, 4):
                tg.start_soon(executor.run, _spec(tmp_path, n), lambda pid: None)
    burst = [threads[f"s{n}"] for n in (2, 3, 4)]
    assert threads["s1"] == "MainThread"
    if budget:
        assert burst == ["MainThread"] * 3
    else:
        assert burst == ["MainThread", "planrun-spawn", "planrun-spawn"]
