"""The durability setting reaches SQLite: ``synchronous`` of the writer connection."""

from __future__ import annotations

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
