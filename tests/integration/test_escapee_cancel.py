"""Cancelling an embedded ``run_plan`` whose step has a ``setsid`` child: the child
gets the SIGTERM with the group, so the cancel does not wait for the grace."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from planrun import run_plan

from .helpers import live_run_processes, make_plan, poll_until, sh_step, unique_run_id

pytestmark = pytest.mark.anyio


async def test_cancel_reaches_a_setsid_child_at_once(state_dir: Path) -> None:
    """kill_grace_sec 30 and a setsid child that exits on SIGTERM: the cancelled
    run_plan returns well within the grace and leaves no process."""
    plan = make_plan([sh_step("a", "setsid sleep 300 & sleep 300 & wait")], kill_grace_sec=30)
    run_id = unique_run_id("escapee-api")
    cancelled_at = None
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_plan(plan, state_dir=state_dir, run_id=run_id))
            with anyio.fail_after(20):
                await poll_until(lambda: len(live_run_processes(run_id)) >= 3)
            cancelled_at = time.monotonic()
            scope.cancel()
    assert cancelled_at is not None
    took = time.monotonic() - cancelled_at
    assert took < 10, f"cancel took {took:.1f}s (grace 30 s)"
    assert live_run_processes(run_id) == []
