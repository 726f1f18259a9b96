"""``run_plan(on_output=...)``: every line a step writes, while it runs, masked."""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

import pytest

from planrun import OutputLine, run_plan
from planrun.executors.pump import MAX_LINE_BYTES

from .helpers import make_plan, py_step, read_text, sh_step

pytestmark = pytest.mark.anyio

SECRET = "hunter2-very-secret"  # noqa: S105 - a test value

#: Writes to stdout and stderr in turns, a secret split across two writes (with a
#: pause, so the pump reads them apart), a line longer than the cap, and a last line
#: without a newline.
CHATTY = f"""
import os, sys, time
def w(fd, data):
    os.write(fd, data.encode())
w(1, "one\\n")
w(2, "two on stderr\\n")
w(1, "crlf line\\r\\n")
w(1, "token={SECRET[:7]}")
time.sleep(0.2)
w(1, "{SECRET[7:]} end\\n")
w(1, "x" * {MAX_LINE_BYTES + 5000} + "\\n")
w(2, "after the long one\\n")
w(1, "no newline at the end")
"""


def _plan(tmp_path: Path) -> dict[str, object]:
    counter = tmp_path / "tries"
    flaky = (
        'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > "$1"; '
        'echo "try $n"; [ "$n" -ge 2 ]'
    )
    return make_plan(
        [
            py_step("chatty", CHATTY, env={"TOKEN": "${TOKEN}"}),
            sh_step("flaky", flaky, str(counter), retries=1, retry_delay_sec=0),
        ]
    )


async def test_on_output_gets_each_line_masked_in_order(tmp_path: Path, state_dir: Path) -> None:
    """Each line reaches on_output once, on the loop's thread, in order per attempt,
    masked (a secret split across writes too), a long line cut and marked, the last
    partial line flushed, retries with their own attempt numbers."""
    got: list[OutputLine] = []
    threads: set[int] = set()

    def on_output(line: OutputLine) -> None:
        threads.add(threading.get_ident())
        got.append(line)

    result = await run_plan(
        _plan(tmp_path), state_dir=state_dir, secrets={"TOKEN": SECRET}, on_output=on_output
    )
    assert result.ok, result
    assert threads == {threading.get_ident()}
    chatty = [(line.text, line.cut) for line in got if line.step_id == "chatty"]
    assert chatty == [
        ("one", False),
        ("two on stderr", False),
        ("crlf line", False),
        ("token=*** end", False),
        ("x" * MAX_LINE_BYTES, True),
        ("after the long one", False),
        ("no newline at the end", False),
    ]
    assert all(line.attempt == 1 for line in got if line.step_id == "chatty")
    flaky = [(line.attempt, line.text) for line in got if line.step_id == "flaky"]
    assert flaky == [(1, "try 1"), (2, "try 2")]
    assert SECRET not in "".join(line.text for line in got)


async def test_the_log_is_the_same_with_or_without_on_output(
    tmp_path: Path, state_dir: Path
) -> None:
    """on_output changes nothing in the log files: the same bytes with secrets (the
    pump's path) and without (the direct-to-file path when no callback is given)."""
    logs: dict[tuple[str, bool], bytes] = {}
    for with_secret in (True, False):
        for with_callback in (True, False):
            plan = make_plan([py_step("chatty", CHATTY, env={"TOKEN": "${TOKEN}"})])
            result = await run_plan(
                plan,
                state_dir=state_dir,
                secrets={"TOKEN": SECRET} if with_secret else None,
                variables=None if with_secret else {"TOKEN": "plain"},
                on_output=(lambda line: None) if with_callback else None,
            )
            assert result.ok
            path = result.steps["chatty"].attempts[0].log_path
            assert path is not None
            key = ("secret" if with_secret else "plain", with_callback)
            logs[key] = read_text(path).encode()
    assert logs[("secret", True)] == logs[("secret", False)]
    assert logs[("plain", True)] == logs[("plain", False)]
    assert b"token=*** end" in logs[("secret", True)]
    assert b"x" * (MAX_LINE_BYTES + 5000) in logs[("plain", True)]


async def test_a_raising_on_output_is_dropped_and_the_run_goes_on(
    tmp_path: Path, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A callback that raises is called no more, warned about once, and the run and
    its log are unaffected."""
    calls: list[OutputLine] = []

    def broken(line: OutputLine) -> None:
        calls.append(line)
        raise RuntimeError("display gone")

    plan = make_plan([sh_step("many", 'for i in 1 2 3 4 5; do echo "line $i"; done')])
    with caplog.at_level(logging.WARNING, logger="planrun"):
        result = await run_plan(plan, state_dir=state_dir, on_output=broken)
    assert result.ok
    assert len(calls) == 1
    warnings = [r for r in caplog.records if "on_output raised" in r.getMessage()]
    assert len(warnings) == 1
    log = read_text(result.steps["many"].attempts[0].log_path)
    assert log == "".join(f"line {i}\n" for i in range(1, 6))


def _keep(lines: list[str], text: str, cut: bool) -> None:
    lines.append(text)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_pump_on_a_reader_callback_copies_lines_and_hands_on_its_error(
    anyio_backend: str,
) -> None:
    """The executor's pump on asyncio copies from a reader callback (no task): the
    lines a real process writes arrive, and a log write that fails (``/dev/full``) is
    not lost in the loop's exception handler: ``stop`` returns it for the attempt."""
    import os

    import anyio

    from planrun.executors.pump import Pump

    for log_path, expect_error in (("/dev/null", False), ("/dev/full", True)):
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)
        lines: list[str] = []
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CLOEXEC)
        pump = Pump(read_end, log_fd, None, None, functools.partial(_keep, lines))
        assert pump.start()
        proc = await anyio.open_process(["sh", "-c", "echo one; echo two"], stdout=write_end)
        os.close(write_end)
        with anyio.fail_after(10):
            await pump.done.wait()
        # (After a failed write the pipe is closed: a second write may get SIGPIPE.)
        assert await proc.wait() == 0 or expect_error
        error = pump.stop()
        assert (error is not None) == expect_error, log_path
        if expect_error:
            assert isinstance(error, OSError)
        else:
            assert lines == ["one", "two"]
