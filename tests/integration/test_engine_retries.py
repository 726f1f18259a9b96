"""Retries with real processes: each attempt is a new process with its own log and
its own ``PLANRUN_ATTEMPT`` (attempt counts, delays, backoff and what is retried are
checked on the scripted executor in tests/unit/test_engine_policies.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.events import AttemptStarted
from planrun.model import AttemptState, RunState, StepState

from .helpers import EventLog, make_plan, py_step, read_text, sh_step

pytestmark = pytest.mark.anyio


FLAKY = """
import os, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print("attempt", os.environ["PLANRUN_ATTEMPT"], "run", n)
sys.exit(0 if n >= 3 else 1)
"""


async def test_flaky_step_succeeds_on_third_attempt(tmp_path: Path, state_dir: Path) -> None:
    """A step failing twice then succeeding ends succeeded after exactly three attempts."""
    counter = tmp_path / "counter"
    plan = make_plan(
        [
            py_step("flaky", FLAKY, str(counter), retries=5, retry_delay_sec=0.05),
            sh_step("after", "exit 0", depends_on=["flaky"]),
        ]
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert result.state is RunState.SUCCEEDED
    step = result.steps["flaky"]
    assert step.state is StepState.SUCCEEDED
    assert [a.state for a in step.attempts] == [
        AttemptState.FAILED,
        AttemptState.FAILED,
        AttemptState.SUCCEEDED,
    ]
    assert counter.read_text() == "3"
    assert result.steps["after"].state is StepState.SUCCEEDED
    started = [e for e in log.of_type(AttemptStarted) if e.step_id == "flaky"]
    assert [e.attempt for e in started] == [1, 2, 3]
    # Each attempt has its own log, and saw its own PLANRUN_ATTEMPT.
    for attempt in step.attempts:
        assert read_text(attempt.log_path) == f"attempt {attempt.number} run {attempt.number}\n"
