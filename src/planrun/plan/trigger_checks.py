"""The checks of a plan's ``triggers``: one kind each, a cron expression cronsim
parses, a known time zone, fields that belong to the trigger's kind, patterns that
stay under the watched directory, a git branch name git accepts.

Each problem has its JSON path (``$.triggers[1].schedule``) and a hint. Whether a
git repository exists is a property of the host, not of the plan: ``serve`` reports
that when it loads the plan.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..errors import Problem
from ..model import Plan
from ..model_triggers import CatchUp, Trigger
from ..triggers import check_cron

__all__ = ["check_triggers"]

_KINDS = ("schedule", "every_sec", "watch", "git")
#: What ``git check-ref-format`` refuses in a branch name (and a leading ``-``, which
#: git would read as an option).
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|([\x00-\x20~^:?*\[\\\x7f])|(@\{)|(//)|([/.]$)|(\.lock$)")


def check_triggers(plan: Plan) -> list[Problem]:
    """Every problem of ``plan.triggers``."""
    problems: list[Problem] = []
    for index, trigger in enumerate(plan.triggers):
        problems += _check_trigger(f"$.triggers[{index}]", trigger)
    return problems


def _check_trigger(at: str, trigger: Trigger) -> list[Problem]:
    kinds = [k for k in _KINDS if getattr(trigger, k) is not None]
    if len(kinds) != 1:
        given = ", ".join(kinds) if kinds else "none"
        hint = 'e.g. {"schedule": "0 3 * * *"}, {"every_sec": 900}, {"watch": ["src/**"]}'
        return [
            Problem(
                at, f"a trigger has exactly one of {', '.join(_KINDS)} (got {given})", hint=hint
            )
        ]
    problems = _misplaced(at, trigger, kinds[0])
    if trigger.schedule is not None:
        problems += _check_schedule(at, trigger)
    if trigger.watch is not None:
        problems += _check_watch(at, trigger.watch)
    if trigger.git is not None:
        problems += _check_git(at, trigger)
    return problems


def _misplaced(at: str, trigger: Trigger, kind: str) -> list[Problem]:
    """Fields that only one kind of trigger reads, given on another."""
    problems = []
    owners = {"timezone": "schedule", "catch_up": "schedule", "cwd": "watch"}
    for name, owner in owners.items():
        value = getattr(trigger, name)
        set_ = value is not None and not (name == "catch_up" and value is CatchUp.NONE)
        if set_ and kind != owner:
            problems.append(
                Problem(
                    f"{at}.{name}",
                    f"'{name}' applies to a '{owner}' trigger only, not to '{kind}'",
                    hint=f"remove it, or make this a '{owner}' trigger",
                )
            )
    if kind != "watch" and trigger.debounce_sec != 1.0:
        problems.append(
            Problem(
                f"{at}.debounce_sec",
                f"'debounce_sec' applies to a 'watch' trigger only, not to '{kind}'",
                hint="remove it",
            )
        )
    return problems


def _check_schedule(at: str, trigger: Trigger) -> list[Problem]:
    problems = []
    assert trigger.schedule is not None
    why = check_cron(trigger.schedule)
    if why is not None:
        problems.append(
            Problem(
                f"{at}.schedule",
                f"{trigger.schedule!r} is not a valid cron expression: {why}",
                hint="5 fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * 1-5'",
            )
        )
    if trigger.timezone is not None:
        import zoneinfo  # only plans with a time zone pay for it

        try:
            zoneinfo.ZoneInfo(trigger.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            problems.append(
                Problem(
                    f"{at}.timezone",
                    f"unknown time zone {trigger.timezone!r}",
                    hint="an IANA name such as 'Europe/Berlin' or 'UTC'",
                )
            )
    return problems


def _check_watch(at: str, patterns: list[str]) -> list[Problem]:
    problems = []
    if not patterns:
        problems.append(
            Problem(
                f"{at}.watch",
                "a watch trigger needs at least one pattern",
                hint="e.g. ['src/**/*.py']",
            )
        )
    for i, pattern in enumerate(patterns):
        path = PurePosixPath(pattern)
        if "\x00" in pattern or path.is_absolute() or ".." in path.parts:
            problems.append(
                Problem(
                    f"{at}.watch[{i}]",
                    f"pattern {pattern!r} must be relative and stay under the watched directory",
                    hint=(
                        "patterns match paths relative to the plan's directory (or "
                        "'cwd'); set 'cwd' to watch elsewhere"
                    ),
                )
            )
    return problems


def _check_git(at: str, trigger: Trigger) -> list[Problem]:
    git = trigger.git
    assert git is not None
    problems = []
    if "\x00" in git.repo:
        problems.append(Problem(f"{at}.git.repo", "the repository path holds a NUL byte"))
    if _BAD_REF.search(git.branch):
        problems.append(
            Problem(
                f"{at}.git.branch",
                f"{git.branch!r} is not a branch name git accepts",
                hint="a name like 'main' or 'release/1.x' (see git check-ref-format)",
            )
        )
    return problems
