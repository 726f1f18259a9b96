"""What ``run_plan`` returns: :class:`RunResult`, built from the reducer's view.

Three shapes describe an attempt, each for its own reader, and they stay separate on
purpose: :class:`planrun.state.AttemptView` is mutable (the reducer updates it in place,
so large runs stay linear), :class:`planrun.records.AttemptRecord` is the stored JSON of
``show --json`` and the monitor (key ``attempt``, with ``duration_sec``), and
:class:`AttemptResult` is the public result (key ``number``). Renaming either of the
last two would break their users; what was duplicated is the conversion, which now
lives in one place (:meth:`AttemptResult.from_view`). Pure: no I/O.
"""

from __future__ import annotations

import msgspec

from .errors import UsageError
from .events import Event
from .exitcodes import ExitCode
from .model import AttemptState, RunState, StepState
from .state import AttemptView, RunView, StepView, replay

__all__ = ["AttemptResult", "RunResult", "StepResult", "stored_result"]


class AttemptResult(msgspec.Struct, frozen=True):
    number: int
    state: AttemptState
    exit_code: int | None
    pid: int | None
    log_path: str | None
    started_at: str | None
    ended_at: str | None
    error: str | None

    @classmethod
    def from_view(cls, view: AttemptView) -> AttemptResult:
        return cls(
            view.number,
            view.state,
            view.exit_code,
            view.pid,
            view.log_path,
            view.started_at,
            view.ended_at,
            view.error,
        )


class StepResult(msgspec.Struct, frozen=True):
    id: str
    state: StepState
    reason: str | None
    exit_code: int | None
    critical: bool
    attempts: list[AttemptResult]
    #: What the step wrote to $PLANRUN_OUTPUT (secrets masked).
    outputs: dict[str, str] | None = None

    @classmethod
    def from_view(cls, view: StepView) -> StepResult:
        attempts = [AttemptResult.from_view(a) for a in view.attempts]
        return cls(
            view.id, view.state, view.reason, view.exit_code, view.critical, attempts, view.outputs
        )


class RunResult(msgspec.Struct, frozen=True):
    """What ``run_plan`` returns: the run's final state and every step's attempts."""

    run_id: str
    plan_id: str
    state: RunState
    exit_code: int
    reason: str | None
    started_at: str | None
    ended_at: str | None
    steps: dict[str, StepResult]

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    @classmethod
    def from_view(cls, view: RunView) -> RunResult:
        return cls(
            view.run_id,
            view.plan_id,
            view.state,
            view.exit_code if view.exit_code is not None else ExitCode.OK,
            view.reason,
            view.started_at,
            view.ended_at,
            {s.id: StepResult.from_view(s) for s in view.steps.values()},
        )


def stored_result(history: list[Event]) -> RunResult:
    """The :class:`RunResult` of a run from its stored events."""
    view = replay(history)
    if view is None:
        raise UsageError("the run has no recorded events")
    return RunResult.from_view(view)
