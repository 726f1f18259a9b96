"""``planrun triggers``: each trigger of a plan as lines of text, with its next
fire times (pure but for reading the clock once)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .. import triggers as arith
from ..model import Plan

__all__ = ["trigger_lines"]


def trigger_lines(plan: Plan, base_dir: Path, count: int, now: datetime | None = None) -> list[str]:
    """The lines ``planrun triggers`` prints for ``plan`` (``now``: default the clock)."""
    moment = now if now is not None else datetime.now(UTC)
    if not plan.triggers:
        return [f"plan {plan.plan_id} has no triggers"]
    lines = [
        f"plan {plan.plan_id}: {len(plan.triggers)} trigger(s), on_overlap {plan.on_overlap.value}"
    ]
    for index, trigger in enumerate(plan.triggers):
        key = arith.trigger_key(index, trigger)
        kind = arith.kind_of(trigger)
        if trigger.schedule is not None:
            tz = trigger.timezone or "UTC"
            head = f"schedule {trigger.schedule!r} in {tz}, catch_up {trigger.catch_up.value}"
        elif trigger.every_sec is not None:
            head = f"every {trigger.every_sec:g}s (slots are multiples of it since the epoch)"
        elif trigger.watch is not None:
            root = (base_dir / (trigger.cwd or ".")).resolve()
            patterns = ", ".join(trigger.watch)
            head = f"watch {patterns} under {root} (debounce {trigger.debounce_sec:g}s)"
        else:
            assert trigger.git is not None
            repo = (base_dir / trigger.git.repo).resolve()
            head = (
                f"git branch {trigger.git.branch} of {repo}, polled every {trigger.git.poll_sec:g}s"
            )
        lines.append(f"[{index}] {key}: {head}")
        if kind in (arith.TriggerKind.SCHEDULE, arith.TriggerKind.EVERY):
            zone = arith.zone(trigger)
            for slot in arith.fire_times(trigger, moment, count):
                local = slot.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
                lines.append(f"    {local}  ({arith.format_slot(slot)})")
        else:
            lines.append("    fires on changes")
    return lines
