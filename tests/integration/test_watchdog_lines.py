"""The watchdog knows a group as soon as ``track`` returns, and many lines never fill
its pipe (a process that uses the planrun side of the watchdog, then is SIGKILLed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Run in a child: a watchdog, a group whose leader has no planrun tag in its
#: environment (``env -i``: only the group line can find it), tracked from inside a
#: running event loop; then the child SIGKILLs itself at once.
CHILD = r"""
import os, signal, subprocess, sys
import anyio
from planrun.executors.watchdog import Watchdog

async def main():
    dog = Watchdog()
    dog.start()
    for n in range(int(sys.argv[1])):  # lines enough to fill a pipe many times over
        dog.track(4_000_000 + n)
        dog.untrack(4_000_000 + n)
    leader = subprocess.Popen(["env", "-i", "sleep", "1000"], start_new_session=True)
    dog.track(leader.pid)
    print(leader.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

anyio.run(main)
"""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("filler", [0, 20_000])
def test_a_group_tracked_just_before_planrun_is_killed_dies_too(
    tmp_path: Path, filler: int
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(filler)], stdout=subprocess.PIPE, cwd=tmp_path
    )
    assert child.stdout is not None
    pgid = int(child.stdout.readline())
    child.wait()
    try:
        deadline = time.monotonic() + 20
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _group_alive(pgid), "the watchdog left the tracked group running"
    finally:
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
