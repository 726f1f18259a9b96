"""What makes a trigger fire: the clock (``schedule``, ``every_sec``), file changes
(``watch``, through ``watchfiles.awatch``: inotify) and a branch's commit (``git``,
``git rev-parse`` every ``poll_sec``). Each is one task; each firing goes to
:class:`~planrun.serve.runner.PlanRunner.offer` with what triggered it."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from .. import triggers as arith
from ..model_triggers import Trigger

__all__ = ["Fire", "git_head", "glob_regex", "run_git", "run_timed", "run_watch", "timed_info"]

#: ``fire(info, slot)``: offer a firing (``slot``: what ``trigger_state`` stores).
Fire = Callable[[dict[str, Any], str | None], Awaitable[str]]
Clock = Callable[[], datetime]

#: A long sleep wakes at least this often to look at the wall clock again (it may
#: have jumped: a suspend, an NTP step).
_MAX_NAP_SEC = 30.0


def _now() -> datetime:
    return datetime.now(UTC)


def timed_info(trigger: Trigger, key: str, slot: datetime) -> dict[str, Any]:
    """The record of a ``schedule``/``every_sec`` firing."""
    info: dict[str, Any] = {"kind": str(arith.kind_of(trigger)), "key": key}
    info["slot"] = arith.format_slot(slot)
    if trigger.schedule is not None:
        info["schedule"] = trigger.schedule
        info["timezone"] = trigger.timezone or "UTC"
    else:
        info["every_sec"] = trigger.every_sec
    return info


async def run_timed(
    trigger: Trigger,
    key: str,
    last: datetime | None,
    fire: Fire,
    log: Callable[[str], None],
    what: str,
    clock: Clock = _now,
) -> None:
    """Fire the slot due now (see :func:`~planrun.triggers.due_slot`), then each next
    slot when it comes, forever."""
    due = arith.due_slot(trigger, clock(), last)
    if due is not None:
        await fire(timed_info(trigger, key, due), arith.format_slot(due))
        last = due
    while True:
        now = clock()
        slot = arith.next_fire(trigger, max(now, last) if last is not None else now)
        if slot is None:
            log(f"{what}: no further fire time")
            return
        if trigger.schedule is not None:
            log(f"{what}: next fire at {arith.format_slot(slot)} ({_local(trigger, slot)})")
        await _sleep_until(slot, clock)
        await fire(timed_info(trigger, key, slot), arith.format_slot(slot))
        last = slot


async def _sleep_until(moment: datetime, clock: Clock) -> None:
    """Sleep until the wall clock reaches ``moment``: in naps of at most
    :data:`_MAX_NAP_SEC`, since a monotonic sleep does not follow a clock that jumps."""
    left = (moment - clock()).total_seconds()
    while left > 0:
        await anyio.sleep(min(left, _MAX_NAP_SEC))
        left = (moment - clock()).total_seconds()


def _local(trigger: Trigger, slot: datetime) -> str:
    return slot.astimezone(arith.zone(trigger)).strftime("%Y-%m-%d %H:%M %Z")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over ``/``-separated relative paths: ``*`` and ``?`` stay within one
    name, ``**`` spans directories (``src/**/*.py`` matches ``src/a.py`` and
    ``src/a/b.py``), ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 1)) > i:
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


async def run_watch(
    trigger: Trigger,
    key: str,
    root: Path,
    ignore: Sequence[Path],
    fire: Fire,
    stop: anyio.Event,
) -> None:
    """Fire once per burst of changes to files under ``root`` that match the
    patterns, after ``debounce_sec`` without further changes (``ignore``: the state
    dir and the like, whose writes would trigger the plan's own runs)."""
    from watchfiles import DefaultFilter, awatch  # imported only by a serve that watches

    patterns = [glob_regex(p) for p in trigger.watch or []]
    quiet = max(50, int(trigger.debounce_sec * 1000))
    watch_filter = DefaultFilter(ignore_paths=[str(p.resolve()) for p in ignore])  # as the root is
    async for changes in awatch(
        root,
        watch_filter=watch_filter,
        step=quiet,
        debounce=max(1600, quiet * 5),
        stop_event=stop,
        rust_timeout=500,  # how soon a cancelled watch notices
    ):
        paths = sorted({rel for _, p in changes if (rel := _relative(p, root)) is not None})
        matched = [p for p in paths if any(rx.match(p) for rx in patterns)]
        if matched:
            await fire({"kind": "watch", "key": key, "root": str(root), "paths": matched}, None)


def _relative(path: str, root: Path) -> str | None:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return None


async def git_head(repo: Path, branch: str) -> tuple[str | None, str]:
    """The commit ``refs/heads/BRANCH`` of ``repo`` points to, or (None, why)."""
    argv = ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = await anyio.run_process(
            [*argv, f"refs/heads/{branch}^{{commit}}"], check=False, env=env
        )
    except OSError as exc:
        return None, f"cannot run git: {exc.strerror or exc}"
    sha = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not sha:
        err = done.stderr.decode(errors="replace").strip()
        return None, err or f"no branch {branch!r} in {repo}"
    return sha, ""


async def run_git(
    trigger: Trigger,
    key: str,
    repo: Path,
    last: str | None,
    fire: Fire,
    remember: Callable[[str], Awaitable[None]],
    log: Callable[[str], None],
    what: str,
    *,
    once: bool = False,
) -> None:
    """Look at the branch every ``poll_sec``; fire when it points to another commit
    than the last one seen (the run gets ``old_sha`` and ``sha``). The first look
    with nothing stored only remembers the commit."""
    assert trigger.git is not None
    branch, complained = trigger.git.branch, ""
    while True:
        sha, why = await git_head(repo, branch)
        if sha is None and why != complained:
            log(f"{what}: {why}")
        complained = why
        if sha is not None and last is None:
            log(f"{what}: {branch} is at {sha[:12]}; a new commit fires")
            await remember(sha)
        elif sha is not None and sha != last:
            info = {"kind": "git", "key": key, "repo": str(repo), "branch": branch}
            if await fire({**info, "sha": sha, "old_sha": last}, sha) == "skipped":
                sha = None  # a run was running: offered again at the next poll
        elif once:
            log(f"{what}: {branch} did not move ({sha[:12] if sha else 'unknown'})")
        last = sha if sha is not None else last
        if once:
            return
        await anyio.sleep(trigger.git.poll_sec)
