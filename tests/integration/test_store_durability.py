"""The durability setting reaches SQLite: ``synchronous`` of the writer connection."""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from planrun import run_plan
from planrun.errors import UsageError
from planrun.model import Plan, Step
from planrun.options import Durability, RunOptions
from planrun.store import sqlite as store_sqlite
from planrun.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

#: PRAGMA synchronous values.
_NORMAL, _FULL = 1, 2


async def _synchronous(state_dir: Path, **kwargs: str) -> int:
    async with SqliteStore.open(state_dir, **kwargs) as store:
        cursor = await store._db.execute("PRAGMA synchronous")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_the_writer_connection_syncs_as_asked(tmp_path: Path) -> None:
    assert await _synchronous(tmp_path / "a") == _FULL
    assert await _synchronous(tmp_path / "b", durability="normal") == _NORMAL
    assert await _synchronous(tmp_path / "c", durability="full") == _FULL


def test_options_take_the_setting_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = Plan(plan_id="p", steps=[Step(id="s", command="true")])
    monkeypatch.delenv("PLANRUN_SYNC", raising=False)
    assert RunOptions().resolve(plan).durability is Durability.FULL
    monkeypatch.setenv("PLANRUN_SYNC", "normal")
    assert RunOptions().resolve(plan).durability is Durability.NORMAL
    assert RunOptions(durability="full").resolve(plan).durability is Durability.FULL


async def test_run_plan_opens_its_store_with_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = store_sqlite.SqliteStore.open.__func__  # type: ignore[attr-defined]

    def spy(cls: type[SqliteStore], state_dir: Path, *, durability: str = "full") -> object:
        seen.append(durability)
        return real(cls, state_dir, durability=durability)

    monkeypatch.setattr(store_sqlite.SqliteStore, "open", classmethod(spy))
    plan = {"plan_id": "p", "steps": [{"id": "s", "command": "true"}]}
    options = RunOptions(durability=Durability.NORMAL)
    assert (await run_plan(plan, state_dir=tmp_path, options=options)).ok
    assert seen == ["normal"]


async def test_a_bad_setting_is_a_usage_error_before_anything_is_written(tmp_path: Path) -> None:
    plan = {"plan_id": "p", "steps": [{"id": "s", "command": "true"}]}
    with pytest.raises(UsageError, match="durability must be 'full' or 'normal'") as caught:
        await run_plan(plan, state_dir=tmp_path / "st", options=RunOptions(durability="fast"))
    assert caught.value.field == "durability"
    assert not (tmp_path / "st").exists()


@pytest.fixture
def wal_syncs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the paced syncs of the WAL ran (``time.time()``), each a real ``fdatasync``."""
    seen: list[float] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        seen.append(time.time())

    monkeypatch.setattr(os, "fdatasync", spy)
    return seen


def _chain(n: int, last: str = "true") -> dict[str, object]:
    steps: list[dict[str, object]] = [{"id": "s1", "command": "true"}]
    steps += [{"id": f"s{i}", "command": "true", "depends_on": [f"s{i - 1}"]} for i in range(2, n)]
    steps.append(
        {"id": f"s{n}", "command": "sh", "args": ["-c", last], "depends_on": [f"s{n - 1}"]}
    )
    return {"plan_id": "p", "steps": steps}


async def test_full_syncs_a_runs_batches_at_a_pace_and_its_end_at_once(
    tmp_path: Path, wal_syncs: list[float]
) -> None:
    """``full``: a run's batches are committed without a sync each; the WAL is synced
    at most every ``SYNC_EVERY_SEC`` while they come, during a quiet spell once the
    sync is due (a step still running: its start is on disk long before its end), and
    after the last event, before ``run_plan`` returns."""
    from planrun.store.walsync import SYNC_EVERY_SEC

    result = await run_plan(_chain(30, "sleep 1"), state_dir=tmp_path)
    returned = time.time()
    assert result.ok
    last = result.steps["s30"].attempts[-1]
    started, ended = (_epoch(last.started_at), _epoch(last.ended_at))
    assert any(started < t < started + 0.5 for t in wal_syncs), (started, wal_syncs)
    assert ended <= wal_syncs[-1] <= returned
    paced = wal_syncs[:-1]  # (the last one is at the end, whenever that comes)
    gaps = [b - a for a, b in itertools.pairwise(paced)]
    assert min(gaps) >= SYNC_EVERY_SEC * 0.9, gaps
    async with SqliteStore.open(tmp_path) as store:
        cursor = await store._db.execute("SELECT count(*) FROM events")
        row = await cursor.fetchone()
    assert row is not None
    assert len(wal_syncs) < int(row[0]), "a sync per event: not paced"


async def test_normal_makes_no_paced_sync(tmp_path: Path, wal_syncs: list[float]) -> None:
    options = RunOptions(durability=Durability.NORMAL)
    assert (await run_plan(_chain(5), state_dir=tmp_path, options=options)).ok
    assert wal_syncs == []


def _epoch(ts: str | None) -> float:
    assert ts is not None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
