"""`planrun logs` on big logs (issue 10, finding 6, the reading side): it streams in
constant memory, `--tail N` starts at the last N lines (found from the end), and a
missing log file is a message naming it with exit 1, not silence."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ._cli import PLANRUN, PY, clean_env, planrun, sh, write_json

RUN_ID = "r-logs"
BIG = 300 * 1024 * 1024
#: Real lines after the big (sparse, NUL-filled, newline-free) start of the file.
LAST = [f"last line {i}" for i in range(1, 11)]

#: Runs the command in argv[1:], reads its stdout in chunks, and prints how many bytes
#: it wrote, the last 200 of them and its exit code, and the child's peak RSS (KiB).
MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
total, tail = 0, b""
while chunk := proc.stdout.read(1 << 20):
    total += len(chunk)
    tail = (tail + chunk)[-200:]
code = proc.wait()
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"bytes": total, "tail": tail.decode("latin-1"), "code": code, "rss_kib": rss}))
"""


def _finished_run(tmp_path: Path) -> Path:
    """A finished run with steps `big` and `small`; its state dir."""
    state = tmp_path / "state"
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "logs", "steps": [sh("big", "echo start"), sh("small", "echo small")]},
    )
    result = planrun("run", plan, "--run-id", RUN_ID, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return state


def _log(state: Path, step: str) -> Path:
    return state / "runs" / RUN_ID / "logs" / f"{step}.1.log"


def _make_big(path: Path) -> int:
    """Make ``path`` a 300 MB log: a sparse, newline-free start (one huge line, which
    no reader may hold whole), then ``LAST``. Returns its size."""
    with path.open("r+b") as f:
        f.truncate(BIG)
        f.seek(0, 2)
        f.write(("\n" + "\n".join(LAST) + "\n").encode())
        return f.tell()


def _measure(tmp_path: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [PY, "-c", MEASURE, *PLANRUN, *args],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("one_step", [True, False], ids=["step", "every-step"])
def test_logs_of_a_300_mb_log_streams_in_constant_memory(tmp_path: Path, one_step: bool) -> None:
    """`logs` of a 300 MB attempt log prints all of it (prefixed when every step is
    shown) while its peak RSS stays under 100 MB."""
    state = _finished_run(tmp_path)
    size = _make_big(_log(state, "big"))
    args = ["logs", RUN_ID, *(["big"] if one_step else []), "--state-dir", str(state)]
    got = _measure(tmp_path, *args)
    assert got["code"] == 0
    if one_step:
        assert got["bytes"] == size
        assert str(got["tail"]).endswith("\n".join(LAST[-3:]) + "\n")
    else:
        # "[big] " before each of its 12 lines (the huge one included), then small's.
        assert got["bytes"] == size + 12 * len("[big] ") + len("[small] small\n")
        assert str(got["tail"]).endswith("[big] last line 10\n[small] small\n")
    assert isinstance(got["rss_kib"], int)
    assert got["rss_kib"] < 100 * 1024, f"peak RSS {got['rss_kib']} KiB"


def test_tail_of_a_300_mb_log_reads_only_its_end(tmp_path: Path) -> None:
    """`logs --tail 5` of the 300 MB log prints exactly its last 5 lines, in little
    memory (it seeks from the end)."""
    state = _finished_run(tmp_path)
    _make_big(_log(state, "big"))
    got = _measure(tmp_path, "logs", RUN_ID, "big", "--tail", "5", "--state-dir", str(state))
    assert got["code"] == 0
    expected = "\n".join(LAST[-5:]) + "\n"
    assert got["bytes"] == len(expected)
    assert got["tail"] == expected
    assert isinstance(got["rss_kib"], int)
    assert got["rss_kib"] < 100 * 1024, f"peak RSS {got['rss_kib']} KiB"


@pytest.mark.parametrize("newline_at_end", [True, False], ids=["newline", "no-newline"])
def test_tail_prints_exactly_the_last_lines(tmp_path: Path, newline_at_end: bool) -> None:
    """`--tail 5` prints the last 5 lines (a last line without a newline counts, and
    gets one); `--tail` more than there are prints all; with no STEP, each step's last
    N lines, prefixed; `--tail 0` prints nothing."""
    state = _finished_run(tmp_path)
    lines = [f"line {i:04d} " + "x" * (i % 97) for i in range(1, 5001)]
    _log(state, "big").write_text("\n".join(lines) + ("\n" if newline_at_end else ""))

    def logs(*args: str) -> str:
        result = planrun("logs", RUN_ID, *args, "--state-dir", state, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert logs("big", "--tail", "5") == "\n".join(lines[-5:]) + "\n"
    assert logs("big", "--tail", "1") == lines[-1] + "\n"
    assert logs("small", "--tail", "5") == "small\n"
    assert logs("--tail", "2").splitlines() == [
        f"[big] {lines[-2]}",
        f"[big] {lines[-1]}",
        "[small] small",
    ]
    assert logs("big", "--tail", "0") == ""


@pytest.mark.parametrize("one_step", [True, False], ids=["step", "every-step"])
def test_a_missing_log_file_is_an_error_naming_it(tmp_path: Path, one_step: bool) -> None:
    """A deleted log file: `logs` says which file is missing and exits 1 (the other
    steps' logs are still printed)."""
    state = _finished_run(tmp_path)
    gone = _log(state, "big")
    gone.unlink()
    args: list[str | Path] = ["logs", RUN_ID, *(["big"] if one_step else []), "--state-dir", state]
    result = planrun(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the log of step 'big' is missing: {gone}" in result.stderr
    assert result.stdout == ("" if one_step else "[small] small\n")


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_logs_never_follows_a_link_or_blocks_on_a_fifo(tmp_path: Path, kind: str) -> None:
    """Something other than the file planrun wrote at a log path (a step can plant a
    link or a FIFO there): `logs` names it and exits 1, without printing the link's
    target and without blocking on the FIFO; the other steps' logs are still printed."""
    state = _finished_run(tmp_path)
    log = _log(state, "big")
    log.unlink()
    if kind == "symlink":
        target = tmp_path / "private.txt"
        target.write_text("not a log\n")
        log.symlink_to(target)
        what = "a symbolic link"
    else:
        os.mkfifo(log)
        what = "not a regular file"
    result = planrun("logs", RUN_ID, "--state-dir", state, cwd=tmp_path, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"the log of step 'big' is {what}" in result.stderr
    assert "not a log" not in result.stdout
    assert result.stdout == "[small] small\n"
