"""``planrun.prune.apply_retention``: what ``planrun serve`` calls after each run of a
plan with ``"retention"``, given a state dir or the store it already has open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from planrun import monitor, run_plan
from planrun.model_triggers import Retention
from planrun.prune import apply_retention
from planrun.records import RunRecord
from planrun.store.sqlite import SqliteStore

from .helpers import make_plan, query, sh_step

pytestmark = pytest.mark.anyio


async def _runs(state_dir: Path, plan_id: str, *run_ids: str) -> None:
    for run_id in run_ids:
        plan = make_plan([sh_step("s", "echo hi")], plan_id=plan_id)
        await run_plan(plan, state_dir=state_dir, run_id=run_id)


def _stored(state_dir: Path) -> list[str]:
    rows = query(state_dir / "runs.db", "SELECT run_id FROM runs ORDER BY run_id")
    return [row["run_id"] for row in rows]


async def test_apply_retention_keeps_the_newest_of_that_plan_only(state_dir: Path) -> None:
    await _runs(state_dir, "p", "p1", "p2", "p3")
    await _runs(state_dir, "q", "q1")
    now = datetime.now(UTC)
    assert await apply_retention(state_dir, "p", Retention(), now=now) == []
    deleted = await apply_retention(state_dir, "p", Retention(keep_last=1), now=now)
    assert deleted == ["p2", "p1"]
    assert _stored(state_dir) == ["p3", "q1"]
    assert sorted(p.name for p in (state_dir / "runs").iterdir()) == ["p3", "q1"]


async def test_apply_retention_through_an_open_store_by_age(state_dir: Path) -> None:
    await _runs(state_dir, "p", "p1", "p2")
    async with SqliteStore.open(state_dir) as store:
        soon = datetime.now(UTC) + timedelta(days=31)
        assert await apply_retention(store, "p", Retention(days=40), now=soon) == []
        deleted = await apply_retention(store, "p", Retention(days=30, keep_last=1), now=soon)
        assert deleted == ["p1"]
    assert _stored(state_dir) == ["p2"]


async def test_apply_retention_on_a_dir_without_a_store_creates_nothing(tmp_path: Path) -> None:
    where = tmp_path / "none"
    now = datetime.now(UTC)
    assert await apply_retention(where, "p", Retention(keep_last=0), now=now) == []
    assert not where.exists()


async def test_a_run_pruned_between_two_reads_is_none_not_an_assertion(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run_and_steps`` and ``progress`` find the run (crash check), then read it in a
    snapshot: a prune in between makes them return None (it was an AssertionError,
    a traceback in ``show``, when runs were never deleted)."""
    await _runs(state_dir, "p", "p1")
    async with monitor.open_session(state_dir) as session:
        found = await session.get_run("p1")
        assert found is not None
        assert await apply_retention(state_dir, "p", Retention(keep_last=0), now=_now()) == ["p1"]

        async def stale(run_id: str, *, check_owner: bool = True) -> RunRecord | None:
            return found  # what the first read saw, before the prune

        monkeypatch.setattr(session, "get_run", stale)
        assert await session.run_and_steps("p1") is None
        assert await session.progress("p1") is None


def _now() -> datetime:
    return datetime.now(UTC)
