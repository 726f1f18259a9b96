"""Leaders started with ``posix_spawn`` (``executors/leader.py``) are the children
``Popen`` would start: real processes, checked from inside."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun.executors.local import LocalExecutor
from planrun.ports import AttemptSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The argvs started through ``leader.spawn`` (so a test knows it was used)."""
    from planrun.executors import leader

    seen: list[tuple[str, ...]] = []
    real = leader.spawn

    def spy(argv: Sequence[str], *args: Any) -> leader.Leader:
        seen.append(tuple(argv))
        return real(argv, *args)

    monkeypatch.setattr(leader, "spawn", spy)
    return seen


def _spec(
    tmp_path: Path, argv: tuple[str, ...], n: int = 1, env: dict[str, str] | None = None
) -> AttemptSpec:
    return AttemptSpec(
        run_id="leader",
        step_id=f"s{n}",
        attempt=1,
        argv=argv,
        env=env or {},
        cwd=None,
        timeout=30,
        kill_grace=1,
        log_path=str(tmp_path / f"s{n}.log"),
    )


async def _run(tmp_path: Path, spec: AttemptSpec) -> str:
    """The attempt's log, run on a new executor (which scans for inheritable fds)."""
    with LocalExecutor() as executor:
        executor.start_run("leader@000000000000")
        result = await executor.run(spec, lambda pid: None)
    assert spec.log_path is not None
    log = await anyio.Path(spec.log_path).read_text()
    assert result.exit_code == 0, (result, log)
    return log


def _ignored(log: str) -> int:
    line = next(x for x in log.splitlines() if x.startswith("SigIgn:"))
    return int(line.split()[1], 16)


async def test_a_leader_has_its_own_session_default_signals_and_dev_null(
    tmp_path: Path, spawned: list[tuple[str, ...]]
) -> None:
    """A new session (pid = sid = pgid); SIGPIPE and SIGXFSZ not ignored although
    planrun's Python ignores SIGPIPE (as ``Popen(restore_signals=True)``); stdin on
    ``/dev/null``; fds 0-2 and the sentinel, nothing else."""
    script = (
        'echo "ids $$ $(ps -o sid= -p $$) $(ps -o pgid= -p $$)"; '
        "grep SigIgn /proc/self/status; readlink /proc/self/fd/0; ls /proc/$$/fd"
    )
    log = await _run(tmp_path, _spec(tmp_path, ("sh", "-c", script)))
    pid, sid, pgid = (int(x) for x in log.splitlines()[0].split()[1:])
    assert pid == sid == pgid
    assert _ignored(log) & (1 << (13 - 1) | 1 << (25 - 1)) == 0, log
    assert "/dev/null" in log.splitlines()[2]
    fds = {int(x) for x in log.splitlines()[3:] if x.strip().isdigit()}
    assert {0, 1, 2} <= fds, log
    assert len(fds) <= 5, log  # + the sentinel (+ the shell's own)
    assert spawned == [("sh", "-c", script)]


async def test_no_inheritable_descriptor_of_planrun_reaches_a_step(
    tmp_path: Path, spawned: list[tuple[str, ...]]
) -> None:
    """An inheritable fd in planrun's process (one its parent passed, say) is not
    inherited by steps: ``Popen`` closes it, and so does ``posix_spawn``."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        log = await _run(tmp_path, _spec(tmp_path, ("ls", "/proc/self/fd")))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert write_end not in {int(x) for x in log.split()}
    assert spawned == [("ls", "/proc/self/fd")]


async def test_a_program_is_looked_up_in_the_steps_own_path(tmp_path: Path) -> None:
    """``PATH`` from the step's env (not planrun's) finds the program, as with
    ``Popen``; a program nowhere on planrun's ``PATH`` is "command not found"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "only-here"
    tool.write_text("#!/bin/sh\necho found me\n")
    tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    assert await _run(tmp_path, _spec(tmp_path, ("only-here",), env=env)) == "found me\n"
    with LocalExecutor() as executor:
        executor.start_run("leader@000000000000")
        result = await executor.run(_spec(tmp_path, ("only-here",), 2), lambda pid: None)
    assert result.exit_code is None
    assert result.error is not None
    assert "command not found: 'only-here'" in result.error
    (bin_dir / "not-executable").write_text("#!/bin/sh\necho no\n")
    with LocalExecutor() as executor:
        executor.start_run("leader@000000000000")
        spec = _spec(tmp_path, ("not-executable",), 3, env=env)
        result = await executor.run(spec, lambda pid: None)
    assert result.error is not None
    assert "permission denied: 'not-executable'" in result.error


async def test_a_program_on_planruns_own_path_is_found_as_exec_finds_it(
    tmp_path: Path, spawned: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the step's ``PATH`` planrun's own (the search is then glibc's
    ``posix_spawnp``): a program that is not executable earlier on ``PATH`` is passed
    over for one later on it; one that is only there is "permission denied"; one that
    is nowhere is "command not found"."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, mode in ((first, 0o644), (second, 0o755)):
        folder.mkdir()
        tool = folder / "tool"
        tool.write_text(f"#!/bin/sh\necho {folder.name}\n")
        tool.chmod(mode)
    (first / "only-first").write_text("#!/bin/sh\necho no\n")
    monkeypatch.setenv("PATH", f"{first}:{second}:/usr/bin:/bin")
    assert await _run(tmp_path, _spec(tmp_path, ("tool",))) == "second\n"
    assert spawned == [("tool",)]
    cases = [
        ("only-first", "permission denied: 'only-first'"),
        ("nowhere", "command not found: 'nowhere'"),
    ]
    for n, (name, error) in enumerate(cases):
        with LocalExecutor() as executor:
            executor.start_run("leader@000000000000")
            result = await executor.run(_spec(tmp_path, (name,), n + 2), lambda pid: None)
        assert result.exit_code is None
        assert result.error is not None
        assert error in result.error, result
