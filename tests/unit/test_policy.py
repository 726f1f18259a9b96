"""Retry and trigger-rule decisions, table-driven: one row per case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from planrun.model import AttemptState, OnFailure, Step, StepState, When
from planrun.policy import (
    Blocked,
    Decision,
    DepOutcome,
    Ready,
    Retry,
    Skip,
    Wait,
    attempt_state,
    decisive,
    dep_outcome,
    retry_decision,
    retry_delay,
    skip_reason,
    trigger,
)


def _step(**fields: Any) -> Step:
    """A step ``a`` running ``true`` with ``fields`` overridden."""
    return Step(id="a", command="true", **fields)


def _const(value: float) -> Callable[[], float]:
    """A rand function that always returns ``value``."""
    return lambda: value


def _no_rand() -> float:
    """A rand function that must not be called."""
    raise AssertionError("rand() called without jitter")


# --- attempt_state -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("success_codes", "exit_code", "timed_out", "expected"),
    [
        pytest.param([0], 0, False, AttemptState.SUCCEEDED, id="zero-succeeds"),
        pytest.param([0], 1, False, AttemptState.FAILED, id="one-fails"),
        pytest.param([0], -9, False, AttemptState.FAILED, id="signal-fails"),
        pytest.param([0], None, False, AttemptState.FAILED, id="never-started-fails"),
        pytest.param([0], 0, True, AttemptState.TIMED_OUT, id="timeout-wins-over-zero"),
        pytest.param([0], None, True, AttemptState.TIMED_OUT, id="timeout-without-code"),
        pytest.param([0, 3], 3, False, AttemptState.SUCCEEDED, id="extra-success-code"),
        pytest.param([1], 0, False, AttemptState.FAILED, id="zero-not-in-success-codes"),
        pytest.param([1], 1, False, AttemptState.SUCCEEDED, id="only-one-succeeds"),
    ],
)
def test_attempt_state(
    success_codes: list[int], exit_code: int | None, timed_out: bool, expected: AttemptState
) -> None:
    """An attempt succeeds only with a success exit code and no timeout."""
    step = _step(success_exit_codes=success_codes)
    assert attempt_state(step, exit_code, timed_out=timed_out) is expected


@pytest.mark.parametrize(
    ("skip_codes", "exit_code", "timed_out", "expected"),
    [
        pytest.param([3], 3, False, AttemptState.SKIPPED, id="listed-code-skips"),
        pytest.param([3, 4], 4, False, AttemptState.SKIPPED, id="second-listed-code-skips"),
        pytest.param([3], 1, False, AttemptState.FAILED, id="other-code-fails"),
        pytest.param([3], 0, False, AttemptState.SUCCEEDED, id="success-still-succeeds"),
        pytest.param([3], 3, True, AttemptState.TIMED_OUT, id="timeout-wins-over-skip"),
        pytest.param([3], None, False, AttemptState.FAILED, id="never-started-fails"),
        pytest.param([3], -3, False, AttemptState.FAILED, id="signal-3-is-not-code-3"),
        pytest.param([], 3, False, AttemptState.FAILED, id="no-skip-codes"),
    ],
)
def test_attempt_state_skip_exit_codes(
    skip_codes: list[int], exit_code: int | None, timed_out: bool, expected: AttemptState
) -> None:
    """An exit code in ``skip_exit_codes`` ends the attempt skipped, unless it timed out."""
    step = _step(skip_exit_codes=skip_codes)
    assert attempt_state(step, exit_code, timed_out=timed_out) is expected


def test_skip_reason_names_the_code_and_the_field() -> None:
    """The reason of a skip by exit code says which code and why."""
    assert skip_reason(3) == "exit code 3 means skip (skip_exit_codes)"


# --- retry_delay ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "attempt", "rand", "expected"),
    [
        pytest.param({}, 1, _no_rand, 0.0, id="no-delay"),
        pytest.param({"retry_delay_sec": 2.0}, 1, _no_rand, 2.0, id="base"),
        pytest.param({"retry_delay_sec": 2.0}, 5, _no_rand, 2.0, id="base-no-backoff"),
        pytest.param({"retry_delay_sec": 1.0, "retry_backoff": 2.0}, 1, _no_rand, 1.0, id="bo-1"),
        pytest.param({"retry_delay_sec": 1.0, "retry_backoff": 2.0}, 2, _no_rand, 2.0, id="bo-2"),
        pytest.param({"retry_delay_sec": 1.0, "retry_backoff": 2.0}, 4, _no_rand, 8.0, id="bo-4"),
        pytest.param(
            {"retry_delay_sec": 0.5, "retry_backoff": 3.0}, 3, _no_rand, 4.5, id="backoff-three"
        ),
        pytest.param(
            {"retry_delay_sec": 1.0, "retry_backoff": 2.0, "retry_max_delay_sec": 5.0},
            3,
            _no_rand,
            4.0,
            id="below-cap",
        ),
        pytest.param(
            {"retry_delay_sec": 1.0, "retry_backoff": 2.0, "retry_max_delay_sec": 5.0},
            4,
            _no_rand,
            5.0,
            id="capped",
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_max_delay_sec": 0.0}, 1, _no_rand, 0.0, id="cap-zero"
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 0.5}, 1, _const(0.0), 5.0, id="jitter-low"
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 0.5}, 1, _const(0.5), 10.0, id="jitter-mid"
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 0.5}, 1, _const(1.0), 15.0, id="jitter-high"
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 1.0}, 1, _const(0.0), 0.0, id="jitter-full"
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 0.5, "retry_max_delay_sec": 12.0},
            1,
            _const(1.0),
            12.0,
            id="jitter-capped-again",
        ),
        pytest.param(
            {"retry_delay_sec": 10.0, "retry_jitter": 0.5, "retry_max_delay_sec": 8.0},
            1,
            _const(0.0),
            4.0,
            id="cap-then-jitter-down",
        ),
        pytest.param(
            {"retry_delay_sec": 1.0, "retry_backoff": 2.0, "retry_jitter": 0.25},
            3,
            _const(1.0),
            5.0,
            id="backoff-then-jitter",
        ),
    ],
)
def test_retry_delay(
    fields: dict[str, float], attempt: int, rand: Callable[[], float], expected: float
) -> None:
    """The delay is base * backoff^(attempt-1), capped, jittered by rand, and capped again."""
    assert retry_delay(_step(**fields), attempt, rand) == pytest.approx(expected)


# --- retry_decision ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "attempt", "state", "exit_code", "expected"),
    [
        pytest.param({}, 1, AttemptState.FAILED, 1, None, id="no-retries"),
        pytest.param({"retries": 2}, 1, AttemptState.FAILED, 1, Retry(2, 0.0), id="first-retry"),
        pytest.param({"retries": 2}, 2, AttemptState.FAILED, 1, Retry(3, 0.0), id="last-retry"),
        pytest.param({"retries": 2}, 3, AttemptState.FAILED, 1, None, id="retries-exhausted"),
        pytest.param({"retries": 2}, 1, AttemptState.SUCCEEDED, 0, None, id="succeeded"),
        pytest.param({"retries": 2}, 1, AttemptState.SKIPPED, 3, None, id="skipped-not-retried"),
        pytest.param(
            {"retries": 2, "retry_on_exit_codes": [3]},
            1,
            AttemptState.SKIPPED,
            3,
            None,
            id="skipped-not-retried-even-if-listed",
        ),
        pytest.param({"retries": 2}, 1, AttemptState.CANCELLED, None, None, id="cancelled"),
        pytest.param({"retries": 2}, 1, AttemptState.CANCELLED, -15, None, id="cancelled-code"),
        pytest.param({"retries": 2}, 1, AttemptState.FAILED, None, None, id="spawn-error"),
        pytest.param({"retries": 2}, 1, AttemptState.FAILED, -9, Retry(2, 0.0), id="signal"),
        pytest.param(
            {"retries": 2, "retry_on_exit_codes": [75]},
            1,
            AttemptState.FAILED,
            75,
            Retry(2, 0.0),
            id="exit-code-listed",
        ),
        pytest.param(
            {"retries": 2, "retry_on_exit_codes": [75]},
            1,
            AttemptState.FAILED,
            1,
            None,
            id="exit-code-not-listed",
        ),
        pytest.param(
            {"retries": 2, "retry_on_exit_codes": []},
            1,
            AttemptState.FAILED,
            1,
            None,
            id="exit-code-list-empty",
        ),
        pytest.param(
            {"retries": 1}, 1, AttemptState.TIMED_OUT, None, Retry(2, 0.0), id="timeout-retried"
        ),
        pytest.param(
            {"retries": 1, "retry_on_timeout": False},
            1,
            AttemptState.TIMED_OUT,
            None,
            None,
            id="timeout-not-retried",
        ),
        pytest.param(
            {"retries": 1, "retry_on_exit_codes": [75]},
            1,
            AttemptState.TIMED_OUT,
            -9,
            Retry(2, 0.0),
            id="timeout-ignores-exit-code-filter",
        ),
        pytest.param(
            {"retries": 1, "retry_on_timeout": False},
            1,
            AttemptState.FAILED,
            1,
            Retry(2, 0.0),
            id="failure-retried-when-timeouts-are-not",
        ),
        pytest.param(
            {"retries": 3, "retry_delay_sec": 1.0, "retry_backoff": 2.0},
            3,
            AttemptState.FAILED,
            1,
            Retry(4, 4.0),
            id="delay-from-backoff",
        ),
        pytest.param(
            {"retries": 3, "retry_delay_sec": 4.0, "retry_jitter": 0.5},
            1,
            AttemptState.FAILED,
            1,
            Retry(2, 5.0),
            id="delay-with-jitter",
        ),
    ],
)
def test_retry_decision(
    fields: dict[str, Any],
    attempt: int,
    state: AttemptState,
    exit_code: int | None,
    expected: Retry | None,
) -> None:
    """A failed attempt is retried within the budget, subject to the exit-code and timeout rules."""
    step = _step(**fields)
    assert retry_decision(step, attempt, state, exit_code, _const(0.75)) == expected


@pytest.mark.parametrize(
    ("fields", "attempt", "expected"),
    [
        pytest.param({"retries": 1}, 1, Retry(2, 0.0), id="lost-retried"),
        pytest.param(
            {"retries": 1, "retry_on_exit_codes": [75]}, 1, Retry(2, 0.0), id="lost-ignores-codes"
        ),
        pytest.param({"retries": 1}, 2, None, id="lost-budget-spent"),
        pytest.param({"retries": 0}, 1, None, id="lost-no-retries"),
    ],
)
def test_retry_decision_lost(fields: dict[str, Any], attempt: int, expected: Retry | None) -> None:
    """An attempt lost with its worker (no exit code) is retried while retries remain,
    unlike one that never started."""
    step = _step(**fields)
    assert retry_decision(step, attempt, AttemptState.FAILED, None, _const(0.75), lost=True) == (
        expected
    )
    assert retry_decision(step, attempt, AttemptState.FAILED, None, _const(0.75)) is None


# --- dep_outcome ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_failure", "state", "root", "expected"),
    [
        pytest.param(
            OnFailure.ABORT,
            StepState.SUCCEEDED,
            None,
            DepOutcome("a", StepState.SUCCEEDED),
            id="succeeded",
        ),
        pytest.param(
            OnFailure.ABORT,
            StepState.FAILED,
            None,
            DepOutcome("a", StepState.FAILED, "a"),
            id="failed-is-its-own-root",
        ),
        pytest.param(
            OnFailure.SKIP_DEPENDENTS,
            StepState.FAILED,
            "other",
            DepOutcome("a", StepState.FAILED, "a"),
            id="failed-root-overrides-given",
        ),
        pytest.param(
            OnFailure.ABORT,
            StepState.TIMED_OUT,
            None,
            DepOutcome("a", StepState.TIMED_OUT, "a"),
            id="timed-out-is-its-own-root",
        ),
        pytest.param(
            OnFailure.CONTINUE,
            StepState.FAILED,
            None,
            DepOutcome("a", StepState.SUCCEEDED),
            id="continue-failed-seen-succeeded",
        ),
        pytest.param(
            OnFailure.CONTINUE,
            StepState.TIMED_OUT,
            None,
            DepOutcome("a", StepState.SUCCEEDED),
            id="continue-timed-out-seen-succeeded",
        ),
        pytest.param(
            OnFailure.CONTINUE,
            StepState.SUCCEEDED,
            None,
            DepOutcome("a", StepState.SUCCEEDED),
            id="continue-succeeded",
        ),
        pytest.param(
            OnFailure.ABORT,
            StepState.SKIPPED,
            "root",
            DepOutcome("a", StepState.SKIPPED, "root"),
            id="skipped-keeps-root",
        ),
        pytest.param(
            OnFailure.CONTINUE,
            StepState.SKIPPED,
            "root",
            DepOutcome("a", StepState.SKIPPED, "root"),
            id="continue-skipped-stays-skipped",
        ),
        pytest.param(
            OnFailure.ABORT,
            StepState.CANCELLED,
            None,
            DepOutcome("a", StepState.CANCELLED),
            id="cancelled-no-root",
        ),
    ],
)
def test_dep_outcome(
    on_failure: OnFailure, state: StepState, root: str | None, expected: DepOutcome
) -> None:
    """Dependents see a failure under ``continue`` as success and a failure as its own root."""
    assert dep_outcome(_step(on_failure=on_failure), state, root) == expected


# --- trigger -------------------------------------------------------------------------

S, F, T, K, C = (
    StepState.SUCCEEDED,
    StepState.FAILED,
    StepState.TIMED_OUT,
    StepState.SKIPPED,
    StepState.CANCELLED,
)
NOT_FAILED = "no dependency failed (when: one_failed)"
NONE_OK_1 = "no dependency succeeded (when: one_success)"
NONE_OK_N = "no dependency succeeded (when: none_failed_min_one_success)"
NOT_ALL_FAILED = "no dependency failed (when: all_failed)"


def _d(step_id: str, state: StepState, root: str | None = None) -> DepOutcome:
    """A finished dependency."""
    return DepOutcome(step_id, state, root)


TRIGGER = [
    # all_success
    pytest.param(When.ALL_SUCCESS, [], False, Ready(), id="all_success-no-deps"),
    pytest.param(When.ALL_SUCCESS, [_d("b", S), _d("c", S)], False, Ready(), id="all_success-ok"),
    pytest.param(When.ALL_SUCCESS, [_d("b", S), None], False, Wait(), id="all_success-pending"),
    pytest.param(
        When.ALL_SUCCESS,
        [_d("b", F, "b")],
        False,
        Skip("dependency 'b' failed", "b"),
        id="all_success-failed",
    ),
    pytest.param(
        When.ALL_SUCCESS,
        [_d("b", T, "b")],
        False,
        Skip("dependency 'b' timed_out", "b"),
        id="all_success-timed-out",
    ),
    pytest.param(
        When.ALL_SUCCESS,
        [None, _d("c", K, "a")],
        False,
        Skip("dependency 'c' skipped (because 'a' failed)", "a"),
        id="all_success-skipped-chain-early",
    ),
    pytest.param(
        When.ALL_SUCCESS,
        [_d("c", C)],
        False,
        Skip("dependency 'c' cancelled"),
        id="all_success-cancelled",
    ),
    pytest.param(
        When.ALL_SUCCESS,
        [_d("b", S), _d("c", F, "c"), _d("d", K, "x")],
        False,
        Skip("dependency 'c' failed", "c"),
        id="all_success-first-bad-reported",
    ),
    pytest.param(When.ALL_SUCCESS, [_d("b", S)], True, Blocked(), id="all_success-aborting"),
    pytest.param(When.ALL_SUCCESS, [None], True, Blocked(), id="all_success-aborting-pending"),
    # none_failed
    pytest.param(When.NONE_FAILED, [], False, Ready(), id="none_failed-no-deps"),
    pytest.param(
        When.NONE_FAILED, [_d("b", S), _d("c", K, "x")], False, Ready(), id="none_failed-skip-ok"
    ),
    pytest.param(When.NONE_FAILED, [_d("b", K), None], False, Wait(), id="none_failed-pending"),
    pytest.param(
        When.NONE_FAILED,
        [_d("b", F, "b")],
        False,
        Skip("dependency 'b' failed", "b"),
        id="none_failed-failed",
    ),
    pytest.param(
        When.NONE_FAILED,
        [_d("b", T, "b"), None],
        False,
        Skip("dependency 'b' timed_out", "b"),
        id="none_failed-timed-out-early",
    ),
    pytest.param(
        When.NONE_FAILED,
        [_d("b", C)],
        False,
        Skip("dependency 'b' cancelled"),
        id="none_failed-cancelled",
    ),
    pytest.param(When.NONE_FAILED, [_d("b", S)], True, Blocked(), id="none_failed-aborting"),
    # all_done
    pytest.param(When.ALL_DONE, [], False, Ready(), id="all_done-no-deps"),
    pytest.param(
        When.ALL_DONE,
        [_d("b", F, "b"), _d("c", K), _d("d", C), _d("e", T, "e")],
        False,
        Ready(),
        id="all_done-any-states",
    ),
    pytest.param(When.ALL_DONE, [_d("b", F, "b"), None], False, Wait(), id="all_done-pending"),
    pytest.param(When.ALL_DONE, [_d("b", F, "b")], True, Ready(), id="all_done-aborting"),
    pytest.param(When.ALL_DONE, [None], True, Wait(), id="all_done-aborting-pending"),
    # one_failed
    pytest.param(
        When.ONE_FAILED, [_d("b", S), _d("c", F, "c")], False, Ready(), id="one_failed-failed"
    ),
    pytest.param(When.ONE_FAILED, [_d("b", T, "b")], False, Ready(), id="one_failed-timed-out"),
    pytest.param(
        When.ONE_FAILED, [_d("b", F, "b"), None], False, Wait(), id="one_failed-waits-for-all"
    ),
    pytest.param(
        When.ONE_FAILED, [_d("b", S), _d("c", S)], False, Skip(NOT_FAILED), id="one_failed-none"
    ),
    pytest.param(
        When.ONE_FAILED,
        [_d("b", K, "x"), _d("c", C)],
        False,
        Skip(NOT_FAILED),
        id="one_failed-skip-cancel-not-failures",
    ),
    pytest.param(When.ONE_FAILED, [], False, Skip(NOT_FAILED), id="one_failed-no-deps"),
    pytest.param(
        When.ONE_FAILED,
        [_d("b", F, "b"), _d("c", S)],
        True,
        Ready(),
        id="one_failed-aborting",
    ),
    pytest.param(
        When.ONE_FAILED, [_d("b", S)], True, Skip(NOT_FAILED), id="one_failed-aborting-none"
    ),
    pytest.param(When.ONE_FAILED, [None], True, Wait(), id="one_failed-aborting-pending"),
    # one_success: ready at the first success, even with others still running
    pytest.param(When.ONE_SUCCESS, [_d("b", S)], False, Ready(), id="one_success-ok"),
    pytest.param(
        When.ONE_SUCCESS, [None, _d("c", S), None], False, Ready(), id="one_success-first-success"
    ),
    pytest.param(
        When.ONE_SUCCESS,
        [_d("b", F, "b"), _d("c", S)],
        False,
        Ready(),
        id="one_success-despite-failure",
    ),
    pytest.param(
        When.ONE_SUCCESS, [_d("b", F, "b"), None], False, Wait(), id="one_success-failed-waits"
    ),
    pytest.param(When.ONE_SUCCESS, [None, None], False, Wait(), id="one_success-all-pending"),
    pytest.param(
        When.ONE_SUCCESS,
        [_d("b", F, "b"), _d("c", K, "x"), _d("d", C)],
        False,
        Skip(NONE_OK_1, "b"),
        id="one_success-none-succeeded",
    ),
    pytest.param(
        When.ONE_SUCCESS, [_d("b", K, "x")], False, Skip(NONE_OK_1, "x"), id="one_success-skip"
    ),
    pytest.param(When.ONE_SUCCESS, [_d("b", C)], False, Skip(NONE_OK_1), id="one_success-cancel"),
    pytest.param(When.ONE_SUCCESS, [], False, Skip(NONE_OK_1), id="one_success-no-deps"),
    pytest.param(When.ONE_SUCCESS, [_d("b", S)], True, Blocked(), id="one_success-aborting"),
    # none_failed_min_one_success
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS,
        [_d("b", S), _d("c", K, "x")],
        False,
        Ready(),
        id="nfmos-success-and-skip",
    ),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS, [_d("b", S), None], False, Wait(), id="nfmos-pending"
    ),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS,
        [_d("b", K, "x"), _d("c", K)],
        False,
        Skip(NONE_OK_N, "x"),
        id="nfmos-all-skipped",
    ),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS,
        [_d("b", F, "b"), None],
        False,
        Skip("dependency 'b' failed", "b"),
        id="nfmos-failed-early",
    ),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS,
        [_d("b", S), _d("c", T, "c")],
        False,
        Skip("dependency 'c' timed_out", "c"),
        id="nfmos-timed-out",
    ),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS,
        [_d("b", S), _d("c", C)],
        False,
        Skip("dependency 'c' cancelled"),
        id="nfmos-cancelled",
    ),
    pytest.param(When.NONE_FAILED_MIN_ONE_SUCCESS, [], False, Skip(NONE_OK_N), id="nfmos-no-deps"),
    pytest.param(
        When.NONE_FAILED_MIN_ONE_SUCCESS, [_d("b", S)], True, Blocked(), id="nfmos-aborting"
    ),
    # all_failed: a cleanup rule
    pytest.param(
        When.ALL_FAILED, [_d("b", F, "b"), _d("c", T, "c")], False, Ready(), id="all_failed-ok"
    ),
    pytest.param(When.ALL_FAILED, [_d("b", F, "b"), None], False, Wait(), id="all_failed-pending"),
    pytest.param(
        When.ALL_FAILED,
        [_d("b", F, "b"), _d("c", S), None],
        False,
        Skip("dependency 'c' succeeded, not failed (when: all_failed)"),
        id="all_failed-success-early",
    ),
    pytest.param(
        When.ALL_FAILED,
        [_d("b", K, "a")],
        False,
        Skip("dependency 'b' skipped (because 'a' failed), not failed (when: all_failed)", "a"),
        id="all_failed-skipped-is-not-failed",
    ),
    pytest.param(
        When.ALL_FAILED,
        [_d("b", C)],
        False,
        Skip("dependency 'b' cancelled, not failed (when: all_failed)"),
        id="all_failed-cancelled-is-not-failed",
    ),
    pytest.param(When.ALL_FAILED, [], False, Skip(NOT_ALL_FAILED), id="all_failed-no-deps"),
    pytest.param(When.ALL_FAILED, [_d("b", F, "b")], True, Ready(), id="all_failed-aborting"),
    pytest.param(
        When.ALL_FAILED, [_d("b", F, "b"), None], True, Wait(), id="all_failed-abort-wait"
    ),
]


@pytest.mark.parametrize(("when", "deps", "aborting", "expected"), TRIGGER)
def test_trigger(
    when: When, deps: list[DepOutcome | None], aborting: bool, expected: Decision
) -> None:
    """Each trigger rule decides Ready, Wait, Skip (with reason and root) or Blocked."""
    assert trigger(when, deps, aborting=aborting) == expected


def test_trigger_covers_every_rule_with_and_without_abort() -> None:
    """The trigger table exercises every When rule both normally and while aborting."""
    seen = {(p.values[0], p.values[2]) for p in TRIGGER}
    assert seen == {(w, a) for w in When for a in (False, True)}


# --- decisive: when the engine may skip re-evaluating a dependent --------------------

_ENDS = [s for s in StepState if s.terminal]


def _sequences(n: int) -> list[list[StepState]]:
    """Every sequence of ``n`` terminal states (the order dependencies end in)."""
    if n == 0:
        return [[]]
    return [[s, *rest] for s in _ENDS for rest in _sequences(n - 1)]


@pytest.mark.parametrize("when", list(When))
def test_a_non_decisive_end_before_the_last_never_changes_wait(when: When) -> None:
    """Exhaustively, up to 3 dependencies: while trigger says Wait, a dependency that ends
    (not the last) with an outcome ``decisive`` rejects leaves it at Wait (the engine then
    does not evaluate the dependent at all), and a decisive one is needed for anything else."""
    for n in (2, 3):
        for ends in _sequences(n):
            outcomes = [DepOutcome(f"d{i}", s) for i, s in enumerate(ends)]
            for k in range(1, n):  # the k-th dependency ends; n - k still run
                before = outcomes[: k - 1] + [None] * (n - k + 1)
                after = outcomes[:k] + [None] * (n - k)
                if trigger(when, before, aborting=False) != Wait():
                    continue
                now = trigger(when, after, aborting=False)
                if not decisive(when, outcomes[k - 1]):
                    assert now == Wait(), (when, ends, k)


def test_decisive_outcomes_per_rule() -> None:
    """A failure decides all_success (skip), a success decides one_success (ready);
    all_done and one_failed wait for every dependency whatever ends."""
    failed, ok = DepOutcome("d", StepState.FAILED, "d"), DepOutcome("d", StepState.SUCCEEDED)
    assert decisive(When.ALL_SUCCESS, failed)
    assert not decisive(When.ALL_SUCCESS, ok)
    assert decisive(When.ONE_SUCCESS, ok)
    assert not decisive(When.ONE_SUCCESS, failed)
    assert decisive(When.ALL_FAILED, ok)
    assert not decisive(When.ALL_FAILED, failed)
    assert not any(decisive(w, o) for w in (When.ALL_DONE, When.ONE_FAILED) for o in (ok, failed))
