"""The state reducer: fold events into a snapshot of a run. Pure, no I/O.

``apply`` is the one definition of "what state is this run in": the live view, the
plain log and (later) ``watch`` all feed it the same events. It updates the
:class:`RunView` in place — a copy per event would make large runs quadratic — so a
view must belong to one consumer (render it from the thread that applies events).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import msgspec

from .events import (
    AttemptFinished,
    AttemptStarted,
    ConcurrencyCapped,
    Event,
    RetryScheduled,
    RunAborting,
    RunCrashed,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepsExpanded,
)
from .model import AttemptState, RunState, StepState, base_id

__all__ = ["AttemptView", "RunView", "StepView", "apply", "replay"]


class AttemptView(msgspec.Struct, gc=False):
    number: int
    state: AttemptState = AttemptState.RUNNING
    pid: int | None = None
    log_path: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    error: str | None = None
    #: The child run this attempt of a ``uses`` step started (None: a process).
    child_run_id: str | None = None


class StepView(msgspec.Struct, gc=False):
    id: str
    name: str
    max_attempts: int
    critical: bool = True
    state: StepState = StepState.PENDING
    attempts: list[AttemptView] = msgspec.field(default_factory=list)
    reason: str | None = None
    exit_code: int | None = None
    retry_in: float | None = None
    started_at: str | None = None
    ended_at: str | None = None
    outputs: dict[str, str] | None = None
    #: A run handler's list (``on_failure``, ...); None for a step of the DAG.
    handler: str | None = None


class RunView(msgspec.Struct):
    run_id: str
    plan_id: str = ""
    state: RunState = RunState.RUNNING
    steps: dict[str, StepView] = msgspec.field(default_factory=dict)
    counts: Counter[StepState] = msgspec.field(default_factory=Counter)
    exit_code: int | None = None
    reason: str | None = None
    aborting: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    #: When the latest resume took the run over (None if it never was resumed).
    resumed_at: str | None = None
    last_seq: int = 0
    #: How many attempts may run at once, and what was asked when the open-file limit
    #: capped it (None: not capped).
    max_concurrency: int | None = None
    requested_concurrency: int | None = None
    #: The executor's short name (``run_started.executor``; None: not recorded).
    executor: str | None = None

    @property
    def finished(self) -> int:
        """Steps in a terminal state."""
        return sum(n for s, n in self.counts.items() if s.terminal)


def _move(view: RunView, step: StepView, state: StepState) -> None:
    view.counts[step.state] -= 1
    view.counts[state] += 1
    step.state = state


def _crash(view: RunView, event: RunCrashed) -> None:
    view.state = RunState.CRASHED
    view.reason = event.reason
    view.ended_at = event.ts
    for step in view.steps.values():
        if step.state is StepState.RUNNING:
            _move(view, step, StepState.CRASHED)
            for attempt in step.attempts:
                if attempt.state is AttemptState.RUNNING:
                    attempt.state = AttemptState.CRASHED


def _resume(view: RunView, event: RunResumed) -> None:
    """Steps in ``rerun`` go back to pending (keeping their earlier attempts)."""
    view.max_concurrency = event.max_concurrency
    view.requested_concurrency = None
    view.executor = event.executor
    view.state = RunState.RUNNING
    view.exit_code = view.reason = view.aborting = view.ended_at = None
    view.started_at = view.started_at or event.ts
    view.resumed_at = event.ts
    steps: dict[str, StepView] = {}
    # Instances of for_each steps are not in ``event.steps``: they stay, after their
    # step, as they were (a rerun step's ``steps_expanded`` replaces them).
    instances: dict[str, list[StepView]] = {}
    for sid, old in view.steps.items():
        if base_id(sid) != sid:
            instances.setdefault(base_id(sid), []).append(old)
    for info in event.steps:
        step = view.steps.get(info.id) or StepView(info.id, info.name, 0, info.critical)
        step.name, step.critical, step.handler = info.name, info.critical, info.handler
        step.max_attempts = info.first_attempt + info.retries
        if info.id in event.kept:
            step.state = event.kept[info.id]
        else:
            step.state = StepState.PENDING
            step.reason = step.exit_code = step.retry_in = None
            step.started_at = step.ended_at = None
            step.outputs = None
        steps[info.id] = step
        steps.update((i.id, i) for i in instances.get(info.id, ()))
    view.steps = steps
    view.counts = Counter(s.state for s in steps.values())


def _expand(view: RunView, event: StepsExpanded) -> None:
    """The for_each step runs (as a group); its instances follow it, pending unless
    ``kept``; instances of it that an earlier expansion made and this one did not are
    dropped."""
    group = view.steps.get(event.step_id)
    if group is not None:
        _move(view, group, StepState.RUNNING)
        group.started_at = group.started_at or event.ts
    made: dict[str, StepView] = {}
    for info in event.steps:
        step = view.steps.get(info.id) or StepView(info.id, info.name, 0, info.critical)
        step.name, step.critical = info.name, info.critical
        step.max_attempts = info.first_attempt + info.retries
        if info.id not in event.kept:
            step.state = StepState.PENDING
            step.reason = step.exit_code = step.retry_in = None
            step.started_at = step.ended_at = None
            step.outputs = None
        made[info.id] = step
    steps: dict[str, StepView] = {}
    for sid, step in view.steps.items():
        if base_id(sid) == event.step_id and sid != event.step_id:
            continue  # an earlier expansion's
        steps[sid] = step
        if sid == event.step_id:
            steps.update(made)
    if group is None:
        steps.update(made)
    view.steps = steps
    view.counts = Counter(s.state for s in steps.values())


def _start(view: RunView, event: RunStarted) -> None:
    view.max_concurrency = event.max_concurrency
    view.plan_id = event.plan_id
    view.executor = event.executor
    view.started_at = event.ts
    view.steps = {
        s.id: StepView(s.id, s.name, s.retries + 1, s.critical, handler=s.handler)
        for s in event.steps
    }
    view.counts = Counter({StepState.PENDING: len(event.steps)})


def _attempt_started(view: RunView, event: AttemptStarted) -> None:
    step = view.steps[event.step_id]
    _move(view, step, StepState.RUNNING)
    step.retry_in = None
    step.started_at = step.started_at or event.ts
    attempt = AttemptView(
        event.attempt,
        pid=event.pid,
        log_path=event.log_path,
        started_at=event.ts,
        child_run_id=event.child_run_id,
    )
    if step.attempts:
        step.attempts.append(attempt)
    else:  # a list of one (an append would make room for four)
        step.attempts = [attempt]


def apply(view: RunView | None, event: Event) -> RunView:
    """Fold ``event`` into ``view`` (created from the first event when None)."""
    if view is None:
        view = RunView(run_id=event.run_id)
    view.last_seq = event.seq
    match event:
        case RunStarted():
            _start(view, event)
        case AttemptStarted():
            _attempt_started(view, event)
        case AttemptFinished():
            step = view.steps[event.step_id]
            if step.attempts and step.attempts[-1].number == event.attempt:
                attempt = step.attempts[-1]
                attempt.state = event.state
                attempt.exit_code = event.exit_code
                attempt.ended_at = event.ts
                attempt.error = event.error
            step.exit_code = event.exit_code
        case RetryScheduled():
            view.steps[event.step_id].retry_in = event.delay_sec
        case StepFinished():
            step = view.steps[event.step_id]
            _move(view, step, event.state)
            step.reason = event.reason
            step.exit_code = event.exit_code
            step.retry_in = None
            step.ended_at = event.ts
            # None for none (not a dict per step: 6 MB of 100,000); a result gives a
            # succeeded step its {} again (StepResult.from_view).
            step.outputs = event.outputs or None
        case RunResumed():
            _resume(view, event)
        case ConcurrencyCapped():
            view.max_concurrency = event.effective
            view.requested_concurrency = event.requested
        case StepsExpanded():
            _expand(view, event)
        case RunAborting():
            view.aborting = event.reason
        case RunCrashed():
            _crash(view, event)
        case RunFinished():
            view.state = event.state
            view.exit_code = event.exit_code
            view.reason = event.reason
            view.ended_at = event.ts
    return view


def replay(events: Iterable[Event]) -> RunView | None:
    """The view after every event of ``events`` (None when there are none)."""
    view: RunView | None = None
    for event in events:
        view = apply(view, event)
    return view
