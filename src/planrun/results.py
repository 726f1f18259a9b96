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

#: Steps up to which a :class:`RunResult`'s repr lists them.
REPR_STEPS = 200


class AttemptResult(msgspec.Struct, frozen=True, gc=False):
    """One attempt of a step: one process started (or refused to start) once.

    Timestamps are UTC, ISO 8601 with microseconds (``2026-12-01T08:18:58.474000Z``).
    Free text (``error``) has every secret masked as ``***``.
    """

    number: int
    """The attempt's number, from 1; a retry or a resume adds one."""
    state: AttemptState
    """How it ended: ``succeeded`` (exit code 0), ``failed``, ``timed_out``,
    ``cancelled`` or ``crashed`` (``running`` only while the run is)."""
    exit_code: int | None
    """The process's exit code; negative: killed by that signal (``-9``: SIGKILL);
    None when it never started or its end was not seen."""
    pid: int | None
    """The process id of the step's program (the leader of its process group); None
    when it could not be started."""
    log_path: str | None
    """The file holding the attempt's stdout and stderr, interleaved
    (``<state dir>/runs/<run id>/logs/<step>.<number>.log``); None when none was made."""
    started_at: str | None
    """When the process was started (None: it never was)."""
    ended_at: str | None
    """When the attempt ended (None: it has not)."""
    error: str | None
    """Why planrun ended the attempt or could not start it (a timeout, a program that
    could not be started, ...), secrets masked; None when the program simply exited."""

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


class StepResult(msgspec.Struct, frozen=True, gc=False):
    """One step of the run, as it ended, with every attempt it made (in order)."""

    id: str
    """The step's id in the plan."""
    state: StepState
    """The step's final state: ``succeeded``, ``failed``, ``timed_out``, ``skipped``
    (its trigger rule did not hold, or the run aborted before it), ``cancelled``,
    ``crashed``; ``pending``/``running`` only for a run that did not finish."""
    reason: str | None
    """Why it ended this way, in words (e.g. ``exit code 1``, or why it was skipped or
    cancelled), secrets masked; None when there is nothing to say."""
    exit_code: int | None
    """The exit code of its last attempt (None: no attempt ended with one)."""
    critical: bool
    """Whether its failure fails the run (``critical: false`` in the plan: it does not)."""
    attempts: list[AttemptResult]
    """Every attempt, first to last (empty for a skipped step); ``attempts[-1]`` is
    the one that decided ``state``."""
    outputs: dict[str, str] | None = None
    """What the step wrote to ``$PLANRUN_OUTPUT`` (``key=value`` lines), secrets masked
    as ``***``; None when it wrote nothing."""
    handler: str | None = None
    """A run handler's list (``on_success``, ``on_failure``, ``on_cancel``, ``on_exit``):
    it ran after the steps and did not change the run's outcome; None for a step."""

    @classmethod
    def from_view(cls, view: StepView) -> StepResult:
        attempts = [AttemptResult.from_view(a) for a in view.attempts]
        outputs = view.outputs
        if outputs is None and view.state is StepState.SUCCEEDED:
            outputs = {}  # what it wrote: nothing (the view keeps no empty dicts)
        return cls(
            view.id,
            view.state,
            view.reason,
            view.exit_code,
            view.critical,
            attempts,
            outputs,
            view.handler,
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
    #: The executor's short name (``"local"``); None for runs recorded before it was.
    executor: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCEEDED

    def __repr__(self) -> str:
        """The usual repr for a run of up to :data:`REPR_STEPS` steps; a larger one's
        steps are counted, not listed. Python 3.11's ``asyncio.run`` builds the repr of
        its main task's result when it ends (``signal.getsignal`` formats a ValueError
        naming the task), so ``anyio.run(run_plan, ...)`` paid for a repr of every step:
        40 MB and seconds for 100,000 steps."""
        if len(self.steps) <= REPR_STEPS:
            return super().__repr__()
        return (
            f"RunResult(run_id={self.run_id!r}, plan_id={self.plan_id!r}, "
            f"state={self.state!r}, exit_code={self.exit_code!r}, "
            f"steps=<{len(self.steps)} steps>)"
        )

    @classmethod
    def from_view(cls, view: RunView, *, consume: bool = False) -> RunResult:
        """The result of ``view``; ``consume``: each step is taken out of ``view.steps``
        as its result is made, so a large run never holds both in full (the memory of
        the views is reused for the results: 100,000 steps end ~20 MB lower)."""
        return cls(
            view.run_id,
            view.plan_id,
            view.state,
            view.exit_code if view.exit_code is not None else ExitCode.OK,
            view.reason,
            view.started_at,
            view.ended_at,
            _step_results(view.steps, consume),
            view.executor,
        )


def _step_results(steps: dict[str, StepView], consume: bool) -> dict[str, StepResult]:
    """Every step's result, in order; ``consume``: ``steps`` ends empty."""
    if not consume:
        return {s.id: StepResult.from_view(s) for s in steps.values()}
    results = {sid: StepResult.from_view(steps.pop(sid)) for sid in list(steps)}
    steps.clear()  # pop() never shrinks a dict's table: free it too
    return results


def stored_result(history: list[Event]) -> RunResult:
    """The :class:`RunResult` of a run from its stored events."""
    view = replay(history)
    if view is None:
        raise UsageError("the run has no recorded events")
    return RunResult.from_view(view)
