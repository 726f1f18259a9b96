"""The run store's surface: what the crash sweep asks it (no SQL outside the store),
its errors in library terms (typed, carrying what a front end's hint needs), and its
event projection (the rows a batch of events writes do not depend on the batching)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from planrun import run_plan
from planrun.errors import LockConflict, NoRunStore, ResumeConflict, RunExists, UsageError
from planrun.events import event_type
from planrun.model import RunState
from planrun.store.reader import RunReader
from planrun.store.sqlite import SqliteStore

from .helpers import make_plan, query, sh_step

pytestmark = pytest.mark.anyio


def _outputs_plan() -> dict[str, Any]:
    """A retried step, outputs, a skip, a failure and a spawn error: every row column
    gets a value."""
    return make_plan(
        [
            sh_step("first", 'echo "sha=abc" >> "$PLANRUN_OUTPUT"'),
            sh_step(
                "flaky",
                '[ "$PLANRUN_ATTEMPT" = 2 ] || exit 3; echo "n=2" >> "$PLANRUN_OUTPUT"',
                depends_on=["first"],
                retries=1,
            ),
            sh_step("bad", "exit 1", depends_on=["first"], on_failure="skip_dependents"),
            sh_step("skipped", "exit 0", depends_on=["bad"]),
            {"id": "missing", "command": "/nonexistent/planrun-test", "on_failure": "continue"},
        ]
    )


async def test_run_states_and_runs_in_state_answer_the_sweep(state_dir: Path) -> None:
    """``run_states`` gives the state of each known id (unknown ids left out) and
    ``runs_in_state`` the records of the runs among the ids in that state."""
    ok = await run_plan(make_plan([sh_step("s", "exit 0")]), state_dir=state_dir, run_id="ok")
    bad = await run_plan(make_plan([sh_step("s", "exit 1")]), state_dir=state_dir, run_id="bad")
    assert ok.state is RunState.SUCCEEDED
    assert bad.state is RunState.FAILED
    async with SqliteStore.open(state_dir) as store:
        states = await store.run_states({"ok", "bad", "nope", "o'k", "%"})
        assert states == {"ok": RunState.SUCCEEDED, "bad": RunState.FAILED}
        assert await store.run_states(set()) == {}
        failed = await store.runs_in_state(RunState.FAILED, ["ok", "bad", "nope"])
        assert [(r.run_id, r.state, r.exit_code) for r in failed] == [("bad", RunState.FAILED, 1)]
        assert await store.runs_in_state(RunState.RUNNING, ["ok", "bad"]) == []
        assert await store.runs_in_state(RunState.FAILED, ["ok"]) == []
    async with RunReader.open(state_dir) as reader:
        assert failed == [await reader.get_run("bad")]


async def test_store_has_no_connection_to_hand_out(state_dir: Path) -> None:
    """Callers ask the store; its connection is not part of its surface."""
    async with SqliteStore.open(state_dir) as store:
        assert not hasattr(store, "db")


async def test_a_taken_run_id_is_a_typed_error_in_library_terms(state_dir: Path) -> None:
    """``RunExists`` (a ``UsageError``) carries the run id; the message names no flag."""
    plan = make_plan([sh_step("s", "exit 0")])
    assert (await run_plan(plan, state_dir=state_dir, run_id="same")).ok
    with pytest.raises(RunExists) as info:
        await run_plan(plan, state_dir=state_dir, run_id="same")
    assert isinstance(info.value, UsageError)
    assert info.value.run_id == "same"
    assert str(info.value) == "run id 'same' already exists"


async def test_no_store_is_a_typed_error_in_library_terms(tmp_path: Path) -> None:
    """``NoRunStore`` carries the path looked at; the message names no flag."""
    with pytest.raises(NoRunStore) as info:
        async with RunReader.open(tmp_path):
            pass
    assert info.value.path == str(tmp_path / "runs.db")
    assert str(info.value) == f"no run store at {tmp_path / 'runs.db'}"
    assert os.listdir(tmp_path) == []


async def test_a_resume_that_lost_the_race_is_a_typed_lock_conflict(state_dir: Path) -> None:
    """A claim whose expected last seq is stale raises ``ResumeConflict`` (a
    ``LockConflict``) with the run id, and leaves the run as it was."""
    plan = make_plan([sh_step("s", "exit 1")])
    await run_plan(plan, state_dir=state_dir, run_id="r")
    async with RunReader.open(state_dir) as reader:
        before = await reader.get_run("r")
    assert before is not None
    async with SqliteStore.open(state_dir) as store:
        with pytest.raises(ResumeConflict) as info:
            await store.claim_run(
                "r",
                variables={},
                plan_json=None,
                secret_names=(),
                steps=[("s", "s")],
                rerun=["s"],
                owner_kind="api",
                expected_last_seq=before.last_seq - 1,
            )
    assert isinstance(info.value, LockConflict)
    assert info.value.run_id == "r"
    assert str(info.value) == "run r was resumed by another process since this resume read it"
    async with RunReader.open(state_dir) as reader:
        assert await reader.get_run("r") == before


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every steps and attempts row, and the run columns events set."""
    conn = sqlite3.connect(db)
    try:
        return {
            "steps": conn.execute("SELECT * FROM steps ORDER BY step_id").fetchall(),
            "attempts": conn.execute("SELECT * FROM attempts ORDER BY step_id, attempt").fetchall(),
            "runs": conn.execute(
                "SELECT run_id, state, exit_code, reason, ended_at, last_seq FROM runs"
            ).fetchall(),
            "events": conn.execute("SELECT * FROM events ORDER BY seq").fetchall(),
        }
    finally:
        conn.close()


async def test_rows_do_not_depend_on_how_events_were_batched(tmp_path: Path) -> None:
    """A run's events replayed as one batch and as one batch per event write the same
    rows as the recorder did: the projection merges changes per key like the SQL does."""
    original = tmp_path / "original"
    result = await run_plan(_outputs_plan(), state_dir=original, run_id="r")
    async with RunReader.open(original) as reader:
        events = await reader.get_events("r")
        bodies = [b.encode() for b in await reader.get_event_bodies("r")]
        run = await reader.get_run("r")
    assert run is not None
    assert result.state is RunState.FAILED
    kinds = [event_type(e) for e in events]
    assert kinds.count("attempt_started") == 5  # flaky twice; first, bad, missing once
    assert {"attempt_finished", "retry_scheduled", "step_finished", "run_finished"} <= set(kinds)
    steps = [(sid, sid) for sid in ("first", "flaky", "bad", "skipped", "missing")]
    for name, batches in (
        ("one", [slice(0, len(events))]),
        ("each", [slice(i, i + 1) for i in range(len(events))]),
    ):
        replay = tmp_path / name
        async with SqliteStore.open(replay) as store:
            await store.create_run("r", run.plan_id, None, {}, steps, run.started_at)
            for part in batches:
                await store.write_batch(events[part], bodies[part])
        assert _tables(replay / "runs.db") == _tables(original / "runs.db"), name
    _check_rows(original / "runs.db")


def _check_rows(db: Path) -> None:
    """What the events say, in the rows: first attempts' start, outputs, errors."""
    steps = {row["step_id"]: row for row in query(db, "SELECT * FROM steps")}
    attempts = {
        (row["step_id"], row["attempt"]): row for row in query(db, "SELECT * FROM attempts")
    }
    assert steps["flaky"]["state"] == "succeeded"
    assert steps["flaky"]["attempts"] == 2
    assert steps["flaky"]["started_at"] == attempts[("flaky", 1)]["started_at"]
    assert steps["flaky"]["ended_at"] >= attempts[("flaky", 2)]["ended_at"]
    assert json.loads(steps["flaky"]["outputs"]) == {"n": "2"}
    assert json.loads(steps["first"]["outputs"]) == {"sha": "abc"}
    assert attempts[("flaky", 1)]["exit_code"] == 3
    assert attempts[("flaky", 1)]["state"] == "failed"
    assert attempts[("flaky", 2)]["pid"] is not None
    assert "command not found" in attempts[("missing", 1)]["error"]
    assert attempts[("missing", 1)]["duration_sec"] is not None
    assert (steps["bad"]["state"], steps["bad"]["exit_code"]) == ("failed", 1)
    assert steps["skipped"]["state"] == "skipped"
    assert steps["skipped"]["reason"]
