"""The live view under a real pseudo-terminal (tmux, and a bare pty)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shlex
import shutil
import struct
import subprocess
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._cli import PLANRUN, clean_env, sh, wait_until, write_json

COLS, ROWS = 120, 40
STEPS = ["alpha", "beta", "gamma"]
#: Any SGR sequence (colors, bold, reset).
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: The summary line, the last thing a run prints.
SUMMARY = re.compile(rb"run \S+ (?:succeeded|failed|cancelled) in ")
#: A foreground color: 30-37, or 38;5;n / 38;2;r;g;b.
COLOR = b"\x1b[3"


@dataclass
class Drawn:
    """What a run in a terminal produced."""

    exit_code: int | None
    raw: bytes  # every byte the program wrote to the terminal
    screen: str  # the final screen (tmux) or the raw output without escapes (pty)

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode("utf-8", errors="replace").replace("\r", "")


def _summary_written(raw: Path) -> bool:
    return raw.exists() and SUMMARY.search(ANSI.sub(b"", raw.read_bytes())) is not None


def _in_tmux(argv: list[str], cwd: Path, env: dict[str, str]) -> Drawn:
    """Run ``argv`` in a detached tmux pane; collect its raw output and final screen."""
    tmux = shutil.which("tmux")
    assert tmux is not None
    # A private server (not the user's), on a short path (sockets have a length limit).
    socket = Path(tempfile.gettempdir()) / f"planrun-acc-{uuid.uuid4().hex[:12]}.sock"
    base = [tmux, "-S", str(socket), "-f", "/dev/null"]
    go, rc, raw = cwd / "go", cwd / "rc", cwd / "raw.bin"
    # Wait (bounded) for "go" so that pipe-pane is attached before anything is drawn.
    script = (
        'i=0; while [ ! -e go ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done; '
        '"$@"; echo "$?" > rc.tmp; mv rc.tmp rc'
    )
    command = shlex.join(["sh", "-c", script, "sh", *argv])

    def tmux_do(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    try:
        started = tmux_do(
            "new-session", "-d", "-s", "t", "-x", str(COLS), "-y", str(ROWS), "-c", str(cwd),
            *(["-e", f"NO_COLOR={env['NO_COLOR']}"] if "NO_COLOR" in env else []),
            command,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        tmux_do("set-option", "-g", "remain-on-exit", "on")
        piped = tmux_do("pipe-pane", "-o", "-t", "t", f"cat >> {shlex.quote(str(raw))}")
        assert piped.returncode == 0, piped.stderr
        go.touch()
        finished = wait_until(rc.exists, timeout=20)
        # The pipe is asynchronous: wait until the summary line reached the file.
        wait_until(lambda: _summary_written(raw), timeout=3)
        screen = tmux_do("capture-pane", "-p", "-J", "-t", "t", "-S", "-").stdout
        code = int(rc.read_text()) if finished else None
        return Drawn(code, raw.read_bytes() if raw.exists() else b"", screen)
    finally:
        tmux_do("kill-server")
        socket.unlink(missing_ok=True)


def _in_pty(argv: list[str], cwd: Path, env: dict[str, str]) -> Drawn:
    """Run ``argv`` with a pty as stdin/stdout/stderr; read everything it draws."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave fd is closed
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(master)
    raw = b"".join(chunks)
    return Drawn(code, raw, ANSI.sub(b"", raw).decode("utf-8", errors="replace"))


BACKENDS = [
    pytest.param(
        "tmux",
        marks=pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    ),
    "pty",
]


@pytest.mark.parametrize("no_color", [False, True], ids=["color", "NO_COLOR"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_live_view_draws_steps_states_and_summary(
    tmp_path: Path, backend: str, no_color: bool
) -> None:
    """On a terminal the live table shows every step reaching "succeeded" and the
    summary line; colors are used unless NO_COLOR is set."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "live",
            "globals": {"max_concurrency": 3},
            "steps": [sh(step, "sleep 1") for step in STEPS],
        },
    )
    run_id = f"live-{uuid.uuid4().hex[:8]}"
    env = clean_env(TERM="xterm-256color")
    if no_color:
        env["NO_COLOR"] = "1"
    argv = [*PLANRUN, "run", str(plan), "--run-id", run_id]
    run = _in_tmux if backend == "tmux" else _in_pty
    drawn = run(argv, tmp_path, env)
    text = drawn.text
    assert drawn.exit_code == 0, text

    # The live view, not plain mode: a table with a progress count, no per-change log.
    assert not re.search(r"^\d\d:\d\d:\d\d\.\d{3} ", text, re.M), text
    assert "3/3" in text
    for step in STEPS:
        assert re.search(rf"{step}\s+succeeded\s+1/1", text), text
    assert re.search(rf"run {run_id} succeeded in \S+ \(3 succeeded\)", text), text
    if backend == "tmux":
        # The final screen keeps the final table and the summary.
        for step in STEPS:
            assert re.search(rf"{step}\s+succeeded", drawn.screen), drawn.screen
        assert f"run {run_id} succeeded" in drawn.screen

    if no_color:
        assert COLOR not in drawn.raw, drawn.raw
    else:
        assert COLOR in drawn.raw, drawn.raw


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_flag_on_a_terminal_logs_lines(tmp_path: Path, backend: str) -> None:
    """--plain on a terminal prints the timestamped per-change lines, not a table."""
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "plain", "steps": [sh("only", "true")]},
    )
    env = clean_env(TERM="xterm-256color")
    argv = [*PLANRUN, "run", str(plan), "--plain", "--run-id", "plain"]
    run = _in_tmux if backend == "tmux" else _in_pty
    drawn = run(argv, tmp_path, env)
    assert drawn.exit_code == 0, drawn.text
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} UTC only succeeded", drawn.text, re.M), drawn.text
    assert "run plain succeeded" in drawn.text


def test_live_view_names_instances_and_handlers(tmp_path: Path) -> None:
    """The live view's first line counts the steps and the run handlers apart, as the
    plain log does, and the table lists matrix instances by their ids."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "live-lang",
            "steps": [{**sh("t", "true"), "matrix": {"py": ["3.11", "3.12"]}}],
            "handlers": {"on_exit": [sh("bye", "true")]},
        },
    )
    run_id = f"live-{uuid.uuid4().hex[:8]}"
    argv = [*PLANRUN, "run", str(plan), "--run-id", run_id]
    drawn = _in_pty(argv, tmp_path, clean_env(TERM="xterm-256color"))
    assert drawn.exit_code == 0, drawn.text
    assert f"run {run_id} started: plan live-lang, 2 steps and 1 handler" in drawn.text
    assert re.search(r"t\[py=3\.11\]\s+succeeded", drawn.text), drawn.text
    assert re.search(r"bye \(on_exit\)\s+succeeded", drawn.text), drawn.text
