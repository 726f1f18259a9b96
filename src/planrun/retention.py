"""Which finished runs retention deletes: pure selection, no I/O, no clock.

:func:`select` is given the top-level runs of a store (child runs of ``uses`` steps
are never chosen on their own: they go with their parent) and a :class:`Policy`, and
answers which to delete; :mod:`planrun.prune` reads the rows and deletes them. Rules:

- a ``running`` run is never chosen (nor counted by ``keep_last``);
- ``keep_last`` N: the N newest finished runs *of each plan* (by start) are kept;
- ``older_than``: only runs that ended (else started) more than that long before
  ``now`` are chosen;
- both: a run is chosen when it is older *and* not among the newest N of its plan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

import msgspec

from .errors import UsageError
from .model import RunState
from .model_triggers import Retention

__all__ = ["Candidate", "Policy", "age_sec", "parse_duration", "policy_of", "select"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
#: The longest --older-than accepted (100 years: more is a typo).
_MAX_SEC = 36_500 * 86400


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A top-level run as retention sees it (times are the store's UTC ISO strings)."""

    run_id: str
    plan_id: str
    state: RunState
    started_at: str
    ended_at: str | None = None


class Policy(msgspec.Struct, frozen=True, kw_only=True):
    """What to delete: runs older than ``older_than``, beyond the newest ``keep_last``
    finished runs of each plan (at least one of them set), of ``plan_id`` only if given."""

    older_than: timedelta | None = None
    keep_last: int | None = None
    plan_id: str | None = None


def policy_of(plan_id: str, retention: Retention) -> Policy:
    """The policy of a plan's ``"retention": {"days": D, "keep_last": N}``."""
    days = timedelta(days=retention.days) if retention.days is not None else None
    return Policy(older_than=days, keep_last=retention.keep_last, plan_id=plan_id)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or ``1.5d``) as a timedelta;
    :class:`UsageError` (``field="older_than"``) otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    seconds = float(match[1]) * _UNITS[match[2]] if match else 0.0
    if not match or seconds <= 0 or seconds > _MAX_SEC:
        raise UsageError(
            f"--older-than {text!r}: expected a positive number and a unit, "
            "s, m, h, d or w (e.g. 30d, 12h, 90m)",
            field="older_than",
        )
    return timedelta(seconds=seconds)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def age_sec(run: Candidate, now: datetime) -> float:
    """Seconds since ``run`` ended (since it started, if no end is recorded)."""
    return (now - _time(run.ended_at or run.started_at)).total_seconds()


def select(runs: Iterable[Candidate], policy: Policy, now: datetime) -> list[Candidate]:
    """The runs of ``runs`` that ``policy`` deletes at ``now`` (an aware datetime), in
    the order given. ``UsageError`` if the policy sets neither limit."""
    if policy.older_than is None and policy.keep_last is None:
        raise UsageError(
            "say what to delete: --older-than DURATION (e.g. 30d) and/or --keep-last N",
            field="policy",
        )
    finished = [
        r for r in runs if r.state is not RunState.RUNNING and policy.plan_id in (None, r.plan_id)
    ]
    kept: set[str] = set()
    if policy.keep_last is not None:
        newest = sorted(finished, key=lambda r: (r.started_at, r.run_id), reverse=True)
        count: dict[str, int] = {}
        for run in newest:
            count[run.plan_id] = count.get(run.plan_id, 0) + 1
            if count[run.plan_id] <= policy.keep_last:
                kept.add(run.run_id)
    limit = policy.older_than.total_seconds() if policy.older_than is not None else None
    return [
        r for r in finished if r.run_id not in kept and (limit is None or age_sec(r, now) > limit)
    ]
