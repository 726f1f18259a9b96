"""State files that cannot be redirected (issue 11, finding 3, the store's side): a
symbolic link planted in the state dir (at ``events.jsonl``, a run dir, ``logs/``,
``runs.db`` and its WAL, ``runs/``) is refused with a message naming it (exit 1: the
run store cannot be used), and the link's target keeps its content and its mode."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ._cli import planrun, query, sh, write_json
from .test_cli_crash import _kill_mid_run

RUN_ID = "r-links"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _snapshot(target: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``target`` (itself included): mode, and bytes for files."""
    found = {".": (_mode(target), target.read_bytes() if target.is_file() else None)}
    if target.is_dir():
        for path in sorted(target.rglob("*")):
            found[str(path.relative_to(target))] = (
                _mode(path),
                path.read_bytes() if path.is_file() else None,
            )
    return found


def _failed_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run that failed (its step waits for ``gate``); its state dir and plan."""
    state = tmp_path / "state"
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "links", "steps": [sh("a", f"echo out; test -e '{tmp_path / 'gate'}'")]},
    )
    first = planrun("run", plan, "--run-id", RUN_ID, "--state-dir", state, "--plain", cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    (tmp_path / "gate").touch()
    return state, plan


def _victim_file(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    return victim


def _victim_dir(tmp_path: Path, like: Path | None = None) -> Path:
    """A directory outside the state dir (0755), a copy of ``like`` if given."""
    victim = tmp_path / "victim-dir"
    if like is not None:
        shutil.copytree(like, victim)
    else:
        victim.mkdir()
        (victim / "keep.txt").write_bytes(b"precious\n")
    for path in [victim, *victim.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return victim


def _replace_with_link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(target)


def _assert_refused(result: subprocess.CompletedProcess[str], link: Path) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{link} is a symbolic link" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- resume: events.jsonl, the run dir, logs/ --------------------------------------


def _plant_events(state: Path, tmp_path: Path) -> tuple[Path, Path]:
    link = state / "runs" / RUN_ID / "events.jsonl"
    victim = _victim_file(tmp_path)
    _replace_with_link(link, victim)
    return link, victim


def _plant_run_dir(state: Path, tmp_path: Path) -> tuple[Path, Path]:
    link = state / "runs" / RUN_ID
    victim = _victim_dir(tmp_path, like=link)
    _replace_with_link(link, victim)
    return link, victim


def _plant_logs(state: Path, tmp_path: Path) -> tuple[Path, Path]:
    link = state / "runs" / RUN_ID / "logs"
    victim = _victim_dir(tmp_path, like=link)
    _replace_with_link(link, victim)
    return link, victim


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(_plant_events, id="events.jsonl"),
        pytest.param(_plant_run_dir, id="run-dir"),
        pytest.param(_plant_logs, id="logs-dir"),
    ],
)
def test_resume_refuses_a_planted_link(
    tmp_path: Path, plant: Callable[[Path, Path], tuple[Path, Path]]
) -> None:
    """`resume` of a run whose events.jsonl, run dir or logs/ is a link: exit 1 naming
    the link; the target's content and modes are unchanged; the run is not taken over
    (still failed, no new event); no step ran."""
    state, _ = _failed_run(tmp_path)
    before_run = query(state / "runs.db", "SELECT state, last_seq, owner_pid FROM runs")
    link, victim = plant(state, tmp_path)
    before = _snapshot(victim)
    result = planrun("resume", RUN_ID, "--state-dir", state, "--plain", cwd=tmp_path)
    _assert_refused(result, link)
    assert _snapshot(victim) == before
    assert query(state / "runs.db", "SELECT state, last_seq, owner_pid FROM runs") == before_run
    assert query(state / "runs.db", "SELECT count(*) FROM attempts") == [(1,)]


# --- a new run: its run dir, runs/, runs.db, runs.db-wal ----------------------------


def test_a_dangling_link_as_the_new_run_dir_is_refused(tmp_path: Path) -> None:
    """A dangling link where the new run's directory goes: a clear error (not a
    FileExistsError traceback), nothing created at the link's target, no run row."""
    state = tmp_path / "state"
    (state / "runs").mkdir(parents=True)
    link = state / "runs" / "r-new"
    target = tmp_path / "nowhere"
    link.symlink_to(target)
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    result = planrun("run", plan, "--run-id", "r-new", "--state-dir", state, cwd=tmp_path)
    _assert_refused(result, link)
    assert not os.path.lexists(target)
    assert query(state / "runs.db", "SELECT count(*) FROM runs") == [(0,)]


@pytest.mark.parametrize("name", ["runs", "runs.db", "runs.db-wal", "runs.db-shm"])
@pytest.mark.parametrize("command", ["run", "show"])
def test_a_planted_link_at_the_store_is_refused(tmp_path: Path, name: str, command: str) -> None:
    """runs/, runs.db or its WAL/SHM as a link: `run` and `show` refuse (exit 1 naming
    it) and leave the target's content and mode as they were."""
    state, plan = _failed_run(tmp_path)
    link = state / name
    if name == "runs":
        victim = _victim_dir(tmp_path, like=link)
    else:
        victim = _victim_file(tmp_path)
        if name == "runs.db":
            shutil.copyfile(link, victim)  # a real database: SQLite would happily use it
            victim.chmod(0o644)
    if os.path.lexists(link):
        _replace_with_link(link, victim)
    else:
        link.symlink_to(victim)
    before = _snapshot(victim)
    args = ["run", plan, "--run-id", "r-2"] if command == "run" else ["show", RUN_ID]
    result = planrun(
        *args, "--state-dir", state, "--plain" if command == "run" else "--json", cwd=tmp_path
    )
    _assert_refused(result, link)
    assert _snapshot(victim) == before


# --- crash repair of events.jsonl ---------------------------------------------------


def test_crash_repair_never_writes_through_a_link(tmp_path: Path) -> None:
    """After kill -9, events.jsonl replaced by a link: the reader that marks the run
    crashed refuses to append to it (exit 1 naming it); the target is unchanged."""
    state = _kill_mid_run(tmp_path, "killed-links")
    link = state / "runs" / "killed-links" / "events.jsonl"
    victim = _victim_file(tmp_path)
    _replace_with_link(link, victim)
    before = _snapshot(victim)
    result = planrun("list", "--state-dir", state, cwd=tmp_path)
    _assert_refused(result, link)
    assert _snapshot(victim) == before
    # The crash itself is recorded in the database.
    assert query(state / "runs.db", "SELECT state FROM runs") == [("crashed",)]
