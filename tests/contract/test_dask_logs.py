"""Logs come home from Dask workers: streamed into the coordinator's log (and
``on_output``) while the step runs, and completed from the result's tail when the
stream did not bring everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun.ports import OutputLine

from ..integration.helpers import poll_until
from .test_executor_port import log_of, spec

pytest.importorskip("distributed")

from distributed import Client

from planrun.executors.dask import DaskExecutor

pytestmark = pytest.mark.anyio


class _Deaf(DaskExecutor):
    """Hears no streamed lines: the log must come from the result's tail."""

    def _on_event(self, event: tuple[float, list[Any]]) -> None:
        if event[1][0] != "lines":
            super()._on_event(event)


async def test_lines_stream_while_the_step_runs(cluster: Any, tmp_path: Path, mark: str) -> None:
    """The first line is in the coordinator's log and given to on_output before the
    step ends (it waits for the test to see it)."""
    go = tmp_path / "go"
    script = 'echo first; while [ ! -e "$0" ]; do sleep 0.05; done; echo last'
    attempt = spec(tmp_path, mark, "", argv=("sh", "-c", script, str(go)))
    seen: list[OutputLine] = []
    address = cluster.scheduler_address
    client: Any = Client(address, asynchronous=True)  # type: ignore[no-untyped-call]
    executor = DaskExecutor(client, address=address, on_output=seen.append)
    async with client, executor, anyio.create_task_group() as tg:
        tg.start_soon(executor.run, attempt, lambda pid: None)
        with anyio.fail_after(20):
            await poll_until(lambda: log_of(attempt) == "first\n")
        assert [line.text for line in seen] == ["first"]
        go.touch()
    assert log_of(attempt) == "first\nlast\n"
    assert [(line.step_id, line.attempt, line.text) for line in seen] == [
        ("s", 1, "first"),
        ("s", 1, "last"),
    ]


async def test_log_complete_without_the_stream(cluster: Any, tmp_path: Path, mark: str) -> None:
    """With every streamed line lost, the log is still whole (from the tail)."""
    attempt = spec(tmp_path, mark, "for i in 1 2 3; do echo line$i; done; exit 4")
    address = cluster.scheduler_address
    client: Any = Client(address, asynchronous=True)  # type: ignore[no-untyped-call]
    async with client, _Deaf(client, address=address) as ex:
        result = await ex.run(attempt, lambda pid: None)
    assert result.exit_code == 4
    assert log_of(attempt) == "line1\nline2\nline3\n"
