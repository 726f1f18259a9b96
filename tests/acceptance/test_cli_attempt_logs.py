"""Attempt logs through the real CLI: a log is always a new file (a link planted at the
next attempt's log path is refused, its target untouched), and ``max_log_bytes`` keeps
the head and the tail of a big log with a marker saying how much was dropped."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from ._cli import PY, clean_env, planrun, sh, write_json

RUN = "r-logs"


def show(tmp_path: Path) -> dict[str, Any]:
    result = planrun("show", RUN, "--json", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def run(tmp_path: Path, plan: dict[str, Any], **env: str) -> str:
    """Run ``plan`` as run ``RUN`` in ``tmp_path/state``; its exit code and output."""
    path = write_json(tmp_path / "plan.json", plan)
    result = planrun(
        "run",
        path,
        "--run-id",
        RUN,
        "--state-dir",
        tmp_path / "state",
        cwd=tmp_path,
        env=clean_env(**env),
        timeout=60,
    )
    return f"{result.returncode}\n{result.stdout}{result.stderr}"


# --- a planted link at the next attempt's log path ------------------------------------


@pytest.mark.parametrize(
    ("plant", "what"),
    [
        pytest.param('ln -s "$TARGET" "$log2"', "a symbolic link", id="symlink"),
        pytest.param('ln "$TARGET" "$log2"', "a hard link", id="hard-link"),
        pytest.param('mkfifo "$log2"', "a FIFO", id="fifo"),
    ],
)
def test_a_link_planted_at_the_next_attempts_log_fails_that_attempt(
    tmp_path: Path, plant: str, what: str
) -> None:
    """The retry's log path already holds a link (or a FIFO) that a step put there: the
    retry fails with an error naming the path and what is there; the target's content
    and mode are unchanged and the retry's output went nowhere (planrun never blocks on
    the FIFO)."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("original\n")
    target.chmod(0o640)
    script = (
        'log2="$STATE/runs/$PLANRUN_RUN_ID/logs/s.2.log"; '
        f'if [ "$PLANRUN_ATTEMPT" = 1 ]; then {plant}; exit 1; fi; '
        "echo retry-output-that-must-not-leak"
    )
    env = {"STATE": str(tmp_path / "state"), "TARGET": str(target)}
    plan = {"plan_id": "plant", "steps": [sh("s", script, retries=1, env=env)]}
    out = run(tmp_path, plan)
    assert out.startswith("1\n"), out
    log2 = tmp_path / "state" / "runs" / RUN / "logs" / "s.2.log"
    assert target.read_text() == "original\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    (step,) = show(tmp_path)["steps"]
    assert [a["state"] for a in step["attempts"]] == ["failed", "failed"]
    error = step["attempts"][1]["error"]
    assert str(log2) in error, error
    assert what in error, error
    assert step["attempts"][1]["exit_code"] is None  # it never started
    assert "retry-output-that-must-not-leak" not in out
    assert "original" not in out  # the summary's log tail does not show the target


def test_a_fresh_run_and_its_resume_write_new_log_files(tmp_path: Path) -> None:
    """Every attempt's log is a new file, also after ``resume`` (attempts are numbered
    after the earlier ones): the earlier logs keep their content."""
    plan = {
        "plan_id": "resume-logs",
        "steps": [sh("s", 'echo "attempt $PLANRUN_ATTEMPT"; [ -e ok ]')],
    }
    out = run(tmp_path, plan)
    assert out.startswith("1\n"), out
    (tmp_path / "ok").touch()
    result = planrun("resume", RUN, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    logs = tmp_path / "state" / "runs" / RUN / "logs"
    assert (logs / "s.1.log").read_text() == "attempt 1\n"
    assert (logs / "s.2.log").read_text() == "attempt 2\n"


# --- max_log_bytes ----------------------------------------------------------------------

MIB = 1024 * 1024

#: ``PY -c WRITER N``: writes N numbered 64-byte lines to stdout, one per write call
#: in blocks, from ``HEAD`` to ``TAIL`` (deterministic: the expected log is computed).
WRITER = (
    "import sys\n"
    "n = int(sys.argv[1])\n"
    "out = sys.stdout.buffer\n"
    "block = []\n"
    "for i in range(n):\n"
    "    block.append(b'line %010d ' % i + b'x' * 47 + b'\\n')\n"
    "    if len(block) == 1000:\n"
    "        out.write(b''.join(block)); block = []\n"
    "out.write(b''.join(block))\n"
)


def expected_lines(n: int) -> bytes:
    return b"".join(b"line %010d " % i + b"x" * 47 + b"\n" for i in range(n))


def marker_of(dropped: int, cap: int) -> bytes:
    return f"\n[planrun: {dropped} bytes dropped here (max_log_bytes is {cap})]\n".encode()


@pytest.mark.parametrize("where", ["globals", "step"])
def test_a_20_mb_log_with_a_1_mib_cap_keeps_head_marker_and_tail(
    tmp_path: Path, where: str
) -> None:
    """A step writing 20 MB with ``max_log_bytes`` 1 MiB (global, or on the step over a
    larger global) leaves exactly the first 512 KiB, one marker line with the number of
    bytes dropped, and the last 512 KiB; the step itself succeeds."""
    n = 20 * MIB // 64
    step: dict[str, Any] = {"id": "big", "command": PY, "args": ["-c", WRITER, str(n)]}
    plan: dict[str, Any] = {"plan_id": "cap", "steps": [step]}
    if where == "globals":
        plan["globals"] = {"max_log_bytes": MIB}
    else:
        plan["globals"] = {"max_log_bytes": 8 * MIB}
        step["max_log_bytes"] = MIB
    out = run(tmp_path, plan)
    assert out.startswith("0\n"), out
    log = (tmp_path / "state" / "runs" / RUN / "logs" / "big.1.log").read_bytes()
    data = expected_lines(n)
    dropped = len(data) - MIB
    marker = marker_of(dropped, MIB)
    assert len(log) == MIB + len(marker) <= MIB + 100
    assert log == data[: MIB // 2] + marker + data[-(MIB // 2) :]
    assert log.count(b"[planrun: ") == 1


def test_a_log_under_the_cap_is_stored_whole_without_a_marker(tmp_path: Path) -> None:
    """Output smaller than the cap is kept byte for byte, with no marker."""
    n = 1000
    plan = {
        "plan_id": "small",
        "globals": {"max_log_bytes": MIB},
        "steps": [{"id": "big", "command": PY, "args": ["-c", WRITER, str(n)]}],
    }
    out = run(tmp_path, plan)
    assert out.startswith("0\n"), out
    log = (tmp_path / "state" / "runs" / RUN / "logs" / "big.1.log").read_bytes()
    assert log == expected_lines(n)


def test_masking_and_the_cap_together_still_mask(tmp_path: Path) -> None:
    """With a secret and a cap, the secret is masked in the head and in the tail (split
    across writes too), and the log is the masked stream's head, marker and tail."""
    secret = "s3cr3t-token-value"  # noqa: S105 - a test value
    script = (
        "import os, sys\n"
        "s = os.environ['TOKEN'].encode()\n"
        "out = sys.stdout.buffer\n"
        "out.write(b'head ' + s + b'\\n'); out.flush()\n"
        "for i in range(20000):\n"
        "    out.write(b'filler %08d ' % i + b'y' * 40 + b'\\n')\n"
        "out.flush()\n"
        "out.write(b'tail ' + s[:5]); out.flush()\n"
        "out.write(s[5:] + b' end\\n'); out.flush()\n"
    )
    cap = 64 * 1024
    plan = {
        "plan_id": "masked-cap",
        "secrets": ["TOKEN"],
        "globals": {"max_log_bytes": cap},
        "steps": [{"id": "m", "command": PY, "args": ["-c", script]}],
    }
    out = run(tmp_path, plan, TOKEN=secret)
    assert out.startswith("0\n"), out
    log = (tmp_path / "state" / "runs" / RUN / "logs" / "m.1.log").read_bytes()
    assert secret.encode() not in log
    assert log.startswith(b"head ***\n")
    assert log.endswith(b"tail *** end\n")
    match = re.search(rb"\n\[planrun: (\d+) bytes dropped here \(max_log_bytes is 65536\)\]\n", log)
    assert match is not None
    masked_total = len(b"head ***\n") + 20000 * 57 + len(b"tail *** end\n")
    assert int(match.group(1)) == masked_total - cap
    assert len(log) == cap + len(match.group(0))


def test_max_log_bytes_must_be_positive(tmp_path: Path) -> None:
    """``max_log_bytes: 0`` is a validation error at its JSON path (exit 2)."""
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "bad", "steps": [{"id": "a", "command": "true", "max_log_bytes": 0}]},
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "$.steps[0].max_log_bytes" in result.stderr
    assert os.listdir(tmp_path) == ["plan.json"]
