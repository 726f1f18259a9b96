"""Run locks (globals.lock) through the real CLI: conflicts exit 3, waiting, stale locks,
release on every exit path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ._cli import PLANRUN, clean_env, planrun, query, read_events, wait_until, write_json


def _plan(tmp: Path, name: str, lock: str | dict[str, str], script: str, **globals_: Any) -> Path:
    return write_json(
        tmp / f"{name}.json",
        {
            "plan_id": name,
            "variables": {"REPO": "repo-a"},
            "globals": {"lock": lock, "kill_grace_sec": 1, **globals_},
            "steps": [{"id": "work", "command": "sh", "args": ["-c", script]}],
        },
    )


def _start(tmp: Path, plan: Path, run_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *PLANRUN,
            "run",
            str(plan),
            "--state-dir",
            str(tmp / "state"),
            "--run-id",
            run_id,
            "--plain",
            *extra,
        ],
        cwd=tmp,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _started(tmp: Path, run_id: str) -> bool:
    try:
        events = read_events(tmp / "state", run_id)
    except OSError:
        return False
    return any(e["type"] == "attempt_started" for e in events)


def _locks(tmp: Path) -> list[tuple[Any, ...]]:
    """(name, run id) of every held lock, from the holder records in the lock files of
    this test's private lock directory (a released lock's record is cleared)."""
    held = []
    for path in sorted(Path(os.environ["PLANRUN_LOCK_DIR"]).glob("*.lock")):
        text = path.read_text()
        if text:
            record = json.loads(text)
            held.append((record["name"], record["run_id"]))
    return held


def test_second_run_exits_3_at_once_and_first_completes(tmp_path: Path) -> None:
    """While a run holds the lock, another run of it exits 3 naming the holder's run and pid."""
    plan = _plan(tmp_path, "merge", "safe-merge-${REPO}", "sleep 1.5; echo done")
    first = _start(tmp_path, plan, "first")
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        began = time.monotonic()
        second = planrun(
            "run", plan, "--state-dir", tmp_path / "state", "--run-id", "second", cwd=tmp_path
        )
        assert second.returncode == 3
        assert time.monotonic() - began < 5
        assert "first" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert "safe-merge-repo-a" in second.stderr
        assert first.wait(timeout=20) == 0
    finally:
        first.kill()
    assert _locks(tmp_path) == []
    runs = [r[0] for r in query(tmp_path / "state" / "runs.db", "SELECT run_id FROM runs")]
    assert runs == ["first"]


def test_wait_runs_the_second_after_the_first(tmp_path: Path) -> None:
    """With on_lock_conflict wait, the second run starts only after the first released it."""
    marks = tmp_path / "marks.txt"
    script = (
        f'echo "start $PLANRUN_RUN_ID" >> {marks}; sleep 1; echo "end $PLANRUN_RUN_ID" >> {marks}'
    )
    plan = _plan(tmp_path, "merge", "L", script, on_lock_conflict="wait")
    first = _start(tmp_path, plan, "first")
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        second = _start(tmp_path, plan, "second")
        assert second.wait(timeout=30) == 0
        assert first.wait(timeout=30) == 0
        assert "waiting for lock 'L'" in (second.stderr.read() if second.stderr else "")
    finally:
        first.kill()
    assert marks.read_text().split("\n")[:4] == [
        "start first",
        "end first",
        "start second",
        "end second",
    ]
    lock_events = [
        e for e in read_events(tmp_path / "state", "second") if e["type"] == "lock_acquired"
    ]
    assert lock_events[0]["waited_sec"] > 0.2


def test_wait_gives_up_after_lock_timeout(tmp_path: Path) -> None:
    """lock_timeout_sec bounds the wait: then the run exits 3 and records nothing."""
    plan = _plan(tmp_path, "merge", "L", "sleep 4", on_lock_conflict="wait", lock_timeout_sec=0.5)
    first = _start(tmp_path, plan, "first")
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        second = planrun(
            "run", plan, "--state-dir", tmp_path / "state", "--run-id", "second", cwd=tmp_path
        )
        assert second.returncode == 3
        assert "still held" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=20)


def test_stale_lock_is_reclaimed_with_an_event(tmp_path: Path) -> None:
    """The lock of a planrun killed with -9 is free at once (the kernel drops the flock),
    and the next run says whose lock it took over."""
    plan = _plan(tmp_path, "merge", "L", "sleep 30")
    victim = _start(tmp_path, plan, "crashed-run")
    try:
        assert wait_until(lambda: _started(tmp_path, "crashed-run"), 15)
        assert _locks(tmp_path) == [("L", "crashed-run")]
        victim.kill()
        victim.wait(timeout=20)
    finally:
        victim.kill()
    quick = _plan(tmp_path, "merge", "L", "echo ok")
    result = planrun(
        "run",
        quick,
        "--state-dir",
        tmp_path / "state",
        "--run-id",
        "after",
        "--plain",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "reclaimed from run crashed-run" in result.stdout
    event = next(
        e for e in read_events(tmp_path / "state", "after") if e["type"] == "lock_acquired"
    )
    assert event["reclaimed_from_run"] == "crashed-run"
    assert event["reclaimed_from_pid"] == victim.pid
    assert _locks(tmp_path) == []


def test_lock_released_on_failure_and_on_sigint(tmp_path: Path) -> None:
    """A failed run and a Ctrl-C'd run both leave the lock free."""
    failing = _plan(tmp_path, "fails", "L", "exit 1")
    result = planrun("run", failing, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 1
    assert _locks(tmp_path) == []
    slow = _plan(tmp_path, "slow", "L", "sleep 30")
    proc = _start(tmp_path, slow, "interrupted")
    try:
        assert wait_until(lambda: _started(tmp_path, "interrupted"), 15)
        assert _locks(tmp_path) == [("L", "interrupted")]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        proc.kill()
    assert _locks(tmp_path) == []


def test_different_variable_values_are_different_locks(tmp_path: Path) -> None:
    """'safe-merge-${REPO}' for two repositories does not conflict."""
    plan = _plan(tmp_path, "merge", "safe-merge-${REPO}", "sleep 1.5")
    first = _start(tmp_path, plan, "first")
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        other = planrun(
            "run", plan, "--var", "REPO=repo-b", "--state-dir", tmp_path / "state", cwd=tmp_path
        )
        assert other.returncode == 0, other.stderr
        assert first.wait(timeout=20) == 0
    finally:
        first.kill()


def test_a_lock_excludes_runs_of_other_state_dirs(tmp_path: Path) -> None:
    """A lock is machine-wide: a run with another state dir and working directory exits 3,
    naming the holder's run, pid and state dir."""
    plan = _plan(tmp_path, "merge", "safe-merge-${REPO}", "sleep 30")
    first = _start(tmp_path, plan, "first")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        second = planrun(
            "run", plan, "--state-dir", elsewhere / "state", "--run-id", "second", cwd=elsewhere
        )
        assert second.returncode == 3, second.stderr
        assert "run first" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert str(tmp_path / "state") in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=20)
    assert _locks(tmp_path) == []


def test_a_path_lock_is_one_lock_however_the_path_is_spelled(tmp_path: Path) -> None:
    """{"name", "path"}: './data', its absolute path and a symlink to it are one lock
    (exit 3 naming the holder), and another directory is another lock."""
    data, other = tmp_path / "data", tmp_path / "other"
    data.mkdir()
    other.mkdir()
    (tmp_path / "link").symlink_to(data)
    plan = write_json(
        tmp_path / "sync.json",
        {
            "plan_id": "sync",
            "variables": {"DIR": None, "NAP": "0"},
            "globals": {"lock": {"name": "sync", "path": "${DIR}"}, "kill_grace_sec": 1},
            "steps": [{"id": "work", "command": "sh", "args": ["-c", 'sleep "$NAP"']}],
        },
    )
    first = _start(tmp_path, plan, "first", "--var", "DIR=./data", "--var", "NAP=30")
    try:
        assert wait_until(lambda: _started(tmp_path, "first"), 15)
        for n, spelling in enumerate([str(data), "link", "data/."]):
            second = planrun(
                "run", plan, "--var", f"DIR={spelling}", "--run-id", f"second-{n}",
                "--state-dir", tmp_path / f"state-{n}", cwd=tmp_path,
            )  # fmt: skip
            assert second.returncode == 3, (spelling, second.stderr)
            assert f"lock 'sync' on {data} is held by run first" in second.stderr
        apart = planrun(
            "run", plan, "--var", f"DIR={other}", "--state-dir", tmp_path / "s", cwd=tmp_path
        )
        assert apart.returncode == 0, apart.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=20)
    event = next(
        e for e in read_events(tmp_path / "state", "first") if e["type"] == "lock_acquired"
    )
    assert (event["name"], event["path"]) == ("sync", str(data))


def test_steps_do_not_inherit_the_lock(tmp_path: Path) -> None:
    """The lock's file descriptor is close-on-exec: no step holds it (else a leftover
    step process would keep the lock after its run ended)."""
    plan = _plan(tmp_path, "merge", "L", "ls -l /proc/$$/fd")
    result = planrun("run", plan, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log = next((tmp_path / "state" / "runs").glob("*/logs/work.1.log")).read_text()
    assert "->" in log
    assert os.environ["PLANRUN_LOCK_DIR"] not in log


def test_a_secret_in_the_lock_path_is_refused(tmp_path: Path) -> None:
    """Lock paths are shown and written in clear, like lock names: no secret in them."""
    plan = write_json(
        tmp_path / "p.json",
        {
            "plan_id": "p",
            "secrets": ["TOKEN"],
            "globals": {"lock": {"name": "L", "path": "/x/${TOKEN}"}},
            "steps": [{"id": "a", "command": "true"}],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path, env=clean_env(TOKEN="s3cret"))  # noqa: S106
    assert result.returncode == 2
    assert "$.globals.lock.path" in result.stderr


def test_a_lock_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """The lock directory is opened without following symlinks: a symlinked one is a
    clear error (exit 1, no traceback) before any step runs."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "sneaky").symlink_to(real)
    plan = _plan(tmp_path, "merge", "L", "touch ran")
    result = planrun(
        "run", plan, "--state-dir", tmp_path / "state", cwd=tmp_path,
        env=clean_env(PLANRUN_LOCK_DIR=str(tmp_path / "sneaky")),
    )  # fmt: skip
    assert result.returncode == 1
    assert f"cannot use the lock directory {tmp_path / 'sneaky'}" in result.stderr
    assert "PLANRUN_LOCK_DIR" in result.stderr
    assert not (tmp_path / "ran").exists()
    assert list(real.iterdir()) == []


def test_the_default_lock_directory_is_per_user_and_fixed() -> None:
    """Without PLANRUN_LOCK_DIR, locks live in /tmp/planrun-<uid>/locks, whatever
    $TMPDIR or $XDG_RUNTIME_DIR say (a lock must be in one place for every run)."""
    from planrun.locks import lock_dir

    expected = Path(f"/tmp/planrun-{os.getuid()}/locks")
    assert lock_dir({"TMPDIR": "/elsewhere", "XDG_RUNTIME_DIR": "/run/user/1"}) == expected
    assert lock_dir({"PLANRUN_LOCK_DIR": "rel/locks"}) == Path.cwd() / "rel" / "locks"


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        ({"name": "L", "paht": "x"}, "$.globals.lock.paht: unknown field 'paht'"),
        ({"name": "L", "path": "x", "resolve": "svn"}, "$.globals.lock.resolve: invalid enum"),
        ({"path": "x"}, "$.globals.lock: missing required field 'name'"),
        ({"name": "L", "path": "${NOPE}"}, "$.globals.lock.path: variable 'NOPE' is not defined"),
    ],
)
def test_a_bad_lock_object_is_located(tmp_path: Path, lock: dict[str, str], expected: str) -> None:
    """A malformed lock object is exit 2 with the JSON path of what is wrong."""
    plan = write_json(
        tmp_path / "p.json",
        {"plan_id": "p", "globals": {"lock": lock}, "steps": [{"id": "a", "command": "true"}]},
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr, result.stderr
