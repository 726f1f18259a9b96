"""The state reducer: hand-built event sequences folded into a RunView."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import msgspec

from planrun.events import (
    AttemptFinished,
    AttemptStarted,
    ConcurrencyCapped,
    Event,
    RetryScheduled,
    RunAborting,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFinished,
    StepInfo,
    decode_event,
    encode_event,
)
from planrun.model import AttemptState, RunState, StepState
from planrun.state import AttemptView, RunView, apply

RUN = "run-1"


class _Events:
    """Builds events for one run with gap-free ``seq`` numbers and fake timestamps."""

    def __init__(self) -> None:
        self.seq = 0

    def _next(self) -> tuple[int, str]:
        self.seq += 1
        return self.seq, f"2024-01-01T00:00:{self.seq:02d}.000000Z"

    def run_started(self, *steps: StepInfo) -> RunStarted:
        seq, ts = self._next()
        return RunStarted(
            run_id=RUN,
            seq=seq,
            ts=ts,
            plan_id="plan-x",
            plan_path="/plans/x.json",
            variables={},
            max_concurrency=2,
            steps=list(steps),
            pid=4242,
        )

    def attempt_started(self, step_id: str, attempt: int, pid: int | None = 100) -> AttemptStarted:
        seq, ts = self._next()
        log = f"/logs/{step_id}.{attempt}.log"
        return AttemptStarted(
            run_id=RUN, seq=seq, ts=ts, step_id=step_id, attempt=attempt, pid=pid, log_path=log
        )

    def attempt_finished(
        self,
        step_id: str,
        attempt: int,
        state: AttemptState,
        exit_code: int | None,
        error: str | None = None,
    ) -> AttemptFinished:
        seq, ts = self._next()
        return AttemptFinished(
            run_id=RUN,
            seq=seq,
            ts=ts,
            step_id=step_id,
            attempt=attempt,
            state=state,
            exit_code=exit_code,
            duration_sec=0.5,
            error=error,
        )

    def retry(self, step_id: str, attempt: int, delay: float) -> RetryScheduled:
        seq, ts = self._next()
        return RetryScheduled(
            run_id=RUN, seq=seq, ts=ts, step_id=step_id, attempt=attempt, delay_sec=delay
        )

    def step_finished(
        self,
        step_id: str,
        state: StepState,
        attempts: int,
        exit_code: int | None = None,
        reason: str | None = None,
    ) -> StepFinished:
        seq, ts = self._next()
        return StepFinished(
            run_id=RUN,
            seq=seq,
            ts=ts,
            step_id=step_id,
            state=state,
            attempts=attempts,
            exit_code=exit_code,
            reason=reason,
        )

    def aborting(self, reason: str, step_id: str | None = None) -> RunAborting:
        seq, ts = self._next()
        return RunAborting(run_id=RUN, seq=seq, ts=ts, reason=reason, step_id=step_id)

    def run_finished(
        self, state: RunState, exit_code: int, reason: str | None = None
    ) -> RunFinished:
        seq, ts = self._next()
        return RunFinished(
            run_id=RUN, seq=seq, ts=ts, state=state, exit_code=exit_code, reason=reason
        )


def _info(step_id: str, retries: int = 0, critical: bool = True, name: str = "") -> StepInfo:
    """A step as announced in RunStarted."""
    return StepInfo(step_id, name or step_id, [], retries, critical)


def _fold(events: Iterable[Event]) -> RunView:
    """Apply every event in order to a fresh view."""
    view: RunView | None = None
    for event in events:
        view = apply(view, event)
    assert view is not None
    return view


def test_run_started_creates_pending_steps() -> None:
    """RunStarted creates the view with every step pending and its attempt budget."""
    ev = _Events()
    view = apply(None, ev.run_started(_info("a", retries=2, name="Build A"), _info("b")))
    assert view.run_id == RUN
    assert view.plan_id == "plan-x"
    assert view.state is RunState.RUNNING
    assert view.started_at == "2024-01-01T00:00:01.000000Z"
    assert view.last_seq == 1
    assert list(view.steps) == ["a", "b"]
    assert view.steps["a"].name == "Build A"
    assert view.steps["a"].max_attempts == 3
    assert view.steps["b"].max_attempts == 1
    assert view.counts == Counter({StepState.PENDING: 2})
    assert view.finished == 0


def test_apply_updates_the_view_in_place() -> None:
    """apply() returns the same view object it was given."""
    ev = _Events()
    view = apply(None, ev.run_started(_info("a")))
    assert apply(view, ev.attempt_started("a", 1)) is view


def test_successful_run() -> None:
    """Two steps that succeed leave a succeeded run with both steps terminal."""
    ev = _Events()
    view = _fold(
        [
            ev.run_started(_info("a"), _info("b")),
            ev.attempt_started("a", 1, pid=11),
            ev.attempt_finished("a", 1, AttemptState.SUCCEEDED, 0),
            ev.step_finished("a", StepState.SUCCEEDED, 1, 0),
            ev.attempt_started("b", 1, pid=12),
            ev.attempt_finished("b", 1, AttemptState.SUCCEEDED, 0),
            ev.step_finished("b", StepState.SUCCEEDED, 1, 0),
            ev.run_finished(RunState.SUCCEEDED, 0),
        ]
    )
    assert view.state is RunState.SUCCEEDED
    assert view.exit_code == 0
    assert view.reason is None
    assert view.ended_at == "2024-01-01T00:00:08.000000Z"
    assert view.last_seq == 8
    assert view.counts == Counter({StepState.SUCCEEDED: 2})
    assert view.finished == 2
    a = view.steps["a"]
    assert a.state is StepState.SUCCEEDED
    assert a.exit_code == 0
    assert a.started_at == "2024-01-01T00:00:02.000000Z"
    assert a.ended_at == "2024-01-01T00:00:04.000000Z"
    assert a.attempts == [
        AttemptView(
            1,
            AttemptState.SUCCEEDED,
            pid=11,
            log_path="/logs/a.1.log",
            exit_code=0,
            started_at="2024-01-01T00:00:02.000000Z",
            ended_at="2024-01-01T00:00:03.000000Z",
        )
    ]


def test_counts_while_running() -> None:
    """A started step moves from pending to running in the counts."""
    ev = _Events()
    view = _fold([ev.run_started(_info("a"), _info("b"), _info("c")), ev.attempt_started("b", 1)])
    assert view.steps["b"].state is StepState.RUNNING
    assert view.counts[StepState.PENDING] == 2
    assert view.counts[StepState.RUNNING] == 1
    assert view.finished == 0


def test_retry_then_success() -> None:
    """A failed attempt, a scheduled retry and a successful second attempt are all recorded."""
    ev = _Events()
    events: list[Event] = [
        ev.run_started(_info("a", retries=2)),
        ev.attempt_started("a", 1, pid=11),
        ev.attempt_finished("a", 1, AttemptState.FAILED, 3),
        ev.retry("a", 2, 1.5),
    ]
    view = _fold(events)
    step = view.steps["a"]
    assert step.state is StepState.RUNNING
    assert step.retry_in == 1.5
    assert step.exit_code == 3
    assert view.counts == Counter({StepState.RUNNING: 1})

    apply(view, ev.attempt_started("a", 2, pid=12))
    assert view.steps["a"].retry_in is None  # re-read: mypy narrowed ``step.retry_in``
    assert view.steps["a"].started_at == "2024-01-01T00:00:02.000000Z"
    apply(view, ev.attempt_finished("a", 2, AttemptState.SUCCEEDED, 0))
    apply(view, ev.step_finished("a", StepState.SUCCEEDED, 2, 0))
    assert [(t.number, t.state, t.exit_code, t.pid) for t in step.attempts] == [
        (1, AttemptState.FAILED, 3, 11),
        (2, AttemptState.SUCCEEDED, 0, 12),
    ]
    assert view.steps["a"].state is StepState.SUCCEEDED
    assert view.steps["a"].exit_code == 0
    assert view.counts == Counter({StepState.SUCCEEDED: 1})


def test_spawn_error_recorded_on_attempt() -> None:
    """An attempt that could not start keeps its error text and no exit code."""
    ev = _Events()
    view = _fold(
        [
            ev.run_started(_info("a")),
            ev.attempt_started("a", 1, pid=None),
            ev.attempt_finished("a", 1, AttemptState.FAILED, None, error="no such file: nope"),
            ev.step_finished("a", StepState.FAILED, 1, None),
        ]
    )
    (attempt,) = view.steps["a"].attempts
    assert attempt.pid is None
    assert attempt.error == "no such file: nope"
    assert attempt.exit_code is None
    assert view.steps["a"].state is StepState.FAILED


def test_attempt_finished_for_other_attempt_leaves_attempts_alone() -> None:
    """An AttemptFinished whose number is not the last attempt's does not rewrite it."""
    ev = _Events()
    view = _fold(
        [
            ev.run_started(_info("a", retries=1)),
            ev.attempt_started("a", 2),
            ev.attempt_finished("a", 1, AttemptState.FAILED, 9),
        ]
    )
    (attempt,) = view.steps["a"].attempts
    assert attempt.number == 2
    assert attempt.state is AttemptState.RUNNING
    assert attempt.exit_code is None
    assert view.steps["a"].exit_code == 9


def test_failure_abort_skip_and_cleanup() -> None:
    """A failing critical step aborts the run: reasons, counts and final state are recorded."""
    ev = _Events()
    view = _fold(
        [
            ev.run_started(
                _info("build"), _info("slow"), _info("test"), _info("cleanup"), _info("opt")
            ),
            ev.attempt_started("build", 1),
            ev.attempt_started("slow", 1),
            ev.attempt_finished("build", 1, AttemptState.TIMED_OUT, -15),
            ev.step_finished("build", StepState.TIMED_OUT, 1, -15),
            ev.aborting("step 'build' timed_out", "build"),
            ev.attempt_finished("slow", 1, AttemptState.CANCELLED, -15),
            ev.step_finished("slow", StepState.CANCELLED, 1, -15, "run aborted"),
            ev.step_finished("test", StepState.SKIPPED, 0, None, "dependency 'build' timed_out"),
            ev.attempt_started("cleanup", 1),
            ev.attempt_finished("cleanup", 1, AttemptState.SUCCEEDED, 0),
            ev.step_finished("cleanup", StepState.SUCCEEDED, 1, 0),
            ev.step_finished("opt", StepState.CANCELLED, 0, None, "run aborted"),
            ev.run_finished(RunState.FAILED, 1, "step 'build' timed_out"),
        ]
    )
    assert view.aborting == "step 'build' timed_out"
    assert view.state is RunState.FAILED
    assert view.exit_code == 1
    assert view.reason == "step 'build' timed_out"
    assert view.counts == Counter(
        {
            StepState.TIMED_OUT: 1,
            StepState.CANCELLED: 2,
            StepState.SKIPPED: 1,
            StepState.SUCCEEDED: 1,
        }
    )
    assert view.finished == 5
    assert {sid: s.state for sid, s in view.steps.items()} == {
        "build": StepState.TIMED_OUT,
        "slow": StepState.CANCELLED,
        "test": StepState.SKIPPED,
        "cleanup": StepState.SUCCEEDED,
        "opt": StepState.CANCELLED,
    }
    assert view.steps["test"].reason == "dependency 'build' timed_out"
    assert view.steps["test"].attempts == []
    assert view.steps["test"].started_at is None
    assert view.steps["slow"].reason == "run aborted"
    assert view.steps["slow"].attempts[0].state is AttemptState.CANCELLED
    assert view.steps["build"].exit_code == -15


def test_cancelled_run() -> None:
    """A run cancelled before any step started ends cancelled with every step cancelled."""
    ev = _Events()
    view = _fold(
        [
            ev.run_started(_info("a"), _info("b")),
            ev.aborting("cancelled by user"),
            ev.step_finished("a", StepState.CANCELLED, 0, None, "cancelled by user"),
            ev.step_finished("b", StepState.CANCELLED, 0, None, "cancelled by user"),
            ev.run_finished(RunState.CANCELLED, 130, "cancelled by user"),
        ]
    )
    assert view.state is RunState.CANCELLED
    assert view.exit_code == 130
    assert view.counts == Counter({StepState.CANCELLED: 2})
    assert view.counts[StepState.PENDING] == 0
    assert view.finished == 2


def test_events_survive_an_encode_decode_round_trip() -> None:
    """Folding decoded events gives the same view as folding the originals."""
    ev = _Events()
    events: list[Event] = [
        ev.run_started(_info("a", retries=1)),
        ev.attempt_started("a", 1),
        ev.attempt_finished("a", 1, AttemptState.FAILED, 2),
        ev.retry("a", 2, 0.25),
        ev.attempt_started("a", 2),
        ev.attempt_finished("a", 2, AttemptState.FAILED, 2),
        ev.step_finished("a", StepState.FAILED, 2, 2),
        ev.run_finished(RunState.FAILED, 1, "step 'a' failed"),
    ]
    decoded = [decode_event(encode_event(e)) for e in events]
    assert decoded == events
    assert _fold(decoded) == _fold(events)
    assert _fold(events).steps["a"].attempts[1].state is AttemptState.FAILED


def test_concurrency_capped_is_kept_in_the_view() -> None:
    """concurrency_capped records the effective and the requested concurrency."""
    ev = _Events()
    view = apply(None, ev.run_started(_info("a")))
    seq, ts = ev._next()
    capped = ConcurrencyCapped(run_id=RUN, seq=seq, ts=ts, requested=100, effective=12, fd_limit=64)
    apply(view, capped)
    assert (view.max_concurrency, view.requested_concurrency) == (12, 100)
    assert decode_event(encode_event(capped)) == capped


def test_the_executor_round_trips_and_old_events_decode_without_it() -> None:
    """``executor`` is encoded when set and kept on the view (a resume's replaces the
    start's); a run-begin event written before the field existed decodes with None,
    and one without an executor encodes exactly as before (no ``executor`` key)."""
    ev = _Events()
    started = msgspec.structs.replace(ev.run_started(_info("a")), executor="local")
    body = encode_event(started)
    assert b'"executor":"local"' in body
    assert decode_event(body) == started
    assert apply(None, decode_event(body)).executor == "local"
    seq, ts = ev._next()
    resumed = RunResumed(
        run_id=RUN,
        seq=seq,
        ts=ts,
        plan_id="plan-x",
        plan_path=None,
        variables={},
        max_concurrency=1,
        steps=[_info("a")],
        pid=2,
        rerun=["a"],
        kept={},
        executor="remote",
    )
    view = _fold([started, decode_event(encode_event(resumed))])
    assert view.executor == "remote"

    old = (
        b'{"type":"run_started","plan_id":"p","plan_path":null,"variables":{},'
        b'"max_concurrency":1,"steps":[],"pid":1,"run_id":"r","seq":1,"ts":"t"}'
    )
    decoded = decode_event(old)
    assert isinstance(decoded, RunStarted)
    assert decoded.executor is None
    assert apply(None, decoded).executor is None
    assert encode_event(decoded) == old
