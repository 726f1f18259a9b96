"""A finished run's engine is freed by reference counting alone (issue 16, memory): a
lambda on the engine (its pools' push) made a cycle, so the scheduler's nodes of
100,000 steps stayed until a full collection, past the run and its result."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import api, run_plan
from planrun.engine import Engine
from planrun.results import RunResult
from planrun.testing import ScriptedExecutor


def test_the_engine_is_gone_when_the_run_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[weakref.ref[Engine]] = []

    class Tracked(Engine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    monkeypatch.setattr(api, "Engine", Tracked)
    plan = {"plan_id": "g", "steps": [{"id": f"s{i}", "command": "true"} for i in range(20)]}

    async def main() -> RunResult:
        return await run_plan(plan, state_dir=tmp_path / "st", executor=ScriptedExecutor())

    gc.disable()  # only reference counting frees: a cycle would keep the engine
    try:
        result = anyio.run(main)
        assert result.ok
        assert len(made) == 1
        assert made[0]() is None
    finally:
        gc.enable()
