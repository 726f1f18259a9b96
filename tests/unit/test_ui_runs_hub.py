"""The runs list's shared poller (``ui.live.RunsHub``): it reads the store only while a
runs page listens, once per round however many pages listen, and wakes them all."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun.ui import live

pytestmark = pytest.mark.anyio


async def test_one_read_serves_every_listener_and_none_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    release = anyio.Event()

    async def fake_list_runs(state_dir: Path) -> list[dict[str, Any]]:
        calls.append(1)
        await release.wait()
        return [{"run_id": "r1", "plan_id": "p", "state": "running"}]

    monkeypatch.setattr(live, "list_runs", fake_list_runs)
    hub = live.RunsHub(tmp_path)
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.run)
        await anyio.wait_all_tasks_blocked()
        assert calls == []  # nobody listens: no read
        with contextlib.ExitStack() as stack:
            for _ in range(3):
                stack.enter_context(hub.listening())
            woken: list[int] = []

            async def listener() -> None:
                await hub.changed_since(0)
                woken.append(hub.version)

            for _ in range(3):
                tg.start_soon(listener)
            await anyio.wait_all_tasks_blocked()
            assert calls == [1]  # one read for three listeners
            release.set()
            await anyio.wait_all_tasks_blocked()
            assert woken == [1, 1, 1]
            assert hub.runs[0]["run_id"] == "r1"
        tg.cancel_scope.cancel()
