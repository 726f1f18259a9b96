"""``--json`` on every command that prints a result (issue 13, item 6), through the real
CLI: each output parsed with ``json.loads`` (NDJSON line by line), ``run --json``'s
events equal to ``watch --json``'s for the same run, secrets masked in every document,
errors as one ``{"type": "error"}`` object with the exit code of the README's table."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import uuid
from pathlib import Path
from typing import Any

import pytest

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    read_events,
    sh,
    wait_until,
    write_json,
)

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_LOCKED, EXIT_CANCELLED = 0, 1, 2, 3, 130
TOKEN = 'tok-"Zq9\\s3cr/et-w\u00f6rd'  # noqa: S105 - a test value with JSON-escaped forms
ERROR_KEYS = {"type", "exit_code", "error", "message", "hint"}
PROBLEM_KEYS = {"path", "step_id", "line", "column", "message", "hint", "severity"}


def lines(stdout: str) -> list[dict[str, Any]]:
    """Every line of stdout as one JSON object (fails on any line that is not one)."""
    assert stdout.endswith("\n"), stdout
    docs = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(d, dict) and "type" in d for d in docs), docs
    return docs


def one_doc(stdout: str) -> dict[str, Any]:
    docs = lines(stdout)
    assert len(docs) == 1, stdout
    return docs[0]


def secret_forms() -> list[str]:
    return sorted({TOKEN, json.dumps(TOKEN)[1:-1], json.dumps(TOKEN, ensure_ascii=False)[1:-1]})


def assert_masked(text: str) -> None:
    for form in secret_forms():
        assert form not in text, f"secret form {form!r} leaked"


def _failing_plan(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "jsonplan",
            "secrets": ["TOKEN"],
            "globals": {"max_concurrency": 2},
            "steps": [
                sh(
                    "fetch",
                    'printf "%s\\n" "$TOKEN"; printf "tok=%s\\n" "$T_SUB" >> "$PLANRUN_OUTPUT"',
                    env={"T_SUB": "${TOKEN}"},
                ),
                sh(
                    "flaky",
                    '[ "$PLANRUN_ATTEMPT" -ge 2 ] || exit 3',
                    retries=1,
                    depends_on=["fetch"],
                ),
                sh("broken", "echo bad; exit 1", depends_on=["fetch"], on_failure="continue"),
                sh("after", "true", depends_on=["broken", "flaky"]),
            ],
        },
    )


def _env(**extra: str) -> dict[str, str]:
    return clean_env(TOKEN=TOKEN, **extra)


# --- validate --------------------------------------------------------------------------


def test_validate_json_valid_plan(tmp_path: Path) -> None:
    """A valid plan: ok, its id, its steps and levels; exit 0; nothing else on stdout."""
    plan = _failing_plan(tmp_path)
    result = planrun("validate", plan, "--json", cwd=tmp_path, env=_env())
    assert result.returncode == EXIT_OK, result.stderr
    doc = one_doc(result.stdout)
    assert doc["type"] == "validation"
    assert doc["ok"] is True
    assert doc["plan"] == str(plan)
    assert doc["plan_id"] == "jsonplan"
    assert doc["steps"] == ["fetch", "flaky", "broken", "after"]
    assert doc["levels"] == [["fetch"], ["flaky", "broken"], ["after"]]
    assert doc["problems"] == []


def test_validate_json_lists_each_problem(tmp_path: Path) -> None:
    """An invalid plan: ok false, exit 2, each problem with its path, step id, message,
    hint and severity (errors and warnings); no line/column for a JSON path."""
    plan = write_json(
        tmp_path / "bad.json",
        {
            "plan_id": "bad",
            "variables": {"WHO": "x"},
            "steps": [
                sh("a", "echo ${WHO}"),  # a warning: spliced into a shell script
                sh("b", "true", depends_on=["aa"]),
            ],
        },
    )
    result = planrun("validate", plan, "--json", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID, result.stderr
    doc = one_doc(result.stdout)
    assert doc["ok"] is False
    assert "invalid plan" in result.stderr  # people still read stderr
    for problem in doc["problems"]:
        assert set(problem) == PROBLEM_KEYS
    by_step = {(p["step_id"], p["severity"]): p for p in doc["problems"]}
    dep = by_step[("b", "error")]
    assert dep["path"] == "$.steps[1].depends_on[0]"
    assert "unknown dependency 'aa'" in dep["message"]
    assert dep["hint"] == "did you mean 'a'?"
    assert dep["line"] is None
    assert dep["column"] is None
    assert ("a", "warning") in by_step


def test_validate_json_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    """A syntax error is located by line and column, as numbers."""
    plan = tmp_path / "syntax.json"
    plan.write_text('{"plan_id": "x",\n  "steps": [ }\n', encoding="utf-8")
    result = planrun("validate", plan, "--json", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    doc = one_doc(result.stdout)
    assert doc["ok"] is False
    assert doc["plan_id"] is None
    (problem,) = doc["problems"]
    assert (problem["line"], problem["column"]) == (2, 14)
    assert problem["path"] == "2:14"
    assert problem["message"].startswith("syntax error")


# --- run, watch, resume ----------------------------------------------------------------


def test_run_json_streams_the_events_watch_prints(tmp_path: Path) -> None:
    """`run --json`: NDJSON events (the very lines `watch --json` prints afterwards,
    same seq numbers), then one result line; the exit code is the run's; secrets
    masked; no summary or live view on stdout."""
    plan = _failing_plan(tmp_path)
    run_id = f"json-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    result = planrun(
        "run", plan, "--json", "--run-id", run_id, "--state-dir", state, cwd=tmp_path, env=_env()
    )
    assert result.returncode == EXIT_FAILED, result.stderr
    assert_masked(result.stdout + result.stderr)
    docs = lines(result.stdout)
    *events, final = docs
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started"
    assert events[-1]["type"] == "run_finished"
    assert final["type"] == "result"
    assert final["run_id"] == run_id
    assert final["state"] == "failed"
    assert final["exit_code"] == result.returncode
    assert final["steps"]["flaky"]["state"] == "succeeded"
    assert [a["number"] for a in final["steps"]["flaky"]["attempts"]] == [1, 2]
    assert final["steps"]["broken"]["state"] == "failed"
    assert final["counts"] == {"succeeded": 3, "failed": 1}
    assert final["steps"]["fetch"]["outputs"] == {"tok": "***"}
    assert "***" in json.dumps(events)  # the step_finished event's outputs

    watched = planrun("watch", run_id, "--json", "--state-dir", state, cwd=tmp_path)
    assert watched.returncode == EXIT_FAILED
    assert watched.stdout.splitlines() == result.stdout.splitlines()[:-1]
    assert events == read_events(state, run_id)


def test_resume_json_and_explain_json(tmp_path: Path) -> None:
    """`resume --explain --json` prints the choices and changes (typer no longer says
    "did you mean --only"); `resume --json` streams the new events, seqs continuing."""
    plan = _failing_plan(tmp_path)
    run_id = f"json-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    first = planrun("run", plan, "--run-id", run_id, "--state-dir", state, cwd=tmp_path, env=_env())
    assert first.returncode == EXIT_FAILED, first.stderr
    explained = planrun(
        "resume", run_id, "--explain", "--json", "--state-dir", state, cwd=tmp_path, env=_env()
    )
    assert explained.returncode == EXIT_OK, explained.stderr
    assert "did you mean" not in explained.stderr
    doc = one_doc(explained.stdout)
    assert doc["type"] == "explain"
    assert doc["run_id"] == run_id
    assert doc["state"] == "failed"
    actions = {c["step_id"]: c["action"] for c in doc["choices"]}
    assert actions == {"fetch": "reuse", "flaky": "reuse", "broken": "rerun", "after": "rerun"}
    assert all(c["why"] for c in doc["choices"])
    assert doc["rerun"] == ["broken", "after"]
    assert doc["changes"] == []

    last_seq = read_events(state, run_id)[-1]["seq"]
    resumed = planrun("resume", run_id, "--json", "--state-dir", state, cwd=tmp_path, env=_env())
    assert resumed.returncode == EXIT_FAILED, resumed.stderr  # `broken` fails again
    assert_masked(resumed.stdout)
    *events, final = lines(resumed.stdout)
    assert events[0]["type"] == "run_resumed"
    assert [e["seq"] for e in events] == list(range(last_seq + 1, last_seq + 1 + len(events)))
    assert events == read_events(state, run_id)[-len(events) :]
    assert final["type"] == "result"
    assert final["exit_code"] == EXIT_FAILED


def test_dry_run_json_is_the_resolved_plan(tmp_path: Path) -> None:
    """`run --dry-run --json`: levels, each step's argv, env overrides, cwd, timeout,
    retries and policies, secrets masked; nothing is written."""
    plan = write_json(
        tmp_path / "dry.json",
        {
            "plan_id": "dry",
            "secrets": ["TOKEN"],
            "variables": {"WHO": "world"},
            "globals": {"max_concurrency": 3, "env": {"G": "1"}},
            "steps": [
                {"id": "a", "command": "echo", "args": ["hi ${WHO}", "${TOKEN}"]},
                {
                    "id": "b",
                    "command": "true",
                    "depends_on": ["a"],
                    "env": {"K": "v-${TOKEN}"},
                    "cwd": "${PLAN_DIR}",
                    "timeout_sec": 5,
                    "retries": 2,
                    "when": "all_done",
                    "on_failure": "continue",
                    "critical": False,
                },
            ],
        },
    )
    result = planrun("run", plan, "--dry-run", "--json", cwd=tmp_path, env=_env())
    assert result.returncode == EXIT_OK, result.stderr
    assert_masked(result.stdout)
    doc = one_doc(result.stdout)
    assert doc["type"] == "dry_run"
    assert doc["plan_id"] == "dry"
    assert doc["max_concurrency"] == 3
    assert doc["levels"] == [["a"], ["b"]]
    assert doc["secrets"] == ["TOKEN"]
    assert doc["variables"]["WHO"] == "world"
    a, b = doc["steps"]
    assert a["argv"] == ["echo", "hi world", "***"]
    assert a["env"] == {"G": "1"}
    assert a["level"] == 0
    assert b["env"] == {"G": "1", "K": "v-***"}
    assert b["cwd"] == str(tmp_path)
    assert (b["timeout_sec"], b["retries"], b["when"], b["on_failure"], b["critical"]) == (
        5.0,
        2,
        "all_done",
        "continue",
        False,
    )
    assert not (tmp_path / ".planrun").exists()


# --- cancel ----------------------------------------------------------------------------


def test_cancel_json(tmp_path: Path) -> None:
    """`cancel --json` of a running run prints its cancelled state; of a finished run,
    the error object (exit 1) with the state it ended in."""
    state = tmp_path / "state"
    run_id = f"cancel-{uuid.uuid4().hex[:8]}"
    plan = write_json(
        tmp_path / "slow.json",
        {"plan_id": "slow", "globals": {"kill_grace_sec": 1}, "steps": [sh("s", "sleep 60")]},
    )
    with (tmp_path / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [*PLANRUN, "run", str(plan), "--run-id", run_id, "--state-dir", str(state)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        started = lambda: any(e["type"] == "attempt_started" for e in read_events(state, run_id))  # noqa: E731
        assert wait_until(started, timeout=20)
        result = planrun("cancel", run_id, "--json", "--state-dir", state, cwd=tmp_path)
        assert result.returncode == EXIT_OK, result.stderr
        doc = one_doc(result.stdout)
        assert doc == {
            "type": "cancel",
            "run_id": run_id,
            "state": "cancelled",
            "exit_code": EXIT_CANCELLED,
        }
        assert proc.wait(timeout=20) == EXIT_CANCELLED
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
    again = planrun("cancel", run_id, "--json", "--state-dir", state, cwd=tmp_path)
    assert again.returncode == EXIT_FAILED
    doc = one_doc(again.stdout)
    assert set(doc) >= ERROR_KEYS
    assert (doc["error"], doc["exit_code"], doc["state"]) == ("not_cancelled", 1, "cancelled")
    assert "is not running" in again.stderr


# --- errors ----------------------------------------------------------------------------


def _error_cases(tmp_path: Path) -> dict[str, tuple[list[str], str, int]]:
    plan = str(_failing_plan(tmp_path))
    return {
        "plan not found": (["run", "missing.json", "--json"], "invalid_plan", EXIT_INVALID),
        "bad var": (["run", plan, "--json", "--var", "oops"], "usage", EXIT_INVALID),
        "validate bad var": (["validate", plan, "--json", "--var", "=x"], "usage", EXIT_INVALID),
        "dry run bad var": (["run", plan, "--dry-run", "--json", "--var", "x"], "usage", 2),
        "resume unknown": (["resume", "nope", "--json"], "unknown_run", EXIT_INVALID),
        "explain unknown": (["resume", "nope", "--explain", "--json"], "unknown_run", 2),
        "cancel unknown": (["cancel", "nope", "--json"], "unknown_run", EXIT_INVALID),
        "show unknown": (["show", "nope", "--json"], "unknown_run", EXIT_INVALID),
        "watch unknown": (["watch", "nope", "--json"], "unknown_run", EXIT_INVALID),
        "list bad state": (["list", "--state", "nope", "--json"], "usage", EXIT_INVALID),
        "run id taken": (["run", plan, "--json", "--run-id", "taken"], "run_exists", 2),
    }


@pytest.mark.parametrize(
    "case",
    [
        "plan not found",
        "bad var",
        "validate bad var",
        "dry run bad var",
        "resume unknown",
        "explain unknown",
        "cancel unknown",
        "show unknown",
        "watch unknown",
        "list bad state",
        "run id taken",
    ],
)
def test_errors_are_one_json_object(tmp_path: Path, case: str) -> None:
    """Under --json an error is the message on stderr AND one error object on stdout,
    with the exit code of the README's table."""
    args, kind, code = _error_cases(tmp_path)[case]
    state = tmp_path / "state"
    if case != "plan not found":  # a store for the readers (and a taken run id)
        first = planrun(
            "run", tmp_path / "plan.json", "--run-id", "taken", "--state-dir", state,
            cwd=tmp_path, env=_env(),
        )  # fmt: skip
        assert first.returncode == EXIT_FAILED, first.stderr
    where = [] if args[0] == "validate" else ["--state-dir", str(state)]
    result = planrun(*args, *where, cwd=tmp_path, env=_env())
    assert result.returncode == code, result.stdout + result.stderr
    doc = one_doc(result.stdout)
    assert set(doc) >= ERROR_KEYS, doc
    assert (doc["type"], doc["error"], doc["exit_code"]) == ("error", kind, code)
    assert doc["message"]
    assert doc["message"] in result.stderr
    if kind == "invalid_plan":
        assert doc["problems"][0]["message"] == "plan file not found: missing.json"
    if kind == "run_exists":
        assert doc["hint"] == "choose another --run-id"


def test_lock_held_is_an_error_object(tmp_path: Path) -> None:
    """A run whose lock another live run holds: exit 3 and the `lock_held` object."""
    state = tmp_path / "state"
    release = tmp_path / "release"
    marker = tmp_path / "holding"
    script = (
        f'touch "{marker}"; i=0; '
        f'while [ ! -e "{release}" ] && [ $i -lt 600 ]; do i=$((i+1)); sleep 0.05; done'
    )
    plan = write_json(
        tmp_path / "locked.json",
        {"plan_id": "locked", "globals": {"lock": "json-test"}, "steps": [sh("hold", script)]},
    )
    run_id = f"holder-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--run-id", run_id, "--state-dir", str(state)],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(marker.exists, timeout=20)
        result = planrun("run", plan, "--json", "--state-dir", state, cwd=tmp_path)
        assert result.returncode == EXIT_LOCKED, result.stderr
        doc = one_doc(result.stdout)
        assert (doc["type"], doc["error"], doc["exit_code"]) == ("error", "lock_held", 3)
        assert run_id in doc["message"]
    finally:
        release.touch()
        if holder.wait(timeout=30) is None:  # pragma: no cover
            holder.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


# --- never wrapped, never styled -------------------------------------------------------


def _long_plan(tmp_path: Path) -> tuple[Path, str]:
    long_value = "x" * 300 + " end-of-long-value"
    plan = write_json(
        tmp_path / "long.json",
        {
            "plan_id": "long",
            "variables": {"LONG": long_value},  # in run_started's variables
            "steps": [{"id": "s", "command": "echo", "args": ["${LONG}"]}],
        },
    )
    return plan, long_value


def test_json_is_not_wrapped_at_80_columns(tmp_path: Path) -> None:
    """COLUMNS=80 (piped): every document stays one line, long values whole."""
    plan, long_value = _long_plan(tmp_path)
    env = clean_env(COLUMNS="80", FORCE_COLOR="1")
    for args in (["run", str(plan), "--dry-run", "--json"], ["run", str(plan), "--json"]):
        result = planrun(*args, cwd=tmp_path, env=env)
        assert result.returncode == EXIT_OK, result.stderr
        assert "\x1b" not in result.stdout
        docs = lines(result.stdout)
        assert long_value in json.dumps(docs)
        assert max(map(len, result.stdout.splitlines())) > 300  # not cut at 80 either


def _pty_output(args: list[str], cwd: Path, cols: int = 80) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pty ``cols`` wide; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, cols, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # keep "\n" as is: what a program reading a pty gets
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    proc = subprocess.Popen(
        [*PLANRUN, *args], cwd=cwd, env=clean_env(TERM="xterm-256color"), stdout=slave,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the pty
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=30)
    return code, b"".join(chunks).decode()


def test_json_on_a_terminal_is_plain_json(tmp_path: Path) -> None:
    """On a real terminal 80 columns wide: no live view, no colour, no wrapping."""
    plan, long_value = _long_plan(tmp_path)
    for args in (["run", str(plan), "--json"], ["validate", str(plan), "--json"]):
        code, out = _pty_output(args, tmp_path)
        assert code == EXIT_OK, out
        assert "\x1b" not in out
        docs = lines(out)
        if args[0] == "run":
            assert docs[-1]["type"] == "result"
            assert long_value in json.dumps(docs)


def test_run_json_interrupted_ends_with_the_cancelled_result(tmp_path: Path) -> None:
    """SIGINT under `run --json`: the notice on stderr, the events on stdout, and a last
    `result` line saying cancelled, exit 130."""
    plan = write_json(
        tmp_path / "slow.json",
        {"plan_id": "slow", "globals": {"kill_grace_sec": 1}, "steps": [sh("s", "sleep 60")]},
    )
    run_id = f"sigint-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--json", "--run-id", run_id, "--state-dir", str(state)],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = lambda: any(e["type"] == "attempt_started" for e in read_events(state, run_id))  # noqa: E731
        assert wait_until(started, timeout=20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
    assert proc.returncode == EXIT_CANCELLED, err
    assert "cancelling the run" in err
    *events, final = lines(out)
    assert events == read_events(state, run_id)
    assert (final["type"], final["state"], final["exit_code"]) == ("result", "cancelled", 130)


def test_run_json_reader_that_leaves_does_not_stop_the_run(tmp_path: Path) -> None:
    """`run --json | head -1`: the run goes on to its end (an observer never breaks the
    run it observes), no traceback, the run's exit code."""
    plan = write_json(
        tmp_path / "two.json",
        {"plan_id": "two", "steps": [sh("a", "sleep 0.3"), sh("b", "true", depends_on=["a"])]},
    )
    run_id = f"pipe-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--json", "--run-id", run_id, "--state-dir", str(state)],
        cwd=tmp_path, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["type"] == "run_started"
    proc.stdout.close()  # the reader leaves
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_OK, err
    assert b"Traceback" not in err
    assert read_events(state, run_id)[-1]["state"] == "succeeded"
