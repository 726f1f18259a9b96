"""Retry and trigger-rule decisions as pure functions. The engine only carries them out.

Every function here takes plain data and returns a decision object; nothing sleeps,
spawns or reads a clock, so each is tested with tables.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import msgspec

from .model import MAX_SECONDS, AttemptState, OnFailure, Step, StepState, When

__all__ = [
    "CLEANUP_RULES",
    "Blocked",
    "DepOutcome",
    "Ready",
    "Retry",
    "Skip",
    "Wait",
    "attempt_state",
    "decisive",
    "dep_outcome",
    "retry_decision",
    "retry_delay",
    "skip_reason",
    "trigger",
]


# --- attempts and retries -----------------------------------------------------------


def attempt_state(step: Step, exit_code: int | None, *, timed_out: bool) -> AttemptState:
    """Judge one finished attempt: ``success_exit_codes`` decide success, and
    ``skip_exit_codes`` "nothing to do" (``skipped``: not a failure, never retried).
    A timeout wins over either (the process was stopped, its code means nothing)."""
    if timed_out:
        return AttemptState.TIMED_OUT
    if exit_code is not None and exit_code in step.success_exit_codes:
        return AttemptState.SUCCEEDED
    if exit_code is not None and exit_code in step.skip_exit_codes:
        return AttemptState.SKIPPED
    return AttemptState.FAILED


def skip_reason(exit_code: int | None) -> str:
    """The reason recorded for a step that ended ``skipped`` by its exit code."""
    return f"exit code {exit_code} means skip (skip_exit_codes)"


class Retry(msgspec.Struct, frozen=True):
    """Start attempt ``attempt`` after ``delay`` seconds."""

    attempt: int
    delay: float


def retry_delay(step: Step, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Delay before attempt ``attempt + 1`` after attempt ``attempt`` (1-based) ended.

    ``retry_delay_sec * retry_backoff ** (attempt - 1)``, at most ``MAX_SECONDS``, capped by
    ``retry_max_delay_sec``, then spread by ``retry_jitter`` (a factor drawn uniformly
    from ``[1 - jitter, 1 + jitter]``) and capped again.
    """
    cap = step.retry_max_delay_sec
    # Bounded growth: backoff ** attempts overflows a float long before the documented
    # maximum retries (100.0 ** 999), and no delay may exceed MAX_SECONDS anyway.
    try:
        delay = step.retry_delay_sec * step.retry_backoff ** (attempt - 1)
    except OverflowError:
        delay = MAX_SECONDS if step.retry_delay_sec else 0.0
    delay = min(delay, MAX_SECONDS)
    if cap is not None:
        delay = min(delay, cap)
    if step.retry_jitter:
        delay *= 1 - step.retry_jitter + 2 * step.retry_jitter * rand()
        if cap is not None:
            delay = min(delay, cap)
    return max(delay, 0.0)


def retry_decision(
    step: Step,
    attempt: int,
    state: AttemptState,
    exit_code: int | None,
    rand: Callable[[], float] = random.random,
    lost: bool = False,
) -> Retry | None:
    """Whether attempt ``attempt`` (1-based), which ended in ``state``, is retried.

    Retries happen while fewer than ``1 + retries`` attempts ran, for timeouts unless
    ``retry_on_timeout`` is false, and for exit codes in ``retry_on_exit_codes``
    (any code when it is unset). An attempt that never started (``exit_code`` None and
    not a timeout, e.g. the program does not exist) is not retried: it would fail the
    same way again. A ``lost`` attempt (its worker died: its end was not seen) is
    retried while retries remain, whatever its exit codes: it did not fail by itself.
    """
    done = (AttemptState.SUCCEEDED, AttemptState.SKIPPED, AttemptState.CANCELLED)
    if state in done or attempt > step.retries:
        return None
    if state is AttemptState.TIMED_OUT:
        if not step.retry_on_timeout:
            return None
    elif lost:
        pass
    elif exit_code is None or (
        step.retry_on_exit_codes is not None and exit_code not in step.retry_on_exit_codes
    ):
        return None
    return Retry(attempt + 1, retry_delay(step, attempt, rand))


# --- trigger rules ------------------------------------------------------------------


class DepOutcome(msgspec.Struct, frozen=True, gc=False):
    """A finished dependency as its dependents see it.

    ``state`` is the *effective* state: a failure under ``on_failure: continue`` is
    seen as succeeded. ``root`` names the step whose failure caused a skip chain.
    """

    step_id: str
    state: StepState
    root: str | None = None


def dep_outcome(step: Step, state: StepState, root: str | None = None) -> DepOutcome:
    """The outcome dependents of ``step`` see when it ended in ``state``."""
    if state.failed and step.on_failure is OnFailure.CONTINUE:
        return DepOutcome(step.id, StepState.SUCCEEDED)
    if state.failed:
        return DepOutcome(step.id, state, root=step.id)
    return DepOutcome(step.id, state, root=root)


class Ready(msgspec.Struct, frozen=True):
    """The step may start now."""


class Wait(msgspec.Struct, frozen=True):
    """Some dependency is still pending or running; decide later."""


class Skip(msgspec.Struct, frozen=True):
    """The rule can no longer hold: the step ends ``skipped`` with ``reason``.

    ``root`` names the failed step at the start of the skip chain, if any.
    """

    reason: str
    root: str | None = None


class Blocked(msgspec.Struct, frozen=True):
    """The run is aborting and this step's rule does not run during an abort."""


Decision = Ready | Wait | Skip | Blocked


def _describe(dep: DepOutcome) -> str:
    text = f"dependency '{dep.step_id}' {dep.state.value}"
    if dep.root is not None and dep.root != dep.step_id:
        text += f" (because '{dep.root}' failed)"
    return text


#: The rules of cleanup and rollback steps: an abort still lets them run.
CLEANUP_RULES = frozenset({When.ALL_DONE, When.ONE_FAILED, When.ALL_FAILED})

_NOT_BAD = (StepState.SUCCEEDED, StepState.SKIPPED)


def _first_root(deps: Sequence[DepOutcome]) -> str | None:
    """The failed step at the start of the first skip chain among ``deps``, if any."""
    return next((d.root for d in deps if d.root is not None), None)


def _skip_unless_succeeded(when: When, finished: Sequence[DepOutcome]) -> Skip | None:
    """For the rules that need a success: skip when none of ``finished`` succeeded."""
    if any(d.state is StepState.SUCCEEDED for d in finished):
        return None
    return Skip(f"no dependency succeeded (when: {when.value})", _first_root(finished))


def decisive(when: When, dep: DepOutcome) -> bool:
    """Whether one dependency ending as ``dep`` can decide rule ``when`` while other
    dependencies are still unfinished.

    The contract the engine relies on (tests/unit/test_policy.py checks it): if
    :func:`trigger` gave :class:`Wait` and one more dependency ends, not the last one, with
    an outcome that is not decisive, :func:`trigger` (not aborting) still gives
    :class:`Wait`. So a dependent is looked at again only when its last dependency ends
    or a decisive one does: O(edges) work for a run, not O(edges x in-degree).
    """
    state = dep.state
    if when is When.ALL_SUCCESS:
        return state is not StepState.SUCCEEDED
    if when in (When.NONE_FAILED, When.NONE_FAILED_MIN_ONE_SUCCESS):
        return state not in _NOT_BAD
    if when is When.ALL_FAILED:
        return not state.failed
    if when is When.ONE_SUCCESS:
        return state is StepState.SUCCEEDED
    return False  # all_done, one_failed: only once every dependency ended


def trigger(when: When, deps: Sequence[DepOutcome | None], *, aborting: bool) -> Decision:
    """Apply a trigger rule to a step's dependencies (``None`` = not finished yet).

    - ``all_success``: all succeeded; skipped as soon as one did not.
    - ``none_failed``: all finished and none failed, timed out or was cancelled
      (skipped is fine); skipped as soon as one did.
    - ``all_done``: all finished, in any state.
    - ``one_failed``: all finished and at least one failed or timed out; waiting for
      every dependency keeps a rollback step from racing steps still running.
    - ``one_success``: ready as soon as one succeeded (the others may still run);
      skipped when all finished and none succeeded.
    - ``none_failed_min_one_success``: as ``none_failed``, and at least one succeeded
      (skipped when all were skipped).
    - ``all_failed``: all finished and every one failed or timed out; skipped as soon
      as one ended otherwise.

    "Succeeded" and "failed" are the effective states (:func:`dep_outcome`: a failure
    under ``on_failure: continue`` counts as a success). A rule that needs a failure
    or a success is skipped when the step has no dependencies at all.

    While the run is aborting only the cleanup rules (``all_done``, ``one_failed``,
    ``all_failed``: :data:`CLEANUP_RULES`) may still run; the others are
    :class:`Blocked` and end cancelled.
    """
    if aborting and when not in CLEANUP_RULES:
        return Blocked()
    finished = [d for d in deps if d is not None]
    all_finished = len(finished) == len(deps)
    bad: DepOutcome | None = None
    if when is When.ALL_SUCCESS:
        bad = next((d for d in finished if d.state is not StepState.SUCCEEDED), None)
    elif when in (When.NONE_FAILED, When.NONE_FAILED_MIN_ONE_SUCCESS):
        bad = next((d for d in finished if d.state not in _NOT_BAD), None)
    elif when is When.ALL_FAILED:
        bad = next((d for d in finished if not d.state.failed), None)
        if bad is not None:
            return Skip(f"{_describe(bad)}, not failed (when: all_failed)", bad.root)
    if bad is not None:
        return Skip(_describe(bad), bad.root)
    if when is When.ONE_SUCCESS and any(d.state is StepState.SUCCEEDED for d in finished):
        return Ready()
    if not all_finished:
        return Wait()
    if when in (When.ONE_FAILED, When.ALL_FAILED) and not any(d.state.failed for d in finished):
        return Skip(f"no dependency failed (when: {when.value})")
    if when in (When.ONE_SUCCESS, When.NONE_FAILED_MIN_ONE_SUCCESS):
        return _skip_unless_succeeded(when, finished) or Ready()
    return Ready()
