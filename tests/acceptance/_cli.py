"""Helpers for the acceptance tests: run the real ``planrun`` CLI as a subprocess and
inspect what it leaves behind (state dir, SQLite store, /proc)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from planrun.executors.watchdog import SOURCE

#: The interpreter running the tests: ``[PY, "-m", "planrun"]`` works in any venv.
PY = sys.executable
PLANRUN = (PY, "-m", "planrun")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "plans" / "demo.json"
SCHEMA_FILE = REPO / "plans" / "plan.schema.json"

#: A line of the watchdog's source (it runs as ``python -c SOURCE``): found in its cmdline.
WATCHDOG_LINE = SOURCE.strip().splitlines()[1].encode()

#: ``HH:MM:SS.mmm UTC `` at the start of every plain-mode state-change line.
STAMP = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} UTC ")

#: Environment variables that would change what the CLI does or draws.
_SCRUB = (
    "PLANRUN_STATE_DIR",
    "NO_COLOR",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "COLUMNS",
    "LINES",
    "TMUX",
    "TMUX_PANE",
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "CI",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The test environment without variables that would change the CLI's behaviour."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra)
    return env


def planrun(
    *args: str | os.PathLike[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m planrun ARGS`` in ``cwd``, capturing text output.

    Every acceptance test promises no traceback on stderr, so this checks it.
    """
    result = subprocess.run(
        [*PLANRUN, *map(str, args)],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON to ``path`` (creating its directory) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def sh(step_id: str, script: str, **fields: Any) -> dict[str, Any]:
    """A step that runs ``sh -c script``."""
    return {"id": step_id, "command": "sh", "args": ["-c", script], **fields}


def read_events(state_dir: Path, run_id: str) -> list[dict[str, Any]]:
    """The events of a run from its ``events.jsonl`` ([] while the file is missing)."""
    path = state_dir / "runs" / run_id / "events.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # The last line may still be being written: only complete lines count.
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def query(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the run store."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(con.execute(sql, params).fetchall())
    finally:
        con.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


#: Set per session (conftest.py) in os.environ, so in every process the tests start
#: (clean_env copies it): the steps and the watchdog keep it (the watchdog drops only
#: ``PLANRUN_*`` variables). The /proc scans below require it: they see this session's
#: processes only, never another planrun run on the machine (another suite running
#: the same tests with the same run ids, a user's run).
TEST_MARK_VAR = "ATEST_PROCESS_MARK"


def process_mark() -> bytes:
    """This session's ``ATEST_PROCESS_MARK=...`` environment entry."""
    value = os.environ.get(TEST_MARK_VAR)
    assert value, f"{TEST_MARK_VAR} is set by tests/acceptance/conftest.py"
    return f"{TEST_MARK_VAR}={value}".encode()


def own_pids(
    environ_has: Callable[[list[bytes]], bool] = lambda _: True, cmdline: bytes | None = None
) -> list[int]:
    """Live (non-zombie) processes of this test session (its mark in their environment) whose
    environment entries satisfy ``environ_has`` and whose command line contains
    ``cmdline`` (when given)."""
    mark = process_mark()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if mark not in environ or not environ_has(environ):
                continue
            if cmdline is not None and cmdline not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        if not _is_zombie(int(entry.name)):
            found.append(int(entry.name))
    return found


def own_watchdogs() -> list[int]:
    """This test's live watchdogs: a line of the watchdog's source in the command line
    (only it has that), this session's mark in the environment (not another run's)."""
    return own_pids(cmdline=WATCHDOG_LINE)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def live_pids_with_env(name: str, value: str) -> list[int]:
    """Pids of this session's live (non-zombie) processes whose environment has
    ``name=value``."""
    wanted = f"{name}={value}".encode()
    return own_pids(lambda environ: wanted in environ)


def kill_pids(pids: Sequence[int]) -> None:
    """SIGKILL these pids (leftovers of a test), ignoring ones already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def sigkill_leaves_no_step_alive(proc: subprocess.Popen[bytes], run_id: str) -> None:
    """SIGKILL ``proc`` (a ``planrun`` running ``run_id``); assert that no process tagged
    with the run id is alive 2 s later (the issue's figure)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    killed_at = time.monotonic()
    gone = wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 2)
    assert gone, f"alive {time.monotonic() - killed_at:.1f}s after SIGKILL: " + str(
        live_pids_with_env("PLANRUN_RUN_ID", run_id)
    )


def show_run(tmp_path: Path, run_id: str) -> dict[str, Any]:
    """``planrun show RUN --json`` for a run in ``tmp_path/state``."""
    result = planrun("show", run_id, "--json", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def attempts(doc: dict[str, Any]) -> dict[str, list[tuple[int, str]]]:
    """``{step: [(attempt number, attempt state), ...]}`` from ``show --json``."""
    return {s["step_id"]: [(a["attempt"], a["state"]) for a in s["attempts"]] for s in doc["steps"]}
