"""Retention's selection (planrun.retention): which finished runs a policy deletes, at
a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from planrun.errors import UsageError
from planrun.model import RunState
from planrun.model_triggers import Retention
from planrun.retention import Candidate, Policy, parse_duration, policy_of, select

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _stamp(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run(run_id: str, days_ago: float, plan: str = "p", state: str = "succeeded") -> Candidate:
    """A run that started ``days_ago`` days before NOW and took an hour."""
    ended = None if state == "running" else _stamp(days_ago - 1 / 24)
    return Candidate(
        run_id=run_id,
        plan_id=plan,
        state=RunState(state),
        started_at=_stamp(days_ago),
        ended_at=ended,
    )


def _ids(runs: list[Candidate]) -> list[str]:
    return [r.run_id for r in runs]


RUNS = [
    _run("p-new", 1),
    _run("p-mid", 10),
    _run("p-old", 40),
    _run("p-older", 50, state="failed"),
    _run("p-running", 60, state="running"),
    _run("q-new", 2, plan="q"),
    _run("q-old", 45, plan="q", state="crashed"),
]


def test_older_than_selects_finished_runs_ended_before_the_cutoff() -> None:
    chosen = select(RUNS, Policy(older_than=timedelta(days=30)), NOW)
    assert _ids(chosen) == ["p-old", "p-older", "q-old"]


def test_the_age_counts_from_the_end_not_the_start() -> None:
    """A run that started 30 days and 30 minutes ago but ended 29 days 23.5 h ago is
    not older than 30 days."""
    start = NOW - timedelta(days=30, minutes=30)
    run = Candidate(
        run_id="r",
        plan_id="p",
        state=RunState.SUCCEEDED,
        started_at=start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        ended_at=(start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    assert select([run], Policy(older_than=timedelta(days=30)), NOW) == []
    assert select([run], Policy(older_than=timedelta(days=29)), NOW) == [run]


def test_keep_last_counts_finished_runs_per_plan() -> None:
    """The newest N finished runs of each plan stay; running runs neither go nor count."""
    chosen = select(RUNS, Policy(keep_last=1), NOW)
    assert _ids(chosen) == ["p-mid", "p-old", "p-older", "q-old"]
    assert _ids(select(RUNS, Policy(keep_last=0), NOW)) == [
        "p-new",
        "p-mid",
        "p-old",
        "p-older",
        "q-new",
        "q-old",
    ]


def test_both_limits_delete_only_old_runs_beyond_the_newest_n() -> None:
    policy = Policy(older_than=timedelta(days=30), keep_last=3)
    # p's three newest finished: p-new, p-mid, p-old; q's: both.
    assert _ids(select(RUNS, policy, NOW)) == ["p-older"]


def test_plan_id_limits_the_selection_to_one_plan() -> None:
    chosen = select(RUNS, Policy(keep_last=0, plan_id="q"), NOW)
    assert _ids(chosen) == ["q-new", "q-old"]


def test_a_running_run_is_never_selected() -> None:
    chosen = select(RUNS, Policy(older_than=timedelta(seconds=1), keep_last=0), NOW)
    assert "p-running" not in _ids(chosen)


def test_a_policy_without_limits_is_refused() -> None:
    with pytest.raises(UsageError, match="--older-than DURATION"):
        select(RUNS, Policy(plan_id="p"), NOW)


def test_policy_of_a_plans_retention() -> None:
    policy = policy_of("p", Retention(days=30, keep_last=100))
    assert policy == Policy(older_than=timedelta(days=30), keep_last=100, plan_id="p")
    assert policy_of("p", Retention(keep_last=2)).older_than is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 14 * 86400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration("1.5d") == timedelta(hours=36)


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "0d", "1e3d", "99999999w"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(UsageError, match=r"e\.g\. 30d, 12h, 90m") as info:
        parse_duration(text)
    assert info.value.field == "older_than"
