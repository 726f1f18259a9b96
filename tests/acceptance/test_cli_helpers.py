"""A helper process that cannot start (the watchdog) is a one-line error before any
step starts: exit 1, the run recorded failed with that reason, nothing run."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import PLANRUN, clean_env, read_events, sh, show_run, wait_until, write_json


def _private_interpreter(root: Path) -> Path:
    """A copy of this venv's interpreter in a venv of its own (sharing the packages):
    planrun started with it starts its watchdog with it too, so making the copy not
    executable makes the watchdog fail to start, with EACCES, as a real condition."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs to run in a virtualenv")
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    shutil.copy2(os.path.realpath(sys.executable), python)
    shutil.copy2(Path(sys.prefix) / "pyvenv.cfg", root / "pyvenv.cfg")
    (root / "lib").symlink_to(Path(sys.prefix) / "lib")
    return python


def test_a_watchdog_that_cannot_start_fails_the_run_before_any_step(tmp_path: Path) -> None:
    """The watchdog's interpreter cannot be executed when the run starts: exit 1, one
    line on stderr and no traceback; `show` says failed with the reason; no step ran."""
    python = _private_interpreter(tmp_path / "venv")
    lock = f"helper-test-{secrets.token_hex(4)}"
    state = tmp_path / "state"
    holder = write_json(
        tmp_path / "holder.json",
        {
            "plan_id": "holder",
            "globals": {"lock": lock},
            "steps": [sh("hold", "while [ ! -e go ]; do sleep 0.05; done")],
        },
    )
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "guarded",
            "globals": {"lock": lock, "on_lock_conflict": "wait"},
            "steps": [sh("a", "touch ran"), sh("b", "touch ran", depends_on=["a"])],
        },
    )
    common = ["--state-dir", str(state), "--plain"]
    first = subprocess.Popen(
        [*PLANRUN, "run", str(holder), "--run-id", "holder", *common],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    errors = tmp_path / "stderr.txt"
    try:
        assert wait_until(
            lambda: any(e["type"] == "attempt_started" for e in read_events(state, "holder")), 20
        )
        # The second run waits for the lock: it has not started its watchdog yet.
        with errors.open("w") as err:
            second = subprocess.Popen(
                [str(python), "-m", "planrun", "run", str(plan), "--run-id", "guarded", *common],
                cwd=tmp_path,
                env=clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        assert wait_until(lambda: "waiting for lock" in errors.read_text(), 20)
        python.chmod(0o644)
        (tmp_path / "go").touch()
        assert second.wait(timeout=60) == 1
        assert first.wait(timeout=30) == 0
    finally:
        (tmp_path / "go").touch()
        first.kill()
    text = errors.read_text()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "waiting for lock" not in line]
    assert len(lines) == 1, text
    assert "cannot start the watchdog" in lines[0]
    assert "Permission denied" in lines[0]
    doc = show_run(tmp_path, "guarded")
    assert doc["run"]["state"] == "failed"
    assert "cannot start the watchdog" in doc["run"]["reason"]
    assert [(s["state"], s["attempts"]) for s in doc["steps"]] == [("cancelled", [])] * 2
    assert not (tmp_path / "ran").exists()
