"""The "still running" timer of the plain output is woken by a step's start only when
no other step was running (issue 16: each wake-up looks at every running step, so with
256 in flight a wake-up per start cost ~250 checks each)."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
from rich.console import Console

from planrun import run_plan
from planrun.cli.output import StepOutputLog
from planrun.cli.params import OutputChoice
from planrun.events import AttemptStarted, Event, RunStarted
from planrun.testing import ScriptedExecutor


def _events(tmp_path: Path) -> list[Event]:
    plan = {"plan_id": "t", "steps": [{"id": s, "command": "true"} for s in ("a", "b", "c")]}
    events: list[Event] = []

    async def main() -> None:
        await run_plan(
            plan, state_dir=tmp_path / "st", executor=ScriptedExecutor({}), on_event=events.append
        )

    anyio.run(main)
    return events


def test_a_start_wakes_the_timer_only_when_nothing_else_runs(tmp_path: Path) -> None:
    events = _events(tmp_path)
    started = [e for e in events if isinstance(e, AttemptStarted)]
    assert len(started) == 3
    console = Console(file=io.StringIO(), force_terminal=False, color_system=None)

    async def main() -> list[bool]:
        log = StepOutputLog(console, OutputChoice.PREFIXED)
        log.on_event(next(e for e in events if isinstance(e, RunStarted)))
        woken = []
        for event in started:  # all three start, none has finished yet
            log._wake = anyio.Event()  # as the timer leaves it when it has woken
            log.on_event(event)
            woken.append(log._wake.is_set())
        return woken

    assert anyio.run(main) == [True, False, False]
