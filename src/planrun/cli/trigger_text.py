"""How a run's trigger is written in ``list`` and ``show`` (short, one line), and a
plan's triggers in ``run --dry-run`` and ``validate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model import Plan

__all__ = ["plan_triggers_doc", "plan_triggers_line"]

#: What a plan's triggers do and do not do (a plain ``run`` ignores them).
SERVE_NOTE = "runs by itself only under `planrun serve`"


def plan_triggers_line(plan: Plan) -> str | None:
    """``triggers: schedule 0 3 * * 1-5 (Europe/Berlin), every 900s; on_overlap skip;
    runs by itself only under `planrun serve``` (None: the plan has none)."""
    if not plan.triggers:
        return None
    from ..triggers import summary

    kinds = ", ".join(summary(t) for t in plan.triggers)
    return f"triggers: {kinds}; on_overlap {plan.on_overlap.value}; {SERVE_NOTE}"


def plan_triggers_doc(plan: Plan) -> dict[str, Any]:
    """``--json``: ``triggers`` (each trigger's key, kind, summary and fields) and
    ``on_overlap`` (an empty list for a plan without triggers)."""
    from ..triggers import describe, kind_of, summary, trigger_key

    return {
        "triggers": [
            {
                "key": trigger_key(index, trigger),
                "kind": str(kind_of(trigger)),
                "summary": summary(trigger),
                **describe(trigger),
            }
            for index, trigger in enumerate(plan.triggers)
        ],
        "on_overlap": plan.on_overlap.value,
    }
