"""Shared fixtures. aiosqlite runs on asyncio only, so anyio tests use that backend."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh state dir for one test (not created yet: planrun creates it)."""
    return tmp_path / "state"


@pytest.fixture(autouse=True)
def private_lock_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test takes its run locks in a lock directory of its own (PLANRUN_LOCK_DIR,
    inherited by the planrun processes it starts): locks are machine-wide, and parallel
    test runs on one machine must not see each other's."""
    path = tmp_path_factory.mktemp("locks")
    monkeypatch.setenv("PLANRUN_LOCK_DIR", str(path))
    return path
