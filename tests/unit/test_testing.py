"""``planrun.testing.ScriptedExecutor``: every action keeps the Executor contract, and a
scripted run through ``run_plan`` is recorded in a real store without any process."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.masking import Masker
from planrun.model import AttemptState, StepState
from planrun.ports import AttemptSpec, Executor, ProcessResult
from planrun.testing import Fail, Hang, NotStarted, ScriptedExecutor, Succeed, TimeOut

pytestmark = pytest.mark.anyio


def _spec(
    step_id: str = "s",
    attempt: int = 1,
    *,
    timeout: float | None = None,
    log_path: Path | None = None,
    masker: Masker | None = None,
) -> AttemptSpec:
    return AttemptSpec(
        run_id="r",
        step_id=step_id,
        attempt=attempt,
        argv=("never-run",),
        env={},
        cwd=None,
        timeout=timeout,
        kill_grace=0.1,
        log_path=str(log_path) if log_path is not None else None,
        masker=masker,
    )


class _Started:
    def __init__(self) -> None:
        self.pids: list[int | None] = []

    def __call__(self, pid: int | None) -> None:
        self.pids.append(pid)


async def _run(
    executor: ScriptedExecutor, spec: AttemptSpec
) -> tuple[ProcessResult, list[int | None]]:
    started = _Started()
    result = await executor.run(spec, started)
    return result, started.pids


def test_it_is_an_executor() -> None:
    """It satisfies the Executor port (checked by mypy at this assignment)."""
    executor: Executor = ScriptedExecutor()
    assert callable(executor.run)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (Succeed(), ProcessResult(0, outputs={})),
        (Succeed({"k": "v"}), ProcessResult(0, outputs={"k": "v"})),
        (Succeed(exit_code=3), ProcessResult(3, outputs={})),
        (Succeed(output_error="bad"), ProcessResult(0, outputs={}, output_error="bad")),
        (Fail(), ProcessResult(1)),
        (Fail(-9), ProcessResult(-9)),
        (TimeOut(), ProcessResult(-15, timed_out=True)),
        (TimeOut(exit_code=-9), ProcessResult(-9, timed_out=True)),
        (NotStarted("no such program"), ProcessResult(None, error="no such program")),
    ],
)
async def test_each_action_returns_its_result(
    action: Succeed | Fail | TimeOut | NotStarted, expected: ProcessResult
) -> None:
    """Each action ends its attempt as the equivalent process would, having reported
    its start once (with no pid)."""
    executor = ScriptedExecutor({"s": action})
    result, pids = await _run(executor, _spec())
    assert result == expected
    assert pids == [None]
    (record,) = executor.attempts
    assert record.result == expected
    assert record.action == action
    assert record.cancelled is False
    assert record.ended is not None


async def test_unscripted_steps_take_the_default() -> None:
    """A step not in the script succeeds, or does what ``default`` says."""
    assert (await _run(ScriptedExecutor(), _spec()))[0] == ProcessResult(0, outputs={})
    assert (await _run(ScriptedExecutor(default=Fail(4)), _spec()))[0] == ProcessResult(4)


async def test_a_sequence_is_one_action_per_attempt_and_the_last_repeats() -> None:
    """The n-th attempt of a step takes the n-th action; after the last, the last."""
    executor = ScriptedExecutor({"s": [Fail(1), Fail(2), Succeed()]})
    codes = [(await _run(executor, _spec(attempt=n)))[0].exit_code for n in range(1, 6)]
    assert codes == [1, 2, 0, 0, 0]
    # Other steps count their own attempts.
    assert (await _run(executor, _spec("t")))[0].exit_code == 0


async def test_an_empty_sequence_is_refused() -> None:
    with pytest.raises(ValueError, match="script of step 's' is empty"):
        await _run(ScriptedExecutor({"s": []}), _spec())


async def test_a_function_decides_from_the_spec() -> None:
    """A callable entry gets each attempt's spec and returns its action."""

    def script(spec: AttemptSpec) -> Succeed | Fail:
        return Succeed() if spec.attempt >= 2 else Fail(9)

    executor = ScriptedExecutor({"s": script})
    assert (await _run(executor, _spec(attempt=1)))[0].exit_code == 9
    assert (await _run(executor, _spec(attempt=2)))[0].exit_code == 0


async def test_hang_runs_until_cancelled_and_reraises() -> None:
    """Hang never returns by itself; cancelling it records ``cancelled`` and re-raises."""
    executor = ScriptedExecutor({"s": Hang()})
    with anyio.move_on_after(0.05) as scope:
        await _run(executor, _spec())
    assert scope.cancelled_caught
    (record,) = executor.attempts
    assert record.cancelled is True
    assert record.result is None
    assert record.ended is not None
    assert executor.running == 0


async def test_hang_times_out_at_the_steps_timeout() -> None:
    """With a timeout in the spec, Hang ends timed out after it (as SIGTERM would)."""
    executor = ScriptedExecutor({"s": Hang()})
    with anyio.fail_after(10):
        result, _ = await _run(executor, _spec(timeout=0.05))
    assert result == ProcessResult(-15, timed_out=True)
    (record,) = executor.attempts
    assert record.ended is not None
    assert record.ended - record.started >= 0.04


async def test_delays_take_anyio_time() -> None:
    """A delay passes before the attempt ends (on anyio's clock)."""
    executor = ScriptedExecutor({"s": Fail(1, delay=0.05), "t": TimeOut(after=0.05)})
    for step in ("s", "t"):
        await _run(executor, _spec(step))
    for record in executor.attempts:
        assert record.ended is not None
        assert record.ended - record.started >= 0.04


async def test_peak_counts_concurrent_attempts() -> None:
    """``peak`` is the most attempts that ran at once; ``started_order`` their order."""
    executor = ScriptedExecutor(default=Succeed(delay=0.05))
    async with anyio.create_task_group() as tg:
        for step in ("a", "b", "c"):
            tg.start_soon(_run, executor, _spec(step))
    assert executor.peak == 3
    assert executor.running == 0
    assert sorted(executor.started_order()) == ["a", "b", "c"]


async def test_the_log_is_a_new_private_file_with_masked_text(tmp_path: Path) -> None:
    """With a log path the attempt's ``log`` is written there (0600), secrets masked;
    NotStarted logs its error like the local executor."""
    masker = Masker(["hunter2"])
    executor = ScriptedExecutor(
        {"s": Fail(1, log="token hunter2\n"), "t": NotStarted("cannot start: nope")}
    )
    await _run(executor, _spec("s", log_path=tmp_path / "s.log", masker=masker))
    await _run(executor, _spec("t", log_path=tmp_path / "t.log"))
    assert (tmp_path / "s.log").read_text() == "token ***\n"
    assert stat.S_IMODE(os.stat(tmp_path / "s.log").st_mode) == 0o600
    assert (tmp_path / "t.log").read_text() == "planrun: cannot start: nope\n"


async def test_an_existing_log_is_not_overwritten(tmp_path: Path) -> None:
    """A file already at the log path is left alone: the attempt fails to start."""
    log = tmp_path / "s.log"
    log.write_text("someone else's\n")
    result, _ = await _run(ScriptedExecutor(), _spec(log_path=log))
    assert result.exit_code is None
    assert result.error is not None
    assert "cannot create the attempt's log" in result.error
    assert log.read_text() == "someone else's\n"


def _text(path: str | None) -> str:
    assert path is not None
    return Path(path).read_text()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_a_run_records_its_executors_name_or_class_name(state_dir: Path) -> None:
    """``executor`` on the result and the stored run: the executor's ``name`` attribute
    when it has one, else its class name (the local executor is ``local``: acceptance)."""

    class Named(ScriptedExecutor):
        name = "fake-remote"

    plan = {"plan_id": "named", "steps": [{"id": "a", "command": "true"}]}
    unnamed = await run_plan(plan, state_dir=state_dir, executor=ScriptedExecutor({}))
    named = await run_plan(plan, state_dir=state_dir, executor=Named({}))
    assert (unnamed.executor, named.executor) == ("ScriptedExecutor", "fake-remote")
    rows = _rows(state_dir / "runs.db", "SELECT run_id, executor FROM runs")
    assert dict(rows) == {unnamed.run_id: "ScriptedExecutor", named.run_id: "fake-remote"}


async def test_run_plan_with_a_scripted_executor_is_recorded_without_processes(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_plan(..., executor=ScriptedExecutor(...)) runs the plan through the real engine
    and store: retries, outputs into a later step's argv, logs, events in SQLite and
    the JSONL mirror; no attempt has a pid and no process is spawned."""

    def no_spawn(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was spawned")

    # The local executor starts processes with subprocess.Popen (and nothing else).
    monkeypatch.setattr(subprocess, "Popen", no_spawn)
    plan = {
        "plan_id": "scripted",
        "steps": [
            {"id": "build", "command": "make", "retries": 1, "retry_delay_sec": 0},
            {
                "id": "ship",
                "command": "ship",
                "args": ["${steps.build.outputs.version}"],
                "depends_on": ["build"],
            },
        ],
    }
    executor = ScriptedExecutor(
        {"build": [Fail(2, log="flaky\n"), Succeed({"version": "1.2.3"}, log="built\n")]}
    )
    result = await run_plan(plan, state_dir=state_dir, executor=executor)
    assert result.ok
    build = result.steps["build"]
    assert [a.state for a in build.attempts] == [AttemptState.FAILED, AttemptState.SUCCEEDED]
    assert [a.pid for a in build.attempts] == [None, None]
    assert [_text(a.log_path) for a in build.attempts] == ["flaky\n", "built\n"]
    assert result.steps["ship"].state is StepState.SUCCEEDED
    assert executor.of_step("ship")[0].spec.argv == ("ship", "1.2.3")
    db = state_dir / "runs.db"
    assert _rows(db, "SELECT state, exit_code FROM runs") == [("succeeded", 0)]
    assert _rows(db, "SELECT step_id, state, attempts FROM steps ORDER BY step_id") == [
        ("build", "succeeded", 2),
        ("ship", "succeeded", 1),
    ]
    types = [
        json.loads(body)["type"] for (body,) in _rows(db, "SELECT body FROM events ORDER BY seq")
    ]
    assert types[0] == "run_started"
    assert types[-1] == "run_finished"
    assert types.count("attempt_started") == 3
    assert types.count("retry_scheduled") == 1
    mirror = (state_dir / "runs" / result.run_id / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in mirror] == types


def _readme_example() -> str:
    """The code block of the README's "Testing your plans and services" section."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Testing your plans and services", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_example_passes(state_dir: Path) -> None:
    """The README's example test runs and its assertions hold."""
    namespace: dict[str, Any] = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102 (our README)
    await namespace["test_a_timed_out_deploy_rolls_back"](state_dir)


@pytest.mark.parametrize("action", [Succeed(delay=100), Fail(1, delay=100)])
async def test_a_delay_past_the_steps_timeout_times_out(action: Succeed | Fail) -> None:
    """An attempt scripted to take longer than its step's timeout_sec times out at it,
    as a real process would."""
    executor = ScriptedExecutor({"s": action})
    with anyio.fail_after(10):
        result, _ = await _run(executor, _spec(timeout=0.05))
    assert result == ProcessResult(-15, timed_out=True)


async def test_a_delay_within_the_steps_timeout_does_not_time_out() -> None:
    result, _ = await _run(ScriptedExecutor({"s": Fail(2, delay=0.01)}), _spec(timeout=10))
    assert result == ProcessResult(2)
