"""An in-process ``LocalCluster`` (``processes=False``: its workers run in the caller's
process, as an embedder may start one): the worker side's local executor, and so its
watchdog process, is closed once the cluster's workers closed, not left behind idle
for as long as the process lives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from planrun.executors.watchdog import SOURCE

from .conftest import MARK_VAR
from .test_executor_port import run, spec

distributed = pytest.importorskip("distributed")

WATCHDOG_LINE = SOURCE.strip().splitlines()[1].encode()


def _my_watchdogs() -> list[int]:
    """Live children of this process running the watchdog's source."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == os.getpid() and WATCHDOG_LINE in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.anyio
async def test_closing_an_in_process_cluster_dismisses_its_workers_watchdog(
    tmp_path: Path, mark: str
) -> None:
    from planrun.executors.dask import DaskExecutor

    before = _my_watchdogs()
    cluster_class: Any = distributed.LocalCluster  # untyped
    client_class: Any = distributed.Client
    async with cluster_class(
        n_workers=1, processes=False, dashboard_address=None, asynchronous=True
    ) as cluster:
        address = cluster.scheduler_address
        client = client_class(address, asynchronous=True)
        async with client, DaskExecutor(client, address=address) as dask:
            result = await run(dask, spec(tmp_path, mark, "true", env={MARK_VAR: mark}))
            assert result.exit_code == 0
            assert len(_my_watchdogs()) == len(before) + 1  # the worker side's
    assert _my_watchdogs() == before
