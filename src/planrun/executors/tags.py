"""Mark every process of an attempt, and find those processes again through ``/proc``.

A process group is not a containment boundary (a descendant that calls ``setsid()``
leaves it), so every step process carries its attempt in its environment:
``PLANRUN_RUN_ID``, ``PLANRUN_STEP_ID``, ``PLANRUN_ATTEMPT``, ``PLANRUN_RUN_KEY``
(``RUN_ID@SCOPE``: the run id is unique only within its state dir), ``PLANRUN_ATTEMPT_TAG``
(``RUN_KEY/step/attempt``) and ``PLANRUN_RUN_TREE`` (the attempts of the enclosing runs, so
the steps of a planrun started inside a step are found too: see ``proc.RUN_TREE``).

Contract: :func:`step_env` builds that environment and nothing else;
:func:`tagged_processes`, :func:`processes_of_runs` and :class:`Scanner` only read
``/proc`` (they never signal). A pid they return may have exited since, or been
reused: callers that signal it first hold it by pidfd and check :func:`still_tagged`,
or accept that risk only for a process that carried the tag a moment ago.
"""

from __future__ import annotations

import functools
import os
import time

import msgspec

from ..ports import AttemptSpec
from ..proc import RUN_KEY, RUN_TREE, child_tree, environments, runs_of, tree_of

__all__ = [
    "Scanner",
    "Tagged",
    "attempt_tag",
    "processes_of_runs",
    "step_env",
    "still_tagged",
    "tagged_processes",
]

_ATTEMPT_TAG = b"PLANRUN_ATTEMPT_TAG="
_RUN_KEY_B = RUN_KEY.encode()
_RUN_TREE_B = RUN_TREE.encode()


def attempt_tag(run_key: str, step_id: str, attempt: int) -> bytes:
    """The environment entry that marks every process of one attempt (``run_key``:
    ``RUN_ID@SCOPE``, so equal run ids of two state dirs never share a tag)."""
    return f"PLANRUN_ATTEMPT_TAG={run_key}/{step_id}/{attempt}".encode()


def _planrun_environ() -> dict[bytes, bytes]:
    """A copy of planrun's environment as it is now, as bytes (what ``execve`` takes).

    Taken per attempt, so a change to ``os.environ`` between attempts reaches the next
    one, as it always did; but copied at C speed from the bytes mapping behind
    ``os.environ`` (a fraction of a microsecond), where iterating ``os.environ`` decodes
    every entry and ``Popen`` then encodes it back (about 0.2 ms an attempt).
    """
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return dict(os.environb)  # not CPython on POSIX: the same, slower


@functools.lru_cache(maxsize=64)
def _tree_prefix(inherited: str | None) -> str:
    """``child_tree`` for an attempt's value, split where the attempt goes (the part
    before it depends only on planrun's own ``PLANRUN_RUN_TREE``)."""
    return child_tree(inherited, "\0").removesuffix("\0")


def step_env(spec: AttemptSpec) -> tuple[dict[bytes, bytes], bytes]:
    """The environment of an attempt's leader, as bytes (planrun's own, without
    ``spec.hidden_env``, then the step's, then the markers above, which win), and
    the attempt's tag."""
    env = _planrun_environ()
    for name in spec.hidden_env:
        env.pop(os.fsencode(name), None)
    fsencode = os.fsencode
    for key, text in spec.env.items():
        env[fsencode(key)] = fsencode(text)
    tag = attempt_tag(spec.key, spec.step_id, spec.attempt)
    value = tag.partition(b"=")[2]
    env[b"PLANRUN_RUN_ID"] = fsencode(spec.run_id)
    env[b"PLANRUN_STEP_ID"] = fsencode(spec.step_id)
    env[b"PLANRUN_ATTEMPT"] = str(spec.attempt).encode()
    env[_RUN_KEY_B] = fsencode(spec.key)
    env[_ATTEMPT_TAG[:-1]] = value
    env[_RUN_TREE_B] = _tree_prefix(os.environ.get(RUN_TREE)).encode() + value
    return env, tag


def tagged_processes(tag: bytes) -> list[int]:
    """Pids of live processes whose environment holds ``tag`` (a ``/proc`` scan)."""
    return [pid for pid, environ in environments() if tag in environ]


def processes_of_runs(run_keys: set[str]) -> list[int]:
    """Pids of live processes that belong to one of ``run_keys`` (``RUN_ID@SCOPE``), as
    their own run or as an ancestor (the steps of nested runs: see ``proc.RUN_TREE``)."""
    return [pid for pid, environ in environments() if run_keys.intersection(runs_of(environ))]


def still_tagged(pid: int, tag: bytes) -> bool:
    """Does ``pid`` still carry ``tag`` (and not a reused pid)?"""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return tag in f.read().split(b"\0")
    except OSError:
        return False


class Tagged(msgspec.Struct, frozen=True):
    """What one ``/proc`` scan found: pids by attempt tag, and by ancestor attempt."""

    taken_at: float
    by_tag: dict[bytes, list[int]]
    by_ancestor: dict[str, list[int]]


class Scanner:
    """``/proc`` scans shared by the attempts being stopped at the same moment.

    Cancelling a run stops every attempt at once; one scan of every process's
    environment per attempt would be quadratic, so a scan taken at or after the
    moment a caller asks about is reused.
    """

    def __init__(self) -> None:
        self._last: Tagged | None = None

    def since(self, moment: float) -> Tagged:
        """A scan taken no earlier than ``moment`` (``time.monotonic()``)."""
        if self._last is None or self._last.taken_at < moment:
            self._last = self._scan()
        return self._last

    @staticmethod
    def _scan() -> Tagged:
        taken_at = time.monotonic()
        by_tag: dict[bytes, list[int]] = {}
        by_ancestor: dict[str, list[int]] = {}
        for pid, environ in environments():
            for item in environ:
                if item.startswith(_ATTEMPT_TAG):
                    by_tag.setdefault(item, []).append(pid)
            for ancestor in tree_of(environ)[:-1]:
                by_ancestor.setdefault(ancestor, []).append(pid)
        return Tagged(taken_at, by_tag, by_ancestor)
