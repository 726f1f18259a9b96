"""The scheduler at its seam: a scripted executor (no processes) drives the engine
through orderings that are races with real processes."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from planrun.engine import Engine, EngineConfig
from planrun.events import Event, RunFinished, StepFinished
from planrun.model import StepState
from planrun.plan import load_plan, resolve_steps
from planrun.ports import AttemptSpec
from planrun.testing import Action, Fail, Hang, ScriptedExecutor, Succeed

pytestmark = pytest.mark.anyio


def _cancel_while_failing(scope: anyio.CancelScope) -> ScriptedExecutor:
    """``fails`` ends with exit 1 and, in the same instant, cancels ``scope`` (the
    caller of the run); every other step waits to be cancelled."""

    def fails(spec: AttemptSpec) -> Action:
        scope.cancel()
        return Fail(1)  # no delay: the result is reported without a checkpoint

    return ScriptedExecutor({"fails": fails}, default=Hang())


def _plan(**fields: Any) -> Any:
    return load_plan(
        {
            "plan_id": "p",
            "steps": [
                {"id": "waits", "command": "x"},
                {"id": "fails", "command": "x", **fields},
            ],
        }
    )


async def _run_cancelled(**fields: Any) -> list[Event]:
    events: list[Event] = []

    def sink(event: Event) -> None:
        events.append(event)

    plan = _plan(**fields)
    with anyio.CancelScope() as scope:
        engine = Engine(
            resolve_steps(plan, {}, None),
            EngineConfig(run_id="r", plan_id="p", max_concurrency=2),
            _cancel_while_failing(scope),
            sink,
        )
        await engine.run()
    assert scope.cancelled_caught
    return events


def _ends(events: list[Event]) -> dict[str, StepState]:
    return {e.step_id: e.state for e in events if isinstance(e, StepFinished)}


async def test_a_failure_with_retries_left_is_cancelled_by_a_concurrent_cancel() -> None:
    """The failed attempt's result and the cancellation arrive together: the step had
    a retry coming, so the cancellation ends it (``cancelled``), not the failure."""
    events = await _run_cancelled(retries=3, retry_delay_sec=100)
    assert _ends(events) == {"fails": StepState.CANCELLED, "waits": StepState.CANCELLED}
    assert isinstance(events[-1], RunFinished)
    assert events[-1].failed_steps == []


async def test_a_final_failure_stays_failed_under_a_concurrent_cancel() -> None:
    """Without retries left the attempt's failure is the step's end, cancel or not."""
    events = await _run_cancelled()
    assert _ends(events) == {"fails": StepState.FAILED, "waits": StepState.CANCELLED}


def test_first_checks_cut_the_plan_into_turns() -> None:
    from planrun.engine_nodes import first_checks

    assert first_checks(0) == [range(0)]  # still one turn: the run settles once
    assert first_checks(5, chunk=2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert sum(len(r) for r in first_checks(100_000)) == 100_000


async def test_a_big_plan_starts_over_several_loop_turns_in_plan_order() -> None:
    """2,500 steps (ten runs of the first look): the caller's loop gets turns
    between them (a ticker task counts them: steps of the last chunk start later
    than steps of the first), the steps still start in plan order, and a step that
    depends on one of a later chunk waits for it."""
    count = 2500
    steps: list[dict[str, Any]] = [{"id": f"s{i:04d}", "command": "x"} for i in range(count)]
    steps[0]["depends_on"] = [f"s{count - 1:04d}"]
    turns = 0
    seen: dict[str, int] = {}

    def note(spec: AttemptSpec) -> Action:
        seen[spec.step_id] = turns
        return Succeed()

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    executor = ScriptedExecutor(default=Succeed(), script={s["id"]: note for s in steps})
    plan = load_plan({"plan_id": "big", "steps": steps})
    engine = Engine(
        resolve_steps(plan, {}, None),
        EngineConfig(run_id="r", plan_id="big", max_concurrency=count),
        executor,
        lambda event: None,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await engine.run()
        tg.cancel_scope.cancel()
    order = executor.started_order()
    assert order == [f"s{i:04d}" for i in range(1, count)] + ["s0000"]
    assert seen["s0001"] < seen["s1500"] < seen["s2400"]
