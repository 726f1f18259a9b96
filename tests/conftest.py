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
