"""What ``planrun serve`` is doing, read-only, for the dashboard it serves (``--ui``).

Contract: :meth:`Board.snapshot` returns JSON builtins (the shape
``planrun.ui.triggers_view`` draws and ``/api/triggers`` returns): per served plan its
id, file, ``on_overlap``, running run ids and queued firing, and per trigger its key,
kind, a short spec, its next fire time (UTC, and in the trigger's zone for a
schedule), and the last slot stored in ``trigger_state`` with what was decided for it.
It never changes anything; before ``serve`` attached it (or after it stopped) it is
an empty list. The ui reaches it only as a callable (it imports nothing from serve).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .. import triggers as arith
from ..errors import PlanrunError
from ..model_triggers import Trigger
from ..store.sqlite import SqliteStore
from ..store.trigger_state import load_trigger_state
from .loader import LoadedPlan
from .runner import PlanRunner

__all__ = ["Board"]

Served = Callable[[], list[tuple[LoadedPlan, PlanRunner]]]


class Board:
    """The served plans as the dashboard shows them (attached by ``serve``)."""

    def __init__(self) -> None:
        self._served: Served | None = None
        self._store: SqliteStore | None = None

    def attach(self, served: Served, store: SqliteStore) -> None:
        self._served, self._store = served, store

    def detach(self) -> None:
        self._served = self._store = None

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every served plan (by id) with its triggers, as of now."""
        served, store = self._served, self._store
        if served is None or store is None:
            return []
        now = datetime.now(UTC)
        out = []
        for loaded, runner in sorted(served(), key=lambda pair: pair[0].plan_key):
            try:
                stored = await load_trigger_state(store, loaded.plan_key)
            except (PlanrunError, ValueError):  # serve is closing its store
                stored = {}
            out.append(_plan(loaded, runner, stored, now))
        return out


def _plan(
    loaded: LoadedPlan,
    runner: PlanRunner,
    stored: dict[str, tuple[str | None, str | None]],
    now: datetime,
) -> dict[str, Any]:
    plan = loaded.prepared.plan
    triggers = []
    for index, trigger in enumerate(plan.triggers):
        key = arith.trigger_key(index, trigger)
        last_slot, last_state = stored.get(key, (None, None))
        triggers.append(
            {
                "key": key,
                "kind": str(arith.kind_of(trigger)),
                "summary": arith.summary(trigger),
                **_next(trigger, last_slot, now),
                "last_slot": last_slot,
                "last_state": last_state,
            }
        )
    waiting = runner.waiting
    return {
        "plan_id": plan.plan_id,
        "path": str(loaded.path),
        "on_overlap": plan.on_overlap.value,
        "running": runner.running_ids,
        "queued": None if waiting is None else waiting.get("slot") or waiting.get("kind"),
        "triggers": triggers,
    }


def _next(trigger: Trigger, last_slot: str | None, now: datetime) -> dict[str, Any]:
    """``next_fire`` (UTC), ``timezone`` and ``next_fire_local`` (schedules); None
    for a trigger that fires on changes or never again."""
    if arith.kind_of(trigger) not in (arith.TriggerKind.SCHEDULE, arith.TriggerKind.EVERY):
        return {"next_fire": None, "timezone": None, "next_fire_local": None}
    last = arith.parse_slot(last_slot)
    upcoming = arith.next_fire(trigger, max(now, last) if last is not None else now)
    if trigger.schedule is None:
        local = None
        tz = None
    else:
        tz = trigger.timezone or "UTC"
        shown = upcoming.astimezone(arith.zone(trigger)) if upcoming else None
        local = shown.strftime("%Y-%m-%d %H:%M %Z") if shown else None
    return {
        "next_fire": arith.format_slot(upcoming) if upcoming else None,
        "timezone": tz,
        "next_fire_local": local,
    }
