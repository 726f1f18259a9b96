"""``planrun watch`` on a real terminal (tmux, else a bare pty) next to ``planrun run``
on another: the watcher draws the live table and ends in the same final states."""

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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from ._cli import PLANRUN, clean_env, kill_pids, live_pids_with_env, read_events, sh, wait_until
from ._cli import write_json as _write_json

COLS, ROWS = 100, 30
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]")
STATES = "pending|running|succeeded|failed|timed_out|skipped|cancelled"
STEPS = ["alpha", "flaky", "broken", "orphan", "bravo"]
#: Every final step state appears: succeeded (one after a retry), failed, skipped.
EXPECTED = {
    "alpha": "succeeded",
    "flaky": "succeeded",
    "broken": "failed",
    "orphan": "skipped",
    "bravo": "succeeded",
}


def _plan() -> dict[str, Any]:
    return {
        "plan_id": "tty",
        "globals": {"max_concurrency": 4},
        "steps": [
            sh("alpha", "echo alpha; sleep 1.2"),
            sh(
                "flaky",
                'sleep 0.3; [ "$PLANRUN_ATTEMPT" -ge 2 ] || exit 3',
                retries=1,
            ),
            sh(
                "broken",
                "sleep 0.5; echo bad-news; exit 1",
                critical=False,
                on_failure="skip_dependents",
            ),
            sh("orphan", "true", depends_on=["broken"]),
            sh("bravo", "sleep 0.3", depends_on=["alpha"]),
        ],
    }


def final_states(text: str) -> dict[str, str]:
    """The last state drawn for each step (the final table) in a screen's text."""
    found: dict[str, str] = {}
    for step in STEPS:
        matches = re.findall(rf"(?<![\w-]){re.escape(step)}\s+({STATES})\b", text)
        if matches:
            found[step] = matches[-1]
    return found


def summary_line(text: str, run_id: str) -> str:
    """The summary line ``run ID STATE in T (counts)``."""
    lines = [
        line.strip() for line in text.splitlines() if line.strip().startswith(f"run {run_id} ")
    ]
    finals = [
        line for line in lines if re.match(rf"run {run_id} (succeeded|failed|cancelled) in ", line)
    ]
    assert finals, text
    return finals[-1]


class Terminal(Protocol):
    """Two programs on two terminals at once."""

    def start(self, name: str, argv: list[str]) -> None: ...

    def screen(self, name: str) -> str: ...

    def wait(self, name: str, timeout: float) -> int | None: ...


class TmuxTerminals:
    """Panes of one window of a private tmux server."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        tmux = shutil.which("tmux")
        assert tmux is not None
        self.cwd = cwd
        self.env = env
        self.socket = Path(tempfile.gettempdir()) / f"planrun-obs-{uuid.uuid4().hex[:12]}.sock"
        self.base = [tmux, "-S", str(self.socket), "-f", "/dev/null"]
        self.panes: dict[str, str] = {}

    def _do(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def start(self, name: str, argv: list[str]) -> None:
        script = '"$@"; echo "$?" > "rc-$PANE_NAME.tmp"; mv "rc-$PANE_NAME.tmp" "rc-$PANE_NAME"'
        command = shlex.join(["env", f"PANE_NAME={name}", "sh", "-c", script, "sh", *argv])
        if not self.panes:
            done = self._do(
                "new-session", "-d", "-s", "t", "-x", str(2 * COLS + 1), "-y", str(ROWS),
                "-c", str(self.cwd), "-P", "-F", "#{pane_id}", command,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            self._do("set-option", "-g", "remain-on-exit", "on")
        else:
            done = self._do(
                "split-window", "-h", "-t", "t", "-c", str(self.cwd), "-P", "-F", "#{pane_id}",
                command,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        self.panes[name] = done.stdout.strip()

    def screen(self, name: str) -> str:
        return self._do("capture-pane", "-p", "-J", "-t", self.panes[name], "-S", "-").stdout

    def wait(self, name: str, timeout: float) -> int | None:
        rc = self.cwd / f"rc-{name}"
        if not wait_until(rc.exists, timeout):
            return None
        return int(rc.read_text())

    def close(self) -> None:
        self._do("kill-server")
        self.socket.unlink(missing_ok=True)


class PtyTerminals:
    """Each program on its own pseudo-terminal, read by a thread."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.output: dict[str, list[bytes]] = {}
        self.threads: list[threading.Thread] = []

    def start(self, name: str, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        try:
            self.procs[name] = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        chunks: list[bytes] = []
        self.output[name] = chunks
        thread = threading.Thread(target=self._read, args=(master, chunks), daemon=True)
        thread.start()
        self.threads.append(thread)

    @staticmethod
    def _read(master: int, chunks: list[bytes]) -> None:
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    return
                if not data:
                    return
                chunks.append(data)
        finally:
            os.close(master)

    def screen(self, name: str) -> str:
        raw = b"".join(self.output[name]).decode("utf-8", errors="replace")
        return ANSI.sub("", raw).replace("\r", "")

    def wait(self, name: str, timeout: float) -> int | None:
        try:
            code = self.procs[name].wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for thread in self.threads:
            thread.join(timeout=5)
        return code

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


@contextmanager
def terminals(backend: str, cwd: Path, env: dict[str, str]) -> Iterator[Terminal]:
    """Terminals of ``backend`` ("tmux" or "pty"), torn down afterwards."""
    term = TmuxTerminals(cwd, env) if backend == "tmux" else PtyTerminals(cwd, env)
    try:
        yield term
    finally:
        term.close()


BACKENDS = [
    pytest.param(
        "tmux",
        marks=pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    ),
    "pty",
]


def _wait_for(
    check: Callable[[], bool], timeout: float, what: str, show: Callable[[], str]
) -> None:
    assert wait_until(check, timeout, interval=0.05), f"{what}:\n{show()}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_watch_on_a_terminal_next_to_the_run(tmp_path: Path, backend: str) -> None:
    """`run` and `watch` on two terminals: watch draws the live table (a running step,
    then every step's final state) and the summary, ending exactly like the run."""
    run_id = f"tty-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    plan = _write_json(tmp_path / "plan.json", _plan())
    env = clean_env(TERM="xterm-256color")
    try:
        with terminals(backend, tmp_path, env) as term:
            term.start("run", [*PLANRUN, "run", str(plan), "--run-id", run_id,
                               "--state-dir", str(state)])  # fmt: skip
            _wait_for(
                lambda: any(e["type"] == "run_started" for e in read_events(state, run_id)),
                10,
                "the run did not start",
                lambda: term.screen("run"),
            )
            term.start("watch", [*PLANRUN, "watch", run_id, "--state-dir", str(state)])
            # Live: the watcher shows alpha running before the run is over.
            _wait_for(
                lambda: re.search(r"(?<![\w-])alpha\s+running\b", term.screen("watch")) is not None,
                5,
                "watch never drew alpha running",
                lambda: term.screen("watch"),
            )
            assert not any(e["type"] == "run_finished" for e in read_events(state, run_id))
            watch_code = term.wait("watch", 15)
            run_code = term.wait("run", 15)
            assert run_code == 0, term.screen("run")
            assert watch_code == 0, term.screen("watch")
            _wait_for(
                lambda: f"run {run_id} succeeded" in term.screen("watch"),
                3,
                "no summary in watch",
                lambda: term.screen("watch"),
            )
            watched, ran = term.screen("watch"), term.screen("run")
    finally:
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))

    # The live table, not the plain per-change log.
    assert not re.search(r"^\d\d:\d\d:\d\d\.\d{3} ", watched, re.M), watched
    assert "5/5" in watched
    assert final_states(watched) == EXPECTED, watched
    assert final_states(ran) == EXPECTED, ran
    summary = summary_line(watched, run_id)
    assert re.fullmatch(
        rf"run {run_id} succeeded in \S+ \(3 succeeded, 1 failed, 1 skipped\)", summary
    ), summary
    assert summary == summary_line(ran, run_id)
    # The failed step's log tail is shown under the summary on both.
    assert "bad-news" in watched
    assert "bad-news" in ran
