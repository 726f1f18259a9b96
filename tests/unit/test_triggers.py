"""Trigger arithmetic with fixed clocks (never the real clock, never a sleep), and
the validation of ``triggers`` with JSON paths."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from planrun.model_triggers import CatchUp, GitTrigger, Trigger
from planrun.plan import validate
from planrun.triggers import (
    DUE_GRACE_SEC,
    due_slot,
    fire_times,
    format_slot,
    kind_of,
    next_fire,
    parse_slot,
    prev_fire,
    trigger_key,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def test_schedule_in_a_time_zone_gives_utc_slots() -> None:
    trigger = Trigger(schedule="0 3 * * 1-5", timezone="Europe/Berlin")
    # Friday 2026-01-02 12:00 UTC: the next slots are Monday and Tuesday 03:00 CET.
    slots = fire_times(trigger, datetime(2026, 1, 2, 12, tzinfo=UTC), 2)
    assert slots == [datetime(2026, 1, 5, 2, tzinfo=UTC), datetime(2026, 1, 6, 2, tzinfo=UTC)]


def test_spring_forward_a_missing_time_fires_after_the_gap() -> None:
    """2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; a 02:30 job fires at 03:00."""
    trigger = Trigger(schedule="30 2 * * *", timezone="Europe/Berlin")
    slots = fire_times(trigger, _berlin(2026, 3, 28, 12), 3)
    assert [s.astimezone(BERLIN).strftime("%d %H:%M %Z") for s in slots] == [
        "29 03:00 CEST",
        "30 02:30 CEST",
        "31 02:30 CEST",
    ]
    assert slots[0] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_fall_back_a_repeated_time_fires_once() -> None:
    """2026-10-25 in Berlin: 02:00-03:00 happens twice; a 02:30 job fires once (the
    first, CEST), then 24 h + 1 h later."""
    trigger = Trigger(schedule="30 2 * * *", timezone="Europe/Berlin")
    slots = fire_times(trigger, _berlin(2026, 10, 24, 12), 2)
    assert slots == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_fall_back_every_half_hour_fires_in_both_halves() -> None:
    trigger = Trigger(schedule="*/30 * * * *", timezone="Europe/Berlin")
    slots = fire_times(trigger, _berlin(2026, 10, 25, 1, 45), 5)
    utc = [s.strftime("%H:%M") for s in slots]
    # 02:00 and 02:30 CEST (00:00, 00:30 UTC), then 02:00 and 02:30 CET (01:00, 01:30 UTC).
    assert utc == ["00:00", "00:30", "01:00", "01:30", "02:00"]
    assert all(b > a for a, b in itertools.pairwise(slots))


def test_next_fire_is_strictly_after_and_prev_fire_at_or_before() -> None:
    trigger = Trigger(schedule="*/5 * * * *")
    at = datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    assert next_fire(trigger, at) == at + timedelta(minutes=5)
    assert prev_fire(trigger, at) == at
    assert prev_fire(trigger, at + timedelta(seconds=299)) == at


def test_every_sec_slots_are_epoch_multiples() -> None:
    trigger = Trigger(every_sec=900)
    now = datetime(2026, 5, 1, 10, 7, 30, tzinfo=UTC)
    assert next_fire(trigger, now) == datetime(2026, 5, 1, 10, 15, tzinfo=UTC)
    assert prev_fire(trigger, now) == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert fire_times(trigger, now, 2)[1] == datetime(2026, 5, 1, 10, 30, tzinfo=UTC)


def test_watch_and_git_have_no_slots() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    for trigger in (Trigger(watch=["*.py"]), Trigger(git=GitTrigger())):
        assert next_fire(trigger, now) is None
        assert due_slot(trigger, now, None) is None


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(Trigger(every_sec=5), datetime(2026, 1, 1))


class TestCatchUp:
    schedule = Trigger(schedule="0 3 * * *")
    slot = datetime(2026, 5, 2, 3, tzinfo=UTC)

    def test_a_slot_just_passed_is_due_once(self) -> None:
        now = self.slot + timedelta(seconds=10)
        assert due_slot(self.schedule, now, None) == self.slot
        assert due_slot(self.schedule, now, self.slot) is None  # stored: never twice

    def test_none_skips_missed_slots(self) -> None:
        later = self.slot + timedelta(hours=5)
        assert due_slot(self.schedule, later, self.slot - timedelta(days=3)) is None

    def test_latest_fires_one_run_for_the_missed_slots(self) -> None:
        trigger = Trigger(schedule="0 3 * * *", catch_up=CatchUp.LATEST)
        later = self.slot + timedelta(hours=5)
        assert due_slot(trigger, later, self.slot - timedelta(days=3)) == self.slot
        assert due_slot(trigger, later, self.slot) is None

    def test_latest_without_a_stored_slot_missed_nothing(self) -> None:
        trigger = Trigger(schedule="0 3 * * *", catch_up=CatchUp.LATEST)
        assert due_slot(trigger, self.slot + timedelta(hours=5), None) is None

    def test_grace_boundary(self) -> None:
        edge = self.slot + timedelta(seconds=DUE_GRACE_SEC)
        assert due_slot(self.schedule, edge, None) == self.slot
        assert due_slot(self.schedule, edge + timedelta(seconds=1), None) is None

    def test_every_sec_catches_up_after_downtime(self) -> None:
        trigger = Trigger(every_sec=60)
        now = datetime(2026, 5, 1, 10, 30, 30, tzinfo=UTC)
        assert due_slot(trigger, now, now - timedelta(hours=1)) == datetime(
            2026, 5, 1, 10, 30, tzinfo=UTC
        )


def test_trigger_key_is_stable_and_changes_with_the_spec() -> None:
    a = trigger_key(0, Trigger(schedule="0 3 * * *"))
    assert a == trigger_key(0, Trigger(schedule="0 3 * * *"))
    assert a.startswith("0-schedule-")
    assert a != trigger_key(0, Trigger(schedule="0 4 * * *"))
    assert a != trigger_key(1, Trigger(schedule="0 3 * * *"))
    assert kind_of(Trigger(git=GitTrigger())) == "git"


def test_slots_round_trip() -> None:
    slot = datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert parse_slot(format_slot(slot)) == slot
    assert parse_slot("garbage") is None
    assert parse_slot(None) is None


def _problems(triggers: list[object]) -> list[tuple[str, str]]:
    doc = {"plan_id": "t", "steps": [{"id": "a", "command": "true"}], "triggers": triggers}
    return [(p.path, p.message) for p in validate(doc).errors]


@pytest.mark.parametrize(
    ("trigger", "path", "words"),
    [
        ({}, "$.triggers[0]", "exactly one"),
        ({"every_sec": 5, "watch": ["x"]}, "$.triggers[0]", "got every_sec, watch"),
        ({"schedule": "61 * * * *"}, "$.triggers[0].schedule", "not a valid cron"),
        ({"schedule": "@daily"}, "$.triggers[0].schedule", "5 fields"),
        ({"schedule": "0 3 * * *", "timezone": "Mars/Base"}, "$.triggers[0].timezone", "unknown"),
        ({"every_sec": 5, "catch_up": "latest"}, "$.triggers[0].catch_up", "'schedule' trigger"),
        ({"every_sec": 5, "timezone": "UTC"}, "$.triggers[0].timezone", "'schedule' trigger"),
        ({"every_sec": 5, "debounce_sec": 3}, "$.triggers[0].debounce_sec", "'watch'"),
        ({"watch": []}, "$.triggers[0].watch", "at least one"),
        ({"watch": ["ok", "../up"]}, "$.triggers[0].watch[1]", "relative"),
        ({"git": {"branch": "--upload-pack=x"}}, "$.triggers[0].git.branch", "branch name"),
        ({"every_sec": 0.5}, "$.triggers[0].every_sec", ">= 1"),
    ],
)
def test_bad_triggers_are_located(trigger: object, path: str, words: str) -> None:
    problems = _problems([{"every_sec": 60}, trigger])
    shifted = path.replace("[0]", "[1]", 1)
    assert any(p == shifted and words in m for p, m in problems), problems


def test_good_triggers_validate() -> None:
    assert (
        _problems(
            [
                {"schedule": "0 3 * * 1-5", "timezone": "Europe/Berlin", "catch_up": "latest"},
                {"every_sec": 900},
                {"watch": ["src/**/*.py", "pyproject.toml"], "debounce_sec": 2},
                {"git": {"repo": ".", "branch": "release/1.x", "poll_sec": 30}},
            ]
        )
        == []
    )
