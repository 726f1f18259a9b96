"""The tests' /proc scans see their own test's processes only (issue 13, item 11): an
unrelated planrun run alive on the machine is invisible to them, even when they look
for its run id (so a test's clean-up never kills it), while the test's own steps and
watchdog are found."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from ._cli import (
    PLANRUN,
    TEST_MARK_VAR,
    WATCHDOG_LINE,
    clean_env,
    live_pids_with_env,
    own_watchdogs,
    read_events,
    sh,
    wait_until,
    write_json,
)

OWN_ID, OTHER_ID = "proc-scan-own", "proc-scan-other"


def _start(
    tmp_path: Path, name: str, run_id: str, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``planrun run`` of a one-step plan whose step waits for ``<name>.gate``."""
    gate = tmp_path / f"{name}.gate"
    plan = write_json(
        tmp_path / f"{name}.json",
        {"plan_id": name, "steps": [sh("wait", f'while [ ! -e "{gate}" ]; do sleep 0.05; done')]},
    )
    return subprocess.Popen(
        [*PLANRUN, "run", plan, "--state-dir", tmp_path / name, "--run-id", run_id, "--plain"],
        cwd=tmp_path,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _step_pid(state: Path, run_id: str) -> int | None:
    started = [e for e in read_events(state, run_id) if e["type"] == "attempt_started"]
    return int(started[0]["pid"]) if started else None


def _every_watchdog() -> list[int]:
    """Every watchdog on the machine, whoever's: the scan the watchdog test used to do."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and WATCHDOG_LINE in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_scans_see_only_this_tests_processes_while_another_run_is_alive(
    tmp_path: Path,
) -> None:
    """Another run (started without this session's mark, as another suite's or a user's
    would be) is alive throughout: the scans find this test's step and watchdog, never
    the other's, and the clean-exit check passes.

    (Different run ids: two live runs with the same id, even in two state dirs, are
    one run to planrun's process clean-up, which kills the other's steps.)"""
    other_env = {k: v for k, v in clean_env().items() if k != TEST_MARK_VAR}
    # This session's watchdogs that are not this test's (a session-scoped Dask cluster's
    # workers, when an earlier test of this worker started it under pytest-xdist).
    before = set(own_watchdogs())

    def new_watchdogs() -> set[int]:
        return set(own_watchdogs()) - before

    other = _start(tmp_path, "other", OTHER_ID, other_env)
    own = None
    try:
        assert wait_until(lambda: _step_pid(tmp_path / "other", OTHER_ID) is not None, 30)
        other_step = _step_pid(tmp_path / "other", OTHER_ID)
        assert wait_until(lambda: _every_watchdog() != [], 10)  # the other run's
        assert live_pids_with_env("PLANRUN_RUN_ID", OTHER_ID) == []  # alive, not ours
        assert new_watchdogs() == set()

        own = _start(tmp_path, "own", OWN_ID, clean_env())
        assert wait_until(lambda: _step_pid(tmp_path / "own", OWN_ID) is not None, 30)
        own_step = _step_pid(tmp_path / "own", OWN_ID)
        assert wait_until(lambda: own_step in live_pids_with_env("PLANRUN_RUN_ID", OWN_ID), 10)
        assert other_step is not None
        assert live_pids_with_env("PLANRUN_RUN_ID", OTHER_ID) == []
        assert wait_until(lambda: len(new_watchdogs()) == 1, 10), new_watchdogs()

        (tmp_path / "own.gate").touch()
        assert own.wait(timeout=30) == 0
        assert wait_until(lambda: new_watchdogs() == set(), 10), new_watchdogs()
        # The old, machine-wide scan still sees the other run's watchdog: it would fail.
        assert other.poll() is None
        assert _every_watchdog() != []
    finally:
        (tmp_path / "own.gate").touch()
        (tmp_path / "other.gate").touch()
        for proc in (p for p in (own, other) if p is not None):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert other.returncode == 0  # the other run was left alone, and ended normally
