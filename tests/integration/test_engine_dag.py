"""The original design's example with a real process (scheduling itself, dependency
order, the concurrency bound and plan order, is checked on the scripted executor in
tests/unit/test_engine_policies.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.model import StepState

from .helpers import read_text

pytestmark = pytest.mark.anyio


async def test_original_design_example_runs(state_dir: Path) -> None:
    """The original design's TEST-001 example succeeds and its log holds "hello"."""
    plan = {
        "plan_id": "TEST-001",
        "globals": {"max_concurrency": 1},
        "steps": [{"id": "echo", "command": "echo", "args": ["hello"], "depends_on": []}],
    }
    result = await run_plan(plan, state_dir=state_dir)
    assert result.ok
    assert result.plan_id == "TEST-001"
    step = result.steps["echo"]
    assert step.state is StepState.SUCCEEDED
    assert step.exit_code == 0
    assert len(step.attempts) == 1
    assert "hello" in read_text(step.attempts[0].log_path)
