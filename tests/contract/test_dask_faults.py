"""Faults only a distributed executor has: a worker killed mid-step, planrun itself
killed while steps run on workers, an attempt cancelled before any worker took it."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.model import AttemptState, StepState
from planrun.ports import Executor

from ..integration.helpers import (
    live_processes_with,
    make_plan,
    parse_ts,
    poll_until,
    sh_step,
    unique_run_id,
)
from .conftest import MARK_VAR
from .test_executor_port import spec

pytest.importorskip("distributed")

pytestmark = pytest.mark.anyio


def marked(mark: str) -> list[int]:
    return live_processes_with(f"{MARK_VAR}={mark}")


@pytest.fixture
def executor_kind() -> str:
    return "dask"


#: The first attempt records its worker's pid ($PPID: the worker spawned the shell)
#: and hangs with a grandchild; a later attempt succeeds.
FIRST_HANGS = (
    'if [ -e "$1" ]; then echo again; exit 0; fi; '
    'echo $PPID > "$1.tmp"; mv "$1.tmp" "$1"; sleep 30 & setsid sleep 30 & wait'
)


async def test_worker_killed_mid_step(
    executor: Executor, tmp_path: Path, state_dir: Path, mark: str
) -> None:
    """Killing the worker (SIGKILL) ends the attempt as lost, naming the worker, its
    processes die with it, and the retry policy runs the step again (once)."""
    pid_file = tmp_path / "worker.pid"
    plan = make_plan([sh_step("s", FIRST_HANGS, str(pid_file), retries=1)], env={MARK_VAR: mark})
    killed_at = 0.0

    async def kill_worker() -> None:
        nonlocal killed_at
        with anyio.fail_after(20):
            await poll_until(lambda: len(marked(mark)) >= 3)
        killed_at = time.time()
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    async with anyio.create_task_group() as tg:
        tg.start_soon(kill_worker)
        result = await run_plan(
            plan, state_dir=state_dir, run_id=unique_run_id("lost"), executor=executor
        )
    step = result.steps["s"]
    assert step.state is StepState.SUCCEEDED
    first, second = step.attempts
    assert first.state is AttemptState.FAILED
    assert first.error is not None
    assert "lost while the attempt ran" in first.error
    assert "worker tcp://" in first.error
    assert second.state is AttemptState.SUCCEEDED
    lost_after = parse_ts(first.ended_at) - killed_at
    print(f"attempt lost {lost_after:.2f}s after the worker was killed")
    assert lost_after < 10  # generous: CI is a noisy box
    with anyio.fail_after(10):
        await poll_until(lambda: not marked(mark))
    print(f"its processes gone {time.time() - killed_at:.2f}s after the kill")


async def test_cancel_before_a_worker_takes_it(
    executor: Executor, tmp_path: Path, mark: str
) -> None:
    """An attempt queued behind others (both workers' one thread busy) waits, and is
    cancelled promptly, the busy ones with it."""
    started: list[int | None] = []
    ended: list[object] = []

    async def block(n: int) -> None:
        await executor.run(spec(tmp_path, mark, f"sleep 30 # {n}"), started.append)

    async def run() -> None:
        ended.append(await executor.run(spec(tmp_path, mark, "true"), lambda pid: None))

    async with anyio.create_task_group() as tg:
        tg.start_soon(block, 1)
        tg.start_soon(block, 2)
        with anyio.fail_after(30):
            await poll_until(lambda: len(started) == 2)
        tg.start_soon(run)
        await anyio.sleep(0.5)
        assert not ended, "no worker thread was free: the attempt must wait"
        begin = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - begin < 5


async def test_kill_all_before_the_start_message_arrives(
    executor: Executor, tmp_path: Path, mark: str
) -> None:
    """The second Ctrl-C while a running attempt's "start" message is still on its way
    (as under load: its processes run, the executor does not know the worker yet)
    asks every worker: the group, which ignores TERM, dies at once, not after its
    30 s grace."""
    script = "trap '' TERM; sleep 30 & sleep 30 & wait; wait"
    attempt = spec(tmp_path, mark, script, kill_grace=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run, attempt, lambda pid: None)
        with anyio.fail_after(20):
            await poll_until(lambda: len(marked(mark)) >= 3)
        live = list(executor._live.values())  # type: ignore[attr-defined]
        assert len(live) == 1
        live[0].worker = None  # the message has not come yet
        executor.kill_all()  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            await poll_until(lambda: not marked(mark))
        tg.cancel_scope.cancel()


async def test_a_resource_no_worker_has_fails_the_attempt_at_once(
    executor: Executor, tmp_path: Path, mark: str
) -> None:
    """Given straight to the executor (an embedder's ``run_plan(executor=...)``, no
    start-of-run check): an attempt asking for a resource no worker has fails with the
    reason instead of staying pending for ever (Dask's way)."""
    attempt = spec(tmp_path, mark, "true", resources={"no-such-thing": 1.0})
    with anyio.fail_after(10):
        result = await executor.run(attempt, lambda pid: None)
    assert result.exit_code is None
    assert result.error is not None
    assert "no worker of the Dask cluster" in result.error
    assert "no-such-thing" in result.error


async def test_client_closed(cluster: Any, tmp_path: Path, mark: str) -> None:
    """An attempt that cannot be submitted (the client is closed) fails, saying why."""
    from distributed import Client

    from planrun.executors.dask import DaskExecutor

    address = cluster.scheduler_address
    client: Any = await Client(address, asynchronous=True)  # type: ignore[no-untyped-call]
    async with DaskExecutor(client, address=address) as executor:
        await client.close()
        result = await executor.run(spec(tmp_path, mark, "true"), lambda pid: None)
    assert result.exit_code is None
    assert result.error is not None
    assert "cannot submit the attempt" in result.error
    assert "Client is closed" in result.error


COORDINATOR = """
import sys, anyio
from distributed import Client
from planrun import run_plan
from planrun.executors.dask import DaskExecutor

async def main(address, state_dir, run_id, plan):
    async with Client(address, asynchronous=True) as client:
        async with DaskExecutor(client, address=address, lease_sec=2) as executor:
            await run_plan(plan, state_dir=state_dir, run_id=run_id, executor=executor)

if __name__ == "__main__":
    import json
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
"""


async def test_coordinator_killed(
    cluster: Any, executor: Executor, tmp_path: Path, state_dir: Path, mark: str
) -> None:
    """planrun SIGKILLed while its step runs on a worker: the step's processes (escapee
    included) are gone a few seconds later (the lease lapsed), and the run, crashed,
    resumes."""
    import json

    up = tmp_path / "up"
    hang_once = 'if [ -e "$1" ]; then exit 0; fi; touch "$1"; sleep 30 & setsid sleep 30 & wait'
    plan = make_plan([sh_step("s", hang_once, str(up))], env={MARK_VAR: mark})
    run_id = unique_run_id("coordinator")
    script = tmp_path / "coordinator.py"
    script.write_text(COORDINATOR)
    argv = [sys.executable, str(script), cluster.scheduler_address, str(state_dir), run_id]
    events = state_dir / "runs" / run_id / "events.jsonl"

    def started_and_recorded() -> bool:
        # The attempt's start must be on record before the kill, or the resumed run
        # rightly knows of one attempt only (seen once under CI's parallel load).
        if not (up.exists() and len(marked(mark)) >= 3 and events.exists()):
            return False
        return '"type":"attempt_started"' in events.read_text()

    async with await anyio.open_process([*argv, json.dumps(plan)]) as proc:
        try:
            with anyio.fail_after(30):
                await poll_until(started_and_recorded)
        finally:
            proc.kill()
            await proc.wait()
    killed_at = time.monotonic()
    with anyio.fail_after(20):
        await poll_until(lambda: not marked(mark))
    print(f"step processes gone {time.monotonic() - killed_at:.2f}s after the kill")
    result = await run_plan(plan, state_dir=state_dir, resume=run_id, executor=executor)
    assert result.ok, result
    assert [a.state for a in result.steps["s"].attempts] == [
        AttemptState.CRASHED,
        AttemptState.SUCCEEDED,
    ]
