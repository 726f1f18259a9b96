"""Trigger arithmetic: when a plan's triggers fire, with the clock given.

Pure: every function takes ``now`` (an aware ``datetime``) instead of reading a
clock, and nothing here sleeps, so the arithmetic is tested with fixed clocks.
``schedule`` is a 5-field cron expression evaluated by ``cronsim`` in the trigger's
IANA time zone (``zoneinfo``): daylight-saving time is handled as cronsim does, like
Debian cron — a time that does not exist on the spring-forward day fires at the first
minute after the gap (02:30 -> 03:00), a time that happens twice on the fall-back day
fires once, at its first occurrence; expressions with a ``*`` minute or hour fire by
the wall clock in both halves. ``every_sec`` slots are multiples of the interval since
the Unix epoch (UTC), so they are the same slots across restarts.

A *slot* is the UTC instant a schedule or interval fires for; the last one fired is
stored per trigger (``trigger_state``), so a restart never fires a slot twice.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from .digest import sha256_hex
from .model_triggers import CatchUp, Trigger

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = [
    "DUE_GRACE_SEC",
    "TriggerKind",
    "check_cron",
    "describe",
    "due_slot",
    "fire_times",
    "fired_summary",
    "format_slot",
    "kind_of",
    "next_fire",
    "parse_slot",
    "prev_fire",
    "summary",
    "trigger_key",
    "zone",
]

#: A slot at most this old counts as "now" (not missed): a ``serve`` restarted a few
#: seconds after 03:00, or ``serve --once`` run by cron each minute, still fires it.
DUE_GRACE_SEC = 60.0


class TriggerKind(enum.StrEnum):
    """Which of a trigger's fields is set."""

    SCHEDULE = "schedule"
    EVERY = "every"
    WATCH = "watch"
    GIT = "git"


def kind_of(trigger: Trigger) -> TriggerKind:
    """The kind of a valid trigger (exactly one field set; checked by ``plan/``)."""
    if trigger.schedule is not None:
        return TriggerKind.SCHEDULE
    if trigger.every_sec is not None:
        return TriggerKind.EVERY
    if trigger.watch is not None:
        return TriggerKind.WATCH
    return TriggerKind.GIT


def trigger_key(index: int, trigger: Trigger) -> str:
    """A stable name for the trigger at ``index`` of its plan: position, kind and a
    hash of its spec (``2-schedule-1a2b3c4d``). Editing a trigger gives it a new key,
    so its stored last slot no longer applies (it starts afresh)."""
    spec = msgspec.json.encode(trigger)
    digest = sha256_hex(spec)[:8]
    return f"{index}-{kind_of(trigger)}-{digest}"


def zone(trigger: Trigger) -> ZoneInfo:
    """The trigger's time zone (UTC when it names none). Raises
    ``zoneinfo.ZoneInfoNotFoundError`` (a ``KeyError``) for an unknown name."""
    from zoneinfo import ZoneInfo  # only plans with triggers pay for these imports

    return ZoneInfo(trigger.timezone or "UTC")


def check_cron(expression: str) -> str | None:
    """Why ``expression`` is not a 5-field cron expression cronsim accepts, else None."""
    if len(expression.split()) != 5:
        return "a schedule has 5 fields (minute hour day-of-month month day-of-week)"
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return str(exc) or "not a cron expression"
    return None


def format_slot(slot: datetime) -> str:
    """A slot as stored: UTC, ISO 8601 to the second, with a ``Z``."""
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_slot(text: str | None) -> datetime | None:
    """A stored slot back (None for None or anything unreadable: it then starts afresh)."""
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("the clock must be time-zone aware")
    return now.astimezone(UTC)


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first slot strictly after ``after`` (UTC, aware); None for a ``watch`` or
    ``git`` trigger (they fire on changes) or a schedule that never fires again."""
    after = _utc(after)
    if trigger.every_sec is not None:
        every = trigger.every_sec
        n = math.floor(after.timestamp() / every) + 1
        return datetime.fromtimestamp(n * every, UTC)
    if trigger.schedule is None:
        return None
    from cronsim import CronSim

    local = after.astimezone(zone(trigger))
    for slot in CronSim(trigger.schedule, local):
        if slot.astimezone(UTC) > after:  # cronsim counts wall-clock minutes
            return slot.astimezone(UTC)
    return None


def prev_fire(trigger: Trigger, now: datetime) -> datetime | None:
    """The latest slot at or before ``now`` (UTC), or None (no such slot, or a kind
    without slots)."""
    now = _utc(now)
    if trigger.every_sec is not None:
        every = trigger.every_sec
        return datetime.fromtimestamp(math.floor(now.timestamp() / every) * every, UTC)
    if trigger.schedule is None:
        return None
    # cronsim's reverse iteration yields slots strictly before its start: start one
    # second after now (whole seconds) so a slot exactly at now counts.
    from cronsim import CronSim

    start = now.replace(microsecond=0) + timedelta(seconds=1)
    try:
        for slot in CronSim(trigger.schedule, start.astimezone(zone(trigger)), reverse=True):
            if slot.astimezone(UTC) <= now:
                return slot.astimezone(UTC)
    except StopIteration:  # pragma: no cover - cronsim ends its own iteration
        return None
    return None


def fire_times(trigger: Trigger, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` slots after ``now`` (UTC; fewer if the schedule ends)."""
    return list(_slots(trigger, now, count))


def _slots(trigger: Trigger, now: datetime, count: int) -> Iterator[datetime]:
    after = now
    for _ in range(count):
        slot = next_fire(trigger, after)
        if slot is None:
            return
        yield slot
        after = slot


def due_slot(trigger: Trigger, now: datetime, last_slot: datetime | None) -> datetime | None:
    """The slot to fire now, or None: the latest slot at or before ``now`` if it is
    later than ``last_slot`` (the last fired or skipped one) and either

    - at most :data:`DUE_GRACE_SEC` old (it is due now, not missed), or
    - missed while ``serve`` was down, for a schedule with ``catch_up: latest`` or an
      ``every_sec`` trigger (one run for all the missed slots).

    A trigger that never fired (``last_slot`` None) has missed nothing: only a slot
    within the grace fires. ``watch`` and ``git`` triggers have no slots (None).
    """
    latest = prev_fire(trigger, now)
    if latest is None or (last_slot is not None and latest <= last_slot):
        return None
    if (_utc(now) - latest).total_seconds() <= DUE_GRACE_SEC:
        return latest
    catches_up = trigger.every_sec is not None or trigger.catch_up is CatchUp.LATEST
    return latest if catches_up and last_slot is not None else None


def describe(trigger: Trigger) -> dict[str, Any]:
    """The trigger's spec as plain data (for logs and ``planrun triggers --json``)."""
    out: dict[str, Any] = msgspec.to_builtins(trigger)
    return out


def summary(trigger: Trigger) -> str:
    """The trigger in a few words: ``schedule 0 3 * * 1-5 (Europe/Berlin)``,
    ``every 900s``, ``watch src/**/*.py, pyproject.toml``, ``git main of .``."""
    if trigger.schedule is not None:
        tz = trigger.timezone or "UTC"
        late = ", catch_up latest" if trigger.catch_up is CatchUp.LATEST else ""
        return f"schedule {trigger.schedule} ({tz}{late})"
    if trigger.every_sec is not None:
        return f"every {trigger.every_sec:g}s"
    if trigger.watch is not None:
        where = f" under {trigger.cwd}" if trigger.cwd else ""
        return f"watch {', '.join(trigger.watch)}{where}"
    assert trigger.git is not None
    return f"git {trigger.git.branch} of {trigger.git.repo}"


def fired_summary(trigger: Mapping[str, Any] | None) -> str:
    """``schedule 2026-12-01T03:00:00Z``, ``every 2026-...``, ``watch src/a.py (+2)``,
    ``git main 1a2b3c4..5d6e7f8``; empty for a run started by hand."""
    if not trigger:
        return ""
    kind = str(trigger.get("kind", "?"))
    if kind in ("schedule", "every"):
        return f"{kind} {trigger.get('slot', '')}".strip()
    if kind == "watch":
        paths = [str(p) for p in trigger.get("paths") or []]
        more = f" (+{len(paths) - 1})" if len(paths) > 1 else ""
        return f"watch {paths[0]}{more}" if paths else "watch"
    if kind == "git":
        old, new = str(trigger.get("old_sha") or "")[:7], str(trigger.get("sha") or "")[:7]
        span = f"{old}..{new}" if old else new
        return f"git {trigger.get('branch', '')} {span}".strip()
    return kind
