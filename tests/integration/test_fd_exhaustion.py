"""A spawn that would run out of file descriptors waits for a running attempt to end
instead of failing (the executor, under a soft limit lowered in this process)."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import anyio
import pytest

from planrun.executors.local import SPAWN_FDS, LocalExecutor
from planrun.ports import AttemptSpec, ProcessResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def low_fd_limit() -> Iterator[int]:
    """Lower the soft RLIMIT_NOFILE to leave room for about two running attempts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = len(os.listdir("/proc/self/fd")) + SPAWN_FDS + 8
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _spec(n: int) -> AttemptSpec:
    return AttemptSpec(
        run_id="fd-exhaustion",
        step_id=f"s{n}",
        attempt=1,
        argv=("sh", "-c", "sleep 0.2"),
        env={},
        cwd=None,
        timeout=30,
        kill_grace=1,
        log_path=None,
    )


async def test_attempts_wait_for_file_descriptors_instead_of_failing(low_fd_limit: int) -> None:
    """12 attempts at once with fds for about two: every one runs and exits 0."""
    results: list[ProcessResult] = []
    with LocalExecutor() as executor:
        executor.start_run("fd-exhaustion")

        async def one(n: int) -> None:
            results.append(await executor.run(_spec(n), lambda pid: None))

        async with anyio.create_task_group() as tg:
            for n in range(12):
                tg.start_soon(one, n)
    assert [(r.exit_code, r.error) for r in results] == [(0, None)] * 12
