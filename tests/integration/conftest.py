"""Integration fixtures: never leave a step process behind, even when a test fails."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator

import pytest

from .helpers import MARK_VAR, live_processes_with


@pytest.fixture(autouse=True)
def _kill_leftover_steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tag this test's step processes through the inherited environment and SIGKILL any
    that are still alive afterwards (only this test's own processes carry the tag)."""
    mark = secrets.token_hex(8)
    monkeypatch.setenv(MARK_VAR, mark)
    yield
    for pid in live_processes_with(f"{MARK_VAR}={mark}"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
