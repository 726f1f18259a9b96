"""Acceptance fixtures: every process this test session starts carries the session's
mark, so the /proc scans of ``_cli.py`` see only them (never another planrun run on
the machine, nor another copy of the suite), and none is left behind at the end."""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._cli import TEST_MARK_VAR, own_pids

#: One mark per session, set before any fixture starts a process (module-scoped
#: fixtures start runs too); tests run one at a time within a session.
_MARK = f"{TEST_MARK_VAR}={secrets.token_hex(8)}"
os.environ[TEST_MARK_VAR] = _MARK.split("=", 1)[1]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """SIGKILL whatever this session left alive."""
    for pid in own_pids():
        # Checked again here, not only in own_pids: this kills, so it must never
        # depend on one function being right (nor reach pytest itself).
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if pid != os.getpid() and _MARK.encode() in environ:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Playwright: the system's (``$PLANRUN_CHROMIUM``,
    else ``chromium`` on PATH), never a downloaded one. Without Playwright or Chromium
    the test is skipped, unless ``PLANRUN_REQUIRE_BROWSER=1`` (CI), where it fails."""
    required = os.environ.get("PLANRUN_REQUIRE_BROWSER") == "1"
    sync_api: Any = (
        importlib.import_module("playwright.sync_api")
        if required
        else pytest.importorskip("playwright.sync_api", reason="pip install -e '.[browser]'")
    )
    path = os.environ.get("PLANRUN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if required:
            pytest.fail(f"no Chromium at {path} (apt-get install -y chromium)")
        pytest.skip(f"no Chromium at {path}")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()
