"""``monitor.follow`` reads a finished run a page at a time (issue 16: ``watch`` of a
100,000-step run held every event at once); every event comes once, in order, and the
iterator ends, also when the run's last event ends a full page."""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import pytest

from planrun import monitor, run_plan
from planrun.events import Event
from planrun.testing import ScriptedExecutor


async def _followed(state: Path, run_id: str) -> list[Event]:
    got: list[Event] = []
    with anyio.fail_after(60):  # a hang is the bug; the read takes milliseconds
        async with contextlib.aclosing(monitor.follow(run_id, state_dir=state)) as events:
            async for event in events:
                got.append(event)
    return got


@pytest.mark.parametrize("page", ["all", "all-but-one", 2, 1])
def test_follow_of_a_finished_run_pages_through_every_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: int | str
) -> None:
    state = tmp_path / "state"
    plan = {"plan_id": "p", "steps": [{"id": f"s{i}", "command": "true"} for i in range(4)]}

    async def main() -> tuple[list[Event], list[Event]]:
        result = await run_plan(plan, state_dir=state, executor=ScriptedExecutor())
        stored = await monitor.get_events(result.run_id, state_dir=state)
        size = {"all": len(stored), "all-but-one": len(stored) - 1}.get(str(page), page)
        monkeypatch.setattr(monitor, "FOLLOW_PAGE", size)
        return stored, await _followed(state, result.run_id)

    stored, followed = anyio.run(main)
    assert [e.seq for e in followed] == [e.seq for e in stored]
    assert followed == stored
