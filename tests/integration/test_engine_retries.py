"""Retries with real processes: attempt counts, delays with backoff, what is retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun import run_plan
from planrun.events import AttemptStarted, RetryScheduled
from planrun.model import AttemptState, RunState, StepState

from .helpers import EventLog, make_plan, parse_ts, py_step, read_text, sh_step

pytestmark = pytest.mark.anyio

STAMP = 'date +%s.%N >> "$STAMPS"; '


async def test_retry_delays_follow_backoff(tmp_path: Path, state_dir: Path) -> None:
    """Attempt n+1 starts at least retry_delay_sec * backoff^(n-1) after attempt n ended."""
    stamps = tmp_path / "stamps"
    plan = make_plan(
        [
            sh_step(
                "fails",
                STAMP + "exit 1",
                retries=3,
                retry_delay_sec=0.15,
                retry_backoff=2,
            )
        ],
        env={"STAMPS": str(stamps)},
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    step = result.steps["fails"]
    assert step.state is StepState.FAILED
    assert step.exit_code == 1
    assert [a.number for a in step.attempts] == [1, 2, 3, 4]
    assert all(a.state is AttemptState.FAILED for a in step.attempts)
    expected = [0.15, 0.3, 0.6]
    scheduled = log.of_type(RetryScheduled)
    assert [(e.attempt, e.delay_sec) for e in scheduled] == [(2, 0.15), (3, 0.3), (4, 0.6)]
    # Recorded by planrun: attempt n ended -> attempt n+1 started.
    for n, delay in enumerate(expected):
        gap = parse_ts(step.attempts[n + 1].started_at) - parse_ts(step.attempts[n].ended_at)
        assert gap >= 0.9 * delay, f"attempt {n + 2} started {gap:.3f}s after, want {delay}"
    # Recorded by the processes themselves.
    starts = [float(x) for x in stamps.read_text().split()]
    assert len(starts) == 4
    for n, delay in enumerate(expected):
        assert starts[n + 1] - starts[n] >= 0.9 * delay


async def test_retry_delay_is_capped(state_dir: Path) -> None:
    """retry_max_delay_sec caps the backoff."""
    plan = make_plan(
        [
            sh_step(
                "fails",
                "exit 1",
                retries=3,
                retry_delay_sec=0.05,
                retry_backoff=4,
                retry_max_delay_sec=0.1,
            )
        ]
    )
    log = EventLog()
    result = await run_plan(plan, state_dir=state_dir, on_event=log)
    assert len(result.steps["fails"].attempts) == 4
    assert [e.delay_sec for e in log.of_type(RetryScheduled)] == [0.05, 0.1, 0.1]


async def test_retry_on_exit_codes_filters(state_dir: Path) -> None:
    """Exit code 3 (listed in retry_on_exit_codes) is retried; exit code 4 is not."""
    fields = {"retries": 2, "retry_on_exit_codes": [3], "on_failure": "continue"}
    plan = make_plan([sh_step("three", "exit 3", **fields), sh_step("four", "exit 4", **fields)])
    result = await run_plan(plan, state_dir=state_dir)
    three, four = result.steps["three"], result.steps["four"]
    assert three.state is StepState.FAILED
    assert [a.exit_code for a in three.attempts] == [3, 3, 3]
    assert four.state is StepState.FAILED
    assert [a.exit_code for a in four.attempts] == [4]
    assert four.reason == "exit code 4"


@pytest.mark.parametrize(("retry_on_timeout", "attempts"), [(False, 1), (True, 2)])
async def test_retry_on_timeout(state_dir: Path, retry_on_timeout: bool, attempts: int) -> None:
    """A timed-out attempt is retried unless retry_on_timeout is false."""
    plan = make_plan(
        [
            sh_step(
                "slow",
                "sleep 1000",
                timeout_sec=0.2,
                retries=1,
                retry_on_timeout=retry_on_timeout,
            )
        ]
    )
    result = await run_plan(plan, state_dir=state_dir)
    step = result.steps["slow"]
    assert step.state is StepState.TIMED_OUT
    assert [a.state for a in step.attempts] == [AttemptState.TIMED_OUT] * attempts


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


async def test_waiting_for_a_retry_does_not_hold_a_slot(tmp_path: Path, state_dir: Path) -> None:
    """With one slot, another step runs while a failed step waits for its retry."""
    stamps = tmp_path / "stamps"
    plan = make_plan(
        [
            sh_step(
                "retrying",
                'echo "retrying $(date +%s.%N)" >> "$STAMPS"; exit 1',
                retries=1,
                retry_delay_sec=0.5,
                critical=False,
            ),
            sh_step("other", 'echo "other $(date +%s.%N)" >> "$STAMPS"'),
        ],
        max_concurrency=1,
        env={"STAMPS": str(stamps)},
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert len(result.steps["retrying"].attempts) == 2
    order = [line.split()[0] for line in stamps.read_text().splitlines()]
    assert order == ["retrying", "other", "retrying"]
