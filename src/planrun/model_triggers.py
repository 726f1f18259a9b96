"""The plan's triggers, overlap policy and retention: what ``planrun serve`` reads.

Pure data like ``model.py`` (which re-exports these): no I/O, no clock. The arithmetic
of next fire times and the checks across fields live elsewhere (``triggers`` and the
``plan`` package); a plan without ``triggers`` runs exactly as before.
"""

# No ``from __future__ import annotations``: msgspec reads these Structs' field types
# when it first decodes a plan, and string annotations are compiled and evaluated
# then, one by one (~2 ms of every validate and run).

import enum
from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["CatchUp", "GitTrigger", "OnOverlap", "Retention", "Trigger"]

#: A trigger's intervals: at least a second, at most thirty days (README "Limits").
_MAX_SECONDS = 30 * 24 * 3600
IntervalSeconds = Annotated[float, Meta(ge=1, le=_MAX_SECONDS)]
DebounceSeconds = Annotated[float, Meta(ge=0, le=3600)]


class OnOverlap(enum.StrEnum):
    """What a trigger that fires while a run of the plan is running does."""

    #: Record the firing as skipped; start nothing (the default).
    SKIP = "skip"
    #: Start a run when the running one ends (at most one waits; more are skipped).
    QUEUE = "queue"
    #: Cancel the running run, then start the new one (GitHub's ``cancel-in-progress``).
    CANCEL_PREVIOUS = "cancel_previous"
    #: Start the new run beside the running one.
    ALLOW = "allow"


class CatchUp(enum.StrEnum):
    """What a schedule does about the slots it missed while ``serve`` was down."""

    #: Nothing: the next slot after now fires (the default).
    NONE = "none"
    #: One run for the missed slots (the latest of them), then on schedule.
    LATEST = "latest"


class GitTrigger(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """New commits on ``branch`` of the repository at ``repo`` (relative: to the plan's
    directory), looked for every ``poll_sec`` seconds."""

    repo: Annotated[str, Meta(min_length=1)] = "."
    branch: Annotated[str, Meta(min_length=1)] = "main"
    poll_sec: IntervalSeconds = 30.0


class Trigger(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """One trigger: exactly one of ``schedule``, ``every_sec``, ``watch``, ``git``.

    ``schedule`` is a 5-field cron expression evaluated in ``timezone`` (an IANA name;
    default UTC); ``catch_up`` applies to it. ``watch`` holds glob patterns of files
    under ``cwd`` (default: the plan's directory), debounced by ``debounce_sec``.
    """

    schedule: Annotated[str, Meta(min_length=1)] | None = None
    timezone: Annotated[str, Meta(min_length=1)] | None = None
    catch_up: CatchUp = CatchUp.NONE
    every_sec: IntervalSeconds | None = None
    watch: list[Annotated[str, Meta(min_length=1)]] | None = None
    debounce_sec: DebounceSeconds = 1.0
    cwd: str | None = None
    git: GitTrigger | None = None


class Retention(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """Which finished runs of the plan ``serve`` deletes: those older than ``days``,
    except the newest ``keep_last`` (either may be absent)."""

    days: Annotated[float, Meta(gt=0, le=36_500)] | None = None
    keep_last: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
