"""A large run's result has a short repr (issue 16): Python 3.11's asyncio.run builds
the repr of its main task's result at the end, so ``anyio.run(run_plan, ...)`` of a
100,000-step run built one of every step (40 MB, seconds)."""

from __future__ import annotations

from pathlib import Path

import anyio

from planrun import run_plan
from planrun.results import REPR_STEPS, RunResult
from planrun.testing import ScriptedExecutor


def _run(tmp_path: Path, steps: int) -> RunResult:
    plan = {"plan_id": "r", "steps": [{"id": f"s{i}", "command": "true"} for i in range(steps)]}

    async def main() -> RunResult:
        return await run_plan(plan, state_dir=tmp_path / "state", executor=ScriptedExecutor())

    return anyio.run(main)


def test_a_large_result_counts_its_steps(tmp_path: Path) -> None:
    result = _run(tmp_path, REPR_STEPS + 1)
    assert len(result.steps) == REPR_STEPS + 1
    text = repr(result)
    assert text.endswith(f"steps=<{REPR_STEPS + 1} steps>)")
    assert len(text) < 300


def test_a_small_result_lists_them(tmp_path: Path) -> None:
    result = _run(tmp_path, 2)
    assert "StepResult(id='s0'" in repr(result)
    assert "StepResult(id='s1'" in repr(result)
