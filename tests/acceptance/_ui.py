"""Helpers for the dashboard's tests: a real ``planrun ui`` server on a free port."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from ._cli import PLANRUN, clean_env, wait_until

__all__ = ["Server", "ui_server"]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    err: Path

    def csrf(self, client: httpx.Client) -> str:
        found = re.search(r'name="csrf-token" content="([^"]+)"', client.get(self.url).text)
        assert found is not None
        return found.group(1)


@contextlib.contextmanager
def ui_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``planrun ui --port 0`` on the test's state dir; its URL read from what it prints."""
    err = tmp_path / "ui-err.txt"
    with err.open("wb") as err_file:
        proc = subprocess.Popen(
            [*PLANRUN, "ui", "--port", "0", "--state-dir", str(tmp_path / "state"), *args],
            cwd=tmp_path,
            env=env or clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
        )
    try:
        assert wait_until(lambda: "serving" in err.read_text() or proc.poll() is not None, 30)
        found = re.search(r"at (http://\S+/)", err.read_text())
        assert found is not None, err.read_text()
        yield Server(proc, found.group(1), err)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        assert "Traceback" not in err.read_text(), err.read_text()
