"""The recorder's transactions on a chain: a step's end and the start of the step it
lets go are committed together (one transaction per step, not two), and waiting for a
start that is slow to come never holds the end back for long."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import planrun.store.apply as store_apply
import planrun.store.sqlite as store_sqlite
from planrun import run_plan
from planrun.events import AttemptStarted, Event, StepFinished
from planrun.executors.local import LocalExecutor
from planrun.ports import AttemptSpec, ProcessResult
from planrun.store import batches

from .helpers import make_plan

pytestmark = pytest.mark.anyio


class _SlowStart:
    """The local executor, with a delay before each spawn (a busy machine's slow spawn:
    ``delays`` per step id, else ``delay``), then ``probe(step_id)``."""

    name = "slow-start"

    def __init__(
        self,
        inner: LocalExecutor,
        delay: float,
        delays: dict[str, float] | None = None,
        probe: Callable[[str], None] | None = None,
    ) -> None:
        self.inner, self.delay, self.delays, self.probe = inner, delay, delays or {}, probe

    async def run(
        self, spec: AttemptSpec, on_started: Callable[[int | None], None]
    ) -> ProcessResult:
        await anyio.sleep(self.delays.get(spec.step_id, self.delay))
        if self.probe is not None:
            self.probe(spec.step_id)
        return await self.inner.run(spec, on_started)


def _chain(n: int) -> dict[str, Any]:
    steps = [
        {"id": f"s{i}", "command": "true", "depends_on": [f"s{i - 1}"] if i else []}
        for i in range(n)
    ]
    return make_plan(steps)


def _batches(monkeypatch: pytest.MonkeyPatch) -> list[list[Event]]:
    """Every batch the recorder commits, as it commits it."""
    seen: list[list[Event]] = []
    apply = store_apply.apply_batch

    def spy(batch: Sequence[Event], *rest: Any) -> None:
        seen.append(list(batch))
        apply(batch, *rest)

    monkeypatch.setattr(store_sqlite, "apply_batch", spy)
    return seen


def _batch_of(seen: list[list[Event]], cls: type[Event], step_id: str) -> int:
    (where,) = [
        i
        for i, batch in enumerate(seen)
        for e in batch
        if isinstance(e, cls) and getattr(e, "step_id", None) == step_id
    ]
    return where


async def test_a_steps_end_and_the_next_start_share_a_transaction(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _batches(monkeypatch)
    with LocalExecutor() as local:
        result = await run_plan(_chain(6), state_dir=state_dir, executor=_SlowStart(local, 0.005))
    assert result.ok
    for i in range(5):
        ended = _batch_of(seen, StepFinished, f"s{i}")
        assert ended == _batch_of(seen, AttemptStarted, f"s{i + 1}"), seen[ended]
    assert len(seen) <= 7  # one per step, and the run's first and last events


async def test_a_slow_start_does_not_hold_the_previous_end_back(state_dir: Path) -> None:
    """s1's spawn is 1 s late: s0's end is in the store by then (the recorder waits
    for a start at most ``LAUNCH_WAIT_SEC``)."""
    assert batches.LAUNCH_WAIT_SEC <= 0.1
    found: list[Any] = []

    def probe(step_id: str) -> None:
        if step_id == "s1":
            with sqlite3.connect(state_dir / "runs.db") as db:
                found.extend(db.execute("SELECT state FROM steps WHERE step_id = 's0'"))

    with LocalExecutor() as local:
        slow = _SlowStart(local, 0.0, {"s1": 1.0}, probe)
        result = await run_plan(_chain(2), state_dir=state_dir, executor=slow)
    assert result.ok
    assert found == [("succeeded",)]
