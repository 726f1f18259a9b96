"""When the run store fails mid-run, run_plan raises StoreError and leaves nothing running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from planrun import StoreError, run_plan

from .helpers import live_run_processes


@pytest.mark.anyio
async def test_store_failure_raises_store_error_and_stops_steps(state_dir: Path) -> None:
    """A database locked longer than the busy timeout surfaces as StoreError, not a group."""
    db = state_dir / "runs.db"
    locker = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "time.sleep(30)\n"
    )
    plan = {
        "plan_id": "store-failure",
        "globals": {"kill_grace_sec": 0.5},
        "steps": [
            {"id": "lock", "command": sys.executable, "args": ["-c", locker, str(db)]},
            {"id": "quick", "command": "sleep", "args": ["1"]},
            {"id": "slow", "command": "sleep", "args": ["30"]},
        ],
    }
    with pytest.raises(StoreError, match="run store"):
        await run_plan(plan, state_dir=state_dir, run_id="store-failure-1")
    assert live_run_processes("store-failure-1") == []
