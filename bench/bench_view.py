"""How much the live view costs on a large run: render time per frame and per event.

Builds the view of a 10,000-step run from synthetic events (half finished, 8 running,
a few failed) and times ``LiveView.render`` to a string console, as a redraw would.
Run: ``python bench/bench_view.py [--steps N]``. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import time

from rich.console import Console

from planrun.cli.view import LiveView
from planrun.events import (
    AttemptFinished,
    AttemptStarted,
    Event,
    RunStarted,
    StepFinished,
    StepInfo,
)
from planrun.model import AttemptState, StepState


def _events(steps: int) -> list[Event]:
    ts = "2026-11-24T10:00:00.000000Z"
    run = "bench"
    out: list[Event] = [
        RunStarted(
            run_id=run,
            seq=1,
            ts=ts,
            plan_id="big",
            plan_path=None,
            variables={},
            max_concurrency=8,
            pid=1,
            steps=[StepInfo(f"s{i}", f"s{i}", [], 0, True) for i in range(steps)],
        )
    ]
    seq = 1
    for i in range(steps // 2 + 8):
        seq += 1
        out.append(
            AttemptStarted(
                run_id=run, seq=seq, ts=ts, step_id=f"s{i}", attempt=1, pid=1000 + i, log_path=None
            )
        )
        if i < steps // 2:
            failed = i % 997 == 0
            state = AttemptState.FAILED if failed else AttemptState.SUCCEEDED
            seq += 1
            out.append(
                AttemptFinished(
                    run_id=run,
                    seq=seq,
                    ts=ts,
                    step_id=f"s{i}",
                    attempt=1,
                    state=state,
                    exit_code=1 if failed else 0,
                    duration_sec=0.1,
                )
            )
            seq += 1
            out.append(
                StepFinished(
                    run_id=run,
                    seq=seq,
                    ts=ts,
                    step_id=f"s{i}",
                    state=StepState.FAILED if failed else StepState.SUCCEEDED,
                    attempts=1,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    view = LiveView(console)
    events = _events(args.steps)
    start = time.perf_counter()
    for event in events:
        view.on_event(event)
    fold = time.perf_counter() - start
    assert view.view is not None
    start = time.perf_counter()
    for _ in range(args.frames):
        console.print(view.render(view.view))
    frame = (time.perf_counter() - start) / args.frames
    print(f"{'what':<34}{'value':>12}")
    print(f"{'steps':<34}{args.steps:>12}")
    print(f"{'events folded':<34}{len(events):>12}")
    print(f"{'fold cost per event (us)':<34}{fold / len(events) * 1e6:>12.1f}")
    print(f"{'render cost per frame (ms)':<34}{frame * 1e3:>12.2f}")
    print(f"{'share of a core at 10 fps (%)':<34}{frame * 10 * 100:>12.1f}")


if __name__ == "__main__":
    main()
