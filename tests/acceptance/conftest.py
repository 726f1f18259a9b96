"""Acceptance fixtures: each test's processes carry its own mark, so the /proc scans
of ``_cli.py`` see only them, and none is left behind when the test ends."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._cli import TEST_MARK_VAR, own_pids


@pytest.fixture(autouse=True)
def _process_mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tag this test's processes through the inherited environment (see
    ``_cli.TEST_MARK_VAR``) and SIGKILL any still alive afterwards."""
    mark = f"{TEST_MARK_VAR}={secrets.token_hex(8)}"
    name, value = mark.split("=")
    monkeypatch.setenv(name, value)
    yield
    for pid in own_pids():
        # Checked again here, not only in own_pids: this kills, so it must never
        # depend on one function being right (nor reach pytest itself).
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if pid != os.getpid() and mark.encode() in environ:
                os.kill(pid, signal.SIGKILL)
