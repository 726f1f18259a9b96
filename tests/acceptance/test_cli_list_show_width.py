"""``list`` and ``show`` at 80 columns, on a real terminal (a pty) and redirected: run
ids and log paths are never truncated or cut across lines, ``show``'s log paths are
relative to the state dir, and every time says its zone (UTC)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from ._cli import PLANRUN, clean_env, planrun, sh, write_json

COLS = 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: A run id as long as a user may choose, and a default-format one.
LONG_ID = "release-candidate-2026-12-01-nightly-build-of-everything-x1"
PLAN_ID = "a-plan-with-a-long-identifier-for-reporting"
LONG_STEP = "publish-the-documentation-site"
MISSING = "no-such-program-for-planrun-width-tests"


def _on_pty(args: list[str], cwd: Path) -> str:
    """What ``planrun ARGS`` prints on an 80x24 terminal (ANSI codes removed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLS, 0, 0))
    proc = subprocess.Popen(
        [*PLANRUN, *args],
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=clean_env(TERM="xterm-256color"),
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        assert proc.wait(timeout=30) == 0
    text = ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")
    assert "Traceback" not in text
    return text


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Two runs of a plan with a long id: one with a chosen long run id and a failing
    step with a long id, one with a generated run id."""
    work = tmp_path_factory.mktemp("width")
    plan = write_json(
        work / "plan.json",
        {
            "plan_id": PLAN_ID,
            "steps": [
                sh("build", "echo built"),
                {"id": LONG_STEP, "command": MISSING, "depends_on": ["build"]},
                sh("announce", "echo done", depends_on=[LONG_STEP]),
            ],
        },
    )
    first = planrun("run", plan, "--run-id", LONG_ID, "--plain", cwd=work)
    assert first.returncode == 1, first.stdout + first.stderr
    second = planrun("run", plan, "--plain", cwd=work)
    assert second.returncode == 1
    listed = planrun("list", "--json", cwd=work)
    ids = [r["run_id"] for r in json.loads(listed.stdout)]
    assert LONG_ID in ids
    return work, ids


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_list_on_an_80_column_terminal_keeps_every_run_id_whole(
    runs: tuple[Path, list[str]],
) -> None:
    """On a pty 80 columns wide, each run id is on one line, whole, and no line is
    wider than the terminal: other columns are dropped instead (no "…")."""
    work, ids = runs
    text = _on_pty(["list"], work)
    lines = _lines(text)
    assert "…" not in text
    assert max(map(len, lines)) <= COLS, text
    for run_id in ids:
        assert any(line.split()[:1] == [run_id] for line in lines), (run_id, text)
    # The newest run alone (a generated id): the long plan id goes, the rest stays.
    newest = _lines(_on_pty(["list", "--limit", "1"], work))
    assert newest[0].split() == ["run", "id", "plan", "state"]  # 79 columns; no room for more
    assert newest[1].split()[0] == ids[0]


def test_list_redirected_has_every_column(runs: tuple[Path, list[str]]) -> None:
    """Not on a terminal, nothing is dropped or cut: one run per line, every column,
    the start time in UTC."""
    work, ids = runs
    result = planrun("list", cwd=work)
    assert result.returncode == 0
    lines = _lines(result.stdout)
    assert lines[0].split() == ["run", "id", "plan", "state", "started", "(UTC)", "took", "steps"]
    row = next(line for line in lines if line.startswith(LONG_ID + " "))
    assert f" {PLAN_ID} " in row
    assert re.search(r" failed +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+s +\d/3$", row), row
    assert len(lines) == len(ids) + 1


def _log_path(run_id: str, step: str) -> str:
    return f"runs/{run_id}/logs/{step}.1.log"


def test_show_on_an_80_column_terminal(runs: tuple[Path, list[str]]) -> None:
    """`show` fits 80 columns without cutting anything a user copies: log paths are
    relative to the state dir (named once, absolute), each on one line and whole;
    prose wraps between words only; times say UTC."""
    work, _ = runs
    text = _on_pty(["show", LONG_ID], work)
    lines = _lines(text)
    assert "…" not in text
    state_dir = (work / ".planrun").resolve()
    words = " ".join(text.split())
    assert f"state dir {state_dir} (log paths below are relative to it)" in words
    assert any(line.startswith(f"state dir {state_dir} ") for line in lines)
    assert any(line.strip() == _log_path(LONG_ID, "build") for line in lines), text
    assert str(state_dir / "runs") not in text
    assert f"run       {LONG_ID}" in lines
    assert re.search(r"^started   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$", text, re.M)
    assert "started (UTC)" in text
    # Every line fits but one holding a single path longer than a line (LONG_ID's log).
    wide = [line for line in lines if len(line) > COLS]
    assert [line.strip() for line in wide] == [_log_path(LONG_ID, "build")], wide
    # The missing program's message: its words intact, in order, whatever the wrapping.
    assert f"command not found: '{MISSING}' (no such program in PATH)" in words
    assert any(line.split()[:1] == [LONG_STEP] for line in lines)


def test_show_redirected_keeps_each_detail_on_its_row(runs: tuple[Path, list[str]]) -> None:
    """Not on a terminal, each attempt is one line with its relative log path last."""
    work, _ = runs
    result = planrun("show", LONG_ID, cwd=work)
    assert result.returncode == 0
    lines = _lines(result.stdout)
    header = next(line for line in lines if line.startswith("step "))
    expected = ["step", "try", "state", "exit", "started", "(UTC)", "took", "pid", "detail"]
    assert header.split() == expected
    row = next(line for line in lines if line.endswith(_log_path(LONG_ID, "build")))
    assert re.match(r"^ +1 +succeeded +0 +\d\d:\d\d:\d\d\.\d{3} +\S+s +\d+ +runs/", row), row
    assert re.search(r"^heartbeat \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$", result.stdout, re.M)
