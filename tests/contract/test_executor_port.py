"""The executor contract, through the ``Executor`` port, on every executor: one attempt
per ``run``, its exit code, output, log, timeout, cancellation and clean-up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from planrun.masking import Masker
from planrun.ports import AttemptSpec, Executor, ProcessResult

from ..integration.helpers import live_processes_with, poll_until
from .conftest import MARK_VAR

pytestmark = pytest.mark.anyio

#: Two grandchildren: one in the group, one that left it with setsid.
TREE = "sleep 30 & setsid sleep 30 & echo up; wait"


def spec(
    tmp_path: Path, mark: str, script: str, *, attempt: int = 1, **fields: object
) -> AttemptSpec:
    """An attempt of a ``sh -c script`` step, its processes marked with ``mark``."""
    env = {MARK_VAR: mark, **fields.pop("env", {})}  # type: ignore[dict-item]
    values: dict[str, object] = {
        "run_id": f"contract-{mark}",
        "step_id": "s",
        "attempt": attempt,
        "argv": ("sh", "-c", script),
        "env": env,
        "cwd": None,
        "timeout": None,
        "kill_grace": 0.5,
        "log_path": str(tmp_path / f"s.{attempt}.{time.monotonic_ns()}.log"),
    }
    values.update(fields)
    return AttemptSpec(**values)  # type: ignore[arg-type]


def log_of(attempt: AttemptSpec) -> str:
    assert attempt.log_path is not None
    return Path(attempt.log_path).read_text()


async def run(executor: Executor, attempt: AttemptSpec) -> ProcessResult:
    started: list[int | None] = []
    result = await executor.run(attempt, started.append)
    assert len(started) == 1, "on_started is called exactly once"
    return result


async def test_exit_code_output_and_log(executor: Executor, tmp_path: Path, mark: str) -> None:
    """The exit code comes back, stdout and stderr are in the log, in order."""
    attempt = spec(tmp_path, mark, "echo out; echo err >&2; exit 7")
    result = await run(executor, attempt)
    assert result.exit_code == 7
    assert not result.timed_out
    assert log_of(attempt) == "out\nerr\n"


async def test_killed_by_signal_is_negative(executor: Executor, tmp_path: Path, mark: str) -> None:
    """A step ended by a signal has the negative signal number as exit code."""
    result = await run(executor, spec(tmp_path, mark, "kill -KILL $$"))
    assert result.exit_code == -9


async def test_outputs_file(executor: Executor, tmp_path: Path, mark: str) -> None:
    """What the step writes to $PLANRUN_OUTPUT is the result's outputs."""
    script = 'echo "k=v 1" >> "$PLANRUN_OUTPUT"; echo "n=2" >> "$PLANRUN_OUTPUT"'
    result = await run(executor, spec(tmp_path, mark, script))
    assert result.exit_code == 0
    assert result.outputs == {"k": "v 1", "n": "2"}


async def test_env_and_markers(executor: Executor, tmp_path: Path, mark: str) -> None:
    """The step's resolved env and planrun's markers reach the process."""
    script = 'echo "$PR_X|$PLANRUN_STEP_ID|$PLANRUN_ATTEMPT|$PLANRUN_RUN_ID"'
    attempt = spec(tmp_path, mark, script, attempt=2, env={"PR_X": "a b"})
    assert (await run(executor, attempt)).exit_code == 0
    assert log_of(attempt) == f"a b|s|2|contract-{mark}\n"


async def test_whose_environment(
    executor: Executor,
    executor_kind: str,
    tmp_path: Path,
    mark: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A local step inherits planrun's environment; a Dask step the worker's, never
    the coordinator's (only the step's env and planrun's markers travel)."""
    monkeypatch.setenv("PR_COORDINATOR_ONLY", "here")
    attempt = spec(tmp_path, mark, 'echo "[$PR_COORDINATOR_ONLY]"')
    assert (await run(executor, attempt)).exit_code == 0
    assert log_of(attempt) == ("[here]\n" if executor_kind == "local" else "[]\n")


async def test_secret_masked_in_log(executor: Executor, tmp_path: Path, mark: str) -> None:
    """A secret the step prints never reaches the log."""
    attempt = spec(
        tmp_path,
        mark,
        'echo "token=$TOK"',
        env={"TOK": "hunter2-secret"},
        masker=Masker(["hunter2-secret"]),
    )
    assert (await run(executor, attempt)).exit_code == 0
    assert log_of(attempt) == "token=***\n"


async def test_log_capped(executor: Executor, tmp_path: Path, mark: str) -> None:
    """max_log_bytes keeps the log's head and tail."""
    script = "for i in $(seq 1 2000); do echo line$i; done"
    attempt = spec(tmp_path, mark, script, max_log_bytes=400)
    assert (await run(executor, attempt)).exit_code == 0
    text = log_of(attempt)
    assert text.startswith("line1\nline2\n")
    assert text.endswith("line2000\n")
    assert len(text) < 600


async def test_missing_cwd(
    executor: Executor, executor_kind: str, tmp_path: Path, mark: str
) -> None:
    """A cwd that does not exist: the attempt never starts, the error says why (and
    on which worker)."""
    attempt = spec(tmp_path, mark, "true", cwd=str(tmp_path / "nowhere"))
    result = await run(executor, attempt)
    assert result.exit_code is None
    assert result.error is not None
    assert "working directory does not exist" in result.error
    assert ("on worker tcp://" in result.error) == (executor_kind == "dask")
    assert "nowhere" in log_of(attempt)


async def test_timeout_kills_the_whole_tree(executor: Executor, tmp_path: Path, mark: str) -> None:
    """On timeout the group and the setsid escapee are gone when run returns."""
    result = await run(executor, spec(tmp_path, mark, TREE, timeout=0.5))
    assert result.timed_out
    assert live_processes_with(f"{MARK_VAR}={mark}") == []


def _sessions(pids: list[int]) -> set[int]:
    found = set()
    for pid in pids:
        try:
            found.add(os.getsid(pid))
        except OSError:  # gone meanwhile
            continue
    return found


async def _cancel_after_start(executor: Executor, attempt: AttemptSpec, mark: str) -> float:
    """Run ``attempt`` (a tree with a ``setsid`` escapee), cancel it once its whole tree
    is up, the escapee in a session of its own (three processes alone could be the
    escapee's fork that has not called ``setsid`` yet: it would then miss the TERM,
    rightly, and live until the grace ends); seconds from cancel to end."""

    def tree_up() -> bool:
        pids = live_processes_with(f"{MARK_VAR}={mark}")
        return len(pids) >= 3 and len(_sessions(pids)) >= 2

    cancelled_at = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run, attempt, lambda pid: None)
        with anyio.fail_after(20):
            await poll_until(tree_up)
        cancelled_at = time.monotonic()
        tg.cancel_scope.cancel()
    return time.monotonic() - cancelled_at


async def test_cancel_stops_tree_with_term(executor: Executor, tmp_path: Path, mark: str) -> None:
    """Cancelling run stops the tree (escapee included) by TERM, not waiting for a
    30 s grace."""
    took = await _cancel_after_start(executor, spec(tmp_path, mark, TREE, kill_grace=30), mark)
    assert live_processes_with(f"{MARK_VAR}={mark}") == []
    assert took < 10


async def test_cancel_kills_after_grace(executor: Executor, tmp_path: Path, mark: str) -> None:
    """A tree that ignores TERM is SIGKILLed after kill_grace, within kill_grace + 1 s
    (a generous bound here)."""
    script = "trap '' TERM; sleep 30 & setsid sleep 30 & wait; wait"
    took = await _cancel_after_start(executor, spec(tmp_path, mark, script, kill_grace=0.5), mark)
    assert live_processes_with(f"{MARK_VAR}={mark}") == []
    assert took < 8


async def test_cancel_right_after_another_stop(
    executor: Executor, tmp_path: Path, mark: str
) -> None:
    """An attempt cancelled a moment after another attempt was stopped still gets its
    escapee stopped by TERM (a /proc scan taken before it started cannot have found
    it), not after its 30 s grace."""
    first = await run(executor, spec(tmp_path, mark, TREE, timeout=0.3, kill_grace=0.1))
    assert first.timed_out
    second = spec(tmp_path, mark, TREE, attempt=2, kill_grace=30)
    took = await _cancel_after_start(executor, second, mark)
    assert live_processes_with(f"{MARK_VAR}={mark}") == []
    assert took < 10


async def test_kill_all(executor: Executor, tmp_path: Path, mark: str) -> None:
    """kill_all (the second Ctrl-C) SIGKILLs a running group that ignores TERM at once:
    the cancel that follows does not wait for its 30 s grace."""
    attempt = spec(tmp_path, mark, "trap '' TERM; sleep 30 & sleep 30 & wait; wait", kill_grace=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(executor.run, attempt, lambda pid: None)
        with anyio.fail_after(20):
            await poll_until(lambda: len(live_processes_with(f"{MARK_VAR}={mark}")) >= 3)
        begin = time.monotonic()
        executor.kill_all()  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            await poll_until(lambda: not live_processes_with(f"{MARK_VAR}={mark}"))
        tg.cancel_scope.cancel()
    assert time.monotonic() - begin < 10
