"""Process identity (planrun.proc): the one place that decides an owner is dead, and
the one way crash handling signals the processes it found."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from planrun.proc import boot_id, is_gone, kill_all, process_start_time


def test_is_gone_decides_from_pid_start_time_host_and_boot() -> None:
    """Alive and this boot: not gone; another host: never gone; another boot or a
    reaped pid: gone."""
    me = os.getpid()
    host, boot, started = socket.gethostname(), boot_id(), process_start_time(me)
    assert not is_gone(me, started, host=host, owner_boot_id=boot)
    assert not is_gone(me, started, host=host, owner_boot_id=None)
    assert not is_gone(12345678, 1, host=host + "-elsewhere", owner_boot_id="x")
    assert is_gone(me, started, host=host, owner_boot_id="another-boot")
    assert is_gone(me, (started or 0) + 1, host=host, owner_boot_id=boot)  # pid reused
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert is_gone(child.pid, None, host=host, owner_boot_id=boot)


def test_kill_all_returns_the_processes_it_reached() -> None:
    """A live process is killed and listed; one already reaped is skipped."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    try:
        assert kill_all([done.pid, live.pid]) == [live.pid]
        assert live.wait(timeout=20) == -9
    finally:
        live.kill()
        live.wait()
