"""The executor contract suite's fixtures: one Dask cluster per session, an executor per
test (local or Dask), and a check that no step process outlives its test.

The Dask side is skipped when ``distributed`` (the ``dask`` extra) is not installed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from planrun.executors.local import LocalExecutor
from planrun.ports import Executor

from ..integration.helpers import live_processes_with

#: Put in every step's environment by the tests (see :func:`mark`): the processes a
#: test started, found through ``/proc`` on this host (workers of the local cluster
#: included), whatever executor started them.
MARK_VAR = "PLANRUN_CONTRACT_MARK"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A 2-process local Dask cluster for the whole session (started only if a Dask
    test runs), its loop in a thread of its own; tests connect with their own client."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(params=["local", "dask"])
def executor_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def executor(executor_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    """The executor under test, ready for ``run`` (and ``run_plan(executor=...)``)."""
    if executor_kind == "local":
        with LocalExecutor() as local:
            yield local
        return
    cluster = request.getfixturevalue("cluster")
    import distributed

    from planrun.executors.dask import DaskExecutor

    address = cluster.scheduler_address
    client_class: Any = distributed.Client  # untyped
    client = client_class(address, asynchronous=True)
    async with client, DaskExecutor(client, address=address) as dask:
        yield dask


@pytest.fixture
def mark() -> str:
    return secrets.token_hex(8)


@pytest.fixture(autouse=True)
def _no_step_survives(mark: str) -> Iterator[None]:
    """After each test, no process carrying its mark is alive (those found are killed,
    then the test fails)."""
    yield
    left = live_processes_with(f"{MARK_VAR}={mark}")
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"step processes survived the test: {left}"
