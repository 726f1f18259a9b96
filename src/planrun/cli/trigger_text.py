"""How a run's trigger is written in ``list`` and ``show``: short, one line."""

from __future__ import annotations

from typing import Any

__all__ = ["trigger_short"]


def trigger_short(trigger: dict[str, Any] | None) -> str:
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
