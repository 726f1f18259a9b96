"""The SQLite store and JSONL mirror written by real runs, read back independently."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import run_plan
from planrun.api import RunResult
from planrun.errors import PlanError, UsageError
from planrun.events import decode_event, encode_event

from .helpers import EventLog, make_plan, poll_until, query, sh_step

pytestmark = pytest.mark.anyio


def _mixed_plan() -> dict[str, Any]:
    """Successes, a retried failure, a skip, a cleanup: every event type but aborting."""
    return make_plan(
        [
            sh_step("first", "echo one"),
            sh_step("flaky", "exit 2", depends_on=["first"], retries=1, on_failure="continue"),
            sh_step("bad", "exit 1", depends_on=["first"], on_failure="skip_dependents"),
            sh_step("skipped", "exit 0", depends_on=["bad"]),
            sh_step("last", "echo done", depends_on=["flaky", "skipped"], when="all_done"),
        ]
    )


def _step_state(db: Path, run_id: str, step_id: str) -> str | None:
    """A step's state read from the store, None until its row exists."""
    try:
        rows = query(
            db, "SELECT state FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id)
        )
    except sqlite3.OperationalError:  # the schema is not there yet
        return None
    return str(rows[0]["state"]) if rows else None


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _exists(path: Path) -> bool:
    return path.exists()


def _glob(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.glob(pattern))


def _jsonl(state_dir: Path, run_id: str) -> list[str]:
    return (state_dir / "runs" / run_id / "events.jsonl").read_text().splitlines()


async def test_sqlite_events_and_jsonl_are_identical(state_dir: Path) -> None:
    """events.body and events.jsonl hold the same JSON line for line, seq 1..N gap-free."""
    log = EventLog()
    result = await run_plan(_mixed_plan(), state_dir=state_dir, run_id="events", on_event=log)
    db = state_dir / "runs.db"
    rows = query(db, "SELECT * FROM events WHERE run_id = ? ORDER BY seq", ("events",))
    lines = _jsonl(state_dir, "events")
    assert [r["body"] for r in rows] == lines
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    # The stored bytes are exactly the encoding of the events the engine emitted.
    assert lines == [encode_event(e).decode() for e in log.events]
    for row, line in zip(rows, lines, strict=True):
        event = decode_event(line)
        body = json.loads(line)
        assert row["type"] == body["type"]
        assert row["ts"] == body["ts"]
        assert row["step_id"] == body.get("step_id")
        assert event.run_id == "events"
    types = [json.loads(line)["type"] for line in lines]
    assert types[0] == "run_started"
    assert types[-1] == "run_finished"
    assert {"attempt_started", "attempt_finished", "retry_scheduled", "step_finished"} <= set(types)
    (run,) = query(db, "SELECT last_seq FROM runs WHERE run_id = ?", ("events",))
    assert run["last_seq"] == len(lines)
    assert result.steps["flaky"].attempts[-1].number == 2


def _check_rows_match(state_dir: Path, result: RunResult) -> None:
    db = state_dir / "runs.db"
    (run,) = query(db, "SELECT * FROM runs WHERE run_id = ?", (result.run_id,))
    assert run["plan_id"] == result.plan_id
    assert run["state"] == result.state.value
    assert run["exit_code"] == result.exit_code
    assert run["reason"] == result.reason
    assert run["ended_at"] == result.ended_at
    assert run["step_count"] == len(result.steps)
    assert run["owner_pid"] == os.getpid()
    steps = query(db, "SELECT * FROM steps WHERE run_id = ? ORDER BY position", (result.run_id,))
    assert [s["step_id"] for s in steps] == list(result.steps)
    for row in steps:
        step = result.steps[row["step_id"]]
        assert row["state"] == step.state.value, step.id
        assert row["attempts"] == len(step.attempts), step.id
        assert row["exit_code"] == step.exit_code, step.id
        assert row["reason"] == step.reason, step.id
        assert row["started_at"] == (step.attempts[0].started_at if step.attempts else None)
        assert row["ended_at"] is not None
    attempts = query(db, "SELECT * FROM attempts WHERE run_id = ?", (result.run_id,))
    expected = {(s.id, a.number): a for s in result.steps.values() for a in s.attempts}
    assert {(a["step_id"], a["attempt"]) for a in attempts} == set(expected)
    for row in attempts:
        attempt = expected[(row["step_id"], row["attempt"])]
        assert row["state"] == attempt.state.value
        assert row["exit_code"] == attempt.exit_code
        assert row["pid"] == attempt.pid
        assert row["log_path"] == attempt.log_path
        assert row["started_at"] == attempt.started_at
        assert row["ended_at"] == attempt.ended_at
        assert row["error"] == attempt.error
        assert row["duration_sec"] is not None


async def test_rows_match_the_run_result(state_dir: Path) -> None:
    """The runs, steps and attempts rows agree with the returned RunResult."""
    result = await run_plan(_mixed_plan(), state_dir=state_dir)
    assert result.steps["skipped"].attempts == []
    assert len(result.steps["flaky"].attempts) == 2
    _check_rows_match(state_dir, result)
    # A second run in the same store is recorded separately.
    second = await run_plan(
        make_plan([sh_step("only", "exit 3", critical=False)]), state_dir=state_dir
    )
    _check_rows_match(state_dir, second)
    _check_rows_match(state_dir, result)
    runs = query(state_dir / "runs.db", "SELECT run_id FROM runs ORDER BY run_id")
    assert [r["run_id"] for r in runs] == sorted([result.run_id, second.run_id])


async def test_second_connection_reads_a_running_run(tmp_path: Path, state_dir: Path) -> None:
    """A plain sqlite3 connection reads the run's rows while the run is still going."""
    release = tmp_path / "release"
    plan = make_plan(
        [
            sh_step("done", "exit 0"),
            # Blocks until the test has read the store (at most ~20 s).
            sh_step(
                "blocked",
                'i=0; while [ ! -e "$1" ] && [ $i -lt 400 ]; do i=$((i+1)); sleep 0.05; done',
                str(release),
                depends_on=["done"],
            ),
        ]
    )
    db = state_dir / "runs.db"
    results: list[RunResult] = []

    async def run() -> None:
        results.append(await run_plan(plan, state_dir=state_dir, run_id="live"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            await poll_until(lambda: _step_state(db, "live", "blocked") == "running")
        (run_row,) = await anyio.to_thread.run_sync(
            query, db, "SELECT state, ended_at FROM runs WHERE run_id = 'live'"
        )
        steps = await anyio.to_thread.run_sync(
            query, db, "SELECT step_id, state FROM steps WHERE run_id = 'live'"
        )
        events = await anyio.to_thread.run_sync(
            query, db, "SELECT type FROM events WHERE run_id = 'live' ORDER BY seq"
        )
        release.touch()
    assert run_row == {"state": "running", "ended_at": None}
    assert {s["step_id"]: s["state"] for s in steps} == {"done": "succeeded", "blocked": "running"}
    assert "run_finished" not in [e["type"] for e in events]
    assert results[0].ok


async def test_step_started_at_is_its_first_attempt_when_batched(
    tmp_path: Path, state_dir: Path
) -> None:
    """steps.started_at is the first attempt's start even when the recorder writes several
    attempts of the step in one batch (forced by holding the database's write lock)."""
    release, stamps = tmp_path / "release", tmp_path / "stamps"
    plan = make_plan(
        [
            sh_step(
                "gate",
                'i=0; while [ ! -e "$1" ] && [ $i -lt 400 ]; do i=$((i+1)); sleep 0.05; done',
                str(release),
            ),
            sh_step(
                "flaky",
                'echo x >> "$1"; exit 1',
                str(stamps),
                depends_on=["gate"],
                retries=2,
                critical=False,
            ),
        ]
    )
    db = state_dir / "runs.db"
    results: list[RunResult] = []

    async def run() -> None:
        results.append(await run_plan(plan, state_dir=state_dir, run_id="batched"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with anyio.fail_after(20):
            await poll_until(lambda: _step_state(db, "batched", "gate") == "running")
        lock = sqlite3.connect(db, timeout=10, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")  # the recorder now waits (busy_timeout 5 s)
            release.touch()
            with anyio.fail_after(4):
                await poll_until(lambda: _lines(stamps) >= 3)
            await anyio.sleep(0.1)
            lock.execute("COMMIT")
        finally:
            lock.close()
    (result,) = results
    flaky = result.steps["flaky"]
    assert len(flaky.attempts) == 3
    (row,) = query(db, "SELECT * FROM steps WHERE run_id = 'batched' AND step_id = 'flaky'")
    assert row["attempts"] == 3
    assert row["started_at"] == flaky.attempts[0].started_at


def _snapshot(state_dir: Path) -> dict[str, Any]:
    db = state_dir / "runs.db"
    tables = {t: query(db, f"SELECT * FROM {t}") for t in ("runs", "steps", "attempts", "events")}  # noqa: S608
    files = {
        str(p.relative_to(state_dir)): p.read_bytes()
        for p in sorted((state_dir / "runs").rglob("*"))
        if p.is_file()
    }
    return {"tables": tables, "files": files}


async def test_reusing_a_run_id_raises_and_changes_nothing(tmp_path: Path, state_dir: Path) -> None:
    """A second run with the same run_id raises UsageError, runs nothing, writes nothing."""
    marker = tmp_path / "marker"
    plan = make_plan([sh_step("touch", 'echo "$PLANRUN_ATTEMPT" >> "$1"', str(marker))])
    first = await run_plan(plan, state_dir=state_dir, run_id="same")
    assert first.ok
    before = _snapshot(state_dir)
    other = make_plan([sh_step("other", 'echo other >> "$1"', str(marker))], plan_id="other")
    for again in (plan, other):
        with pytest.raises(UsageError, match="already exists"):
            await run_plan(again, state_dir=state_dir, run_id="same")
    assert _snapshot(state_dir) == before
    assert marker.read_text() == "1\n"


async def test_invalid_run_id_is_a_usage_error(state_dir: Path) -> None:
    """A run id that is not a safe file name is refused before anything is written."""
    plan = make_plan([sh_step("s", "exit 0")])
    for bad in ("../escape", "", "-leading-dash", "a/b"):
        with pytest.raises(UsageError):
            await run_plan(plan, state_dir=state_dir, run_id=bad)
    assert not _exists(state_dir)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so file modes cannot come from the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
async def test_file_modes_are_private(state_dir: Path) -> None:
    """The state dir and its directories are 0700; the database, JSONL and logs 0600."""
    result = await run_plan(
        make_plan([sh_step("a", "echo a", retries=1, success_exit_codes=[1])]),
        state_dir=state_dir,
        run_id="modes",
    )
    run_dir = state_dir / "runs" / "modes"

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    for directory in (state_dir, state_dir / "runs", run_dir, run_dir / "logs"):
        assert mode(directory) == 0o700, directory
    logs = _glob(run_dir / "logs", "*")
    assert [p.name for p in logs] == ["a.1.log", "a.2.log"]
    db_files = _glob(state_dir, "runs.db*")
    assert state_dir / "runs.db" in db_files
    for path in [*db_files, run_dir / "events.jsonl", *logs]:
        assert mode(path) == 0o600, path
    assert len(result.steps["a"].attempts) == 2


async def test_concurrent_runs_share_one_store(state_dir: Path) -> None:
    """Three runs at once in one (existing) state dir are each recorded completely."""
    first = await run_plan(make_plan([sh_step("init", "exit 0")]), state_dir=state_dir)
    results: dict[str, RunResult] = {first.run_id: first}

    async def run(run_id: str) -> None:
        steps = [sh_step(f"s{i}", "echo $PLANRUN_STEP_ID") for i in range(8)]
        steps.append(sh_step("fails", "exit 1", retries=2, critical=False))
        results[run_id] = await run_plan(make_plan(steps), state_dir=state_dir, run_id=run_id)

    async with anyio.create_task_group() as tg:
        for run_id in ("r1", "r2", "r3"):
            tg.start_soon(run, run_id)
    assert sorted(results) == sorted([first.run_id, "r1", "r2", "r3"])
    for run_id, result in results.items():
        assert result.ok
        _check_rows_match(state_dir, result)
        lines = _jsonl(state_dir, run_id)
        rows = query(
            state_dir / "runs.db",
            "SELECT body FROM events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        assert [r["body"] for r in rows] == lines
        assert all(json.loads(line)["run_id"] == run_id for line in lines)


async def test_opening_a_fresh_store_waits_for_another_writer(state_dir: Path) -> None:
    """A run on a fresh store waits for a brief write lock held by another connection (as
    a concurrently starting run holds one) instead of failing with StoreError."""
    _private_empty_db(state_dir)
    results: list[RunResult] = []

    async def run() -> None:
        plan = make_plan([sh_step("s", "exit 0")])
        results.append(await run_plan(plan, state_dir=state_dir, run_id="fresh"))

    holder = sqlite3.connect(state_dir / "runs.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await anyio.sleep(0.3)
            holder.execute("COMMIT")
    finally:
        holder.close()
    assert results[0].ok


def _private_empty_db(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "runs.db").touch(mode=0o600)


async def test_invalid_plan_writes_nothing(tmp_path: Path, state_dir: Path) -> None:
    """An invalid plan raises PlanError before any file is written or process started."""
    marker = tmp_path / "marker"
    plan = make_plan(
        [
            sh_step("ok", 'touch "$1"', str(marker)),
            sh_step("broken", "exit 0", depends_on=["missing"]),
        ]
    )
    with pytest.raises(PlanError, match="unknown dependency 'missing'"):
        await run_plan(plan, state_dir=state_dir)
    assert not _exists(state_dir)
    assert not _exists(marker)
