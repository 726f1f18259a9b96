"""Run handlers through the real CLI with real processes: which lists run after the DAG,
``$PLANRUN_SUMMARY`` (secrets masked), the run's outcome left as the DAG decided it,
``on_cancel`` after SIGINT within ``handler_timeout_sec``, a second SIGINT, resume."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
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
    query,
    read_events,
    sh,
    sigkill_leaves_no_step_alive,
    wait_until,
    write_json,
)

EXIT_CANCELLED = 130
SECRET = "hunter2-secret-value"  # noqa: S105 (a test value)


def _states(tmp_path: Path, run_id: str) -> dict[str, tuple[str, str | None]]:
    db = tmp_path / ".planrun" / "runs.db"
    rows = query(db, "SELECT step_id, state, reason FROM steps WHERE run_id = ?", run_id)
    return {sid: (state, reason) for sid, state, reason in rows}


def _run_row(tmp_path: Path, run_id: str) -> tuple[Any, ...]:
    db = tmp_path / ".planrun" / "runs.db"
    (row,) = query(db, "SELECT state, exit_code FROM runs WHERE run_id = ?", run_id)
    return tuple(row)


def test_on_failure_reads_the_summary_and_the_outcome_stays(tmp_path: Path) -> None:
    """A failed run: on_failure runs and reads $PLANRUN_SUMMARY (the secret masked in
    it), on_success is skipped, on_exit runs; a failing on_exit handler leaves the
    run's exit code 1 (not its own 5), and show/JUnit list the handlers as handlers."""
    run_id = f"hf-{uuid.uuid4().hex[:8]}"
    copy, result, marks = tmp_path / "summary-copy.json", tmp_path / "b.txt", tmp_path / "m"
    plan = {
        "plan_id": "handlers",
        "secrets": ["TOKEN"],
        "steps": [
            sh("a", 'echo "key=$TOKEN-x" >> "$PLANRUN_OUTPUT"'),
            sh("b", "exit 3", depends_on=["a"]),
        ],
        "handlers": {
            "on_success": [sh("yay", f"touch {marks}-success")],
            "on_failure": [
                {
                    "id": "notify",
                    "command": "sh",
                    "args": [
                        "-c",
                        f'cp "$PLANRUN_SUMMARY" {copy}; echo "$1" > {result}',
                        "sh",
                        "${steps.b.exit_code}",
                    ],
                }
            ],
            "on_exit": [sh("bye", f"touch {marks}-exit; exit 5")],
        },
    }
    plan_file = write_json(tmp_path / "plan.json", plan)
    junit = tmp_path / "junit.xml"
    env = clean_env(TOKEN=SECRET)
    done = planrun("run", plan_file, "--run-id", run_id, "--junit", junit, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _run_row(tmp_path, run_id) == ("failed", 1)
    assert result.read_text().strip() == "3"
    assert (tmp_path / "m-exit").exists()
    assert not (tmp_path / "m-success").exists()
    text = copy.read_text()
    assert SECRET not in text
    doc = json.loads(text)
    assert doc["state"] == "failed"
    assert doc["exit_code"] == 1
    assert doc["failed_steps"] == ["b"]
    assert doc["steps"]["b"]["exit_code"] == 3
    assert doc["steps"]["b"]["reason"] == "exit code 3"
    assert doc["steps"]["a"]["outputs"] == {"key": "***-x"}
    assert doc["handlers"]["yay"]["state"] == "skipped"
    assert doc["handlers"]["notify"]["handler"] == "on_failure"
    summary = tmp_path / ".planrun" / "runs" / run_id / "summary.json"
    assert stat.S_IMODE(summary.stat().st_mode) == 0o600
    assert SECRET not in summary.read_text()
    states = _states(tmp_path, run_id)
    assert states["yay"] == ("skipped", "handler on_success: the run failed")
    assert states["notify"][0] == "succeeded"
    assert states["bye"] == ("failed", "exit code 5")
    assert "bye (handler on_exit): failed" in done.stdout
    assert "handlers: 1 succeeded, 1 failed, 1 skipped" in done.stdout
    shown = json.loads(planrun("show", run_id, "--json", cwd=tmp_path).stdout)
    kinds = {s["step_id"]: s["handler"] for s in shown["steps"]}
    assert kinds == {
        "a": None,
        "b": None,
        "yay": "on_success",
        "notify": "on_failure",
        "bye": "on_exit",
    }
    assert 'classname="handlers.on_exit" name="bye"' in junit.read_text()
    text_show = planrun("show", run_id, cwd=tmp_path)
    assert "handler on_failure" in text_show.stdout


def test_a_failing_handler_leaves_a_succeeded_run_succeeded(tmp_path: Path) -> None:
    """on_success fails: the run is still succeeded (exit 0); on_failure is skipped;
    on_exit (after on_success) runs."""
    run_id = f"hs-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "ok",
        "steps": [sh("a", "exit 0")],
        "handlers": {
            "on_success": [sh("report", "exit 7")],
            "on_failure": [sh("alarm", "exit 0")],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    done = planrun("run", write_json(tmp_path / "p.json", plan), "--run-id", run_id, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _run_row(tmp_path, run_id) == ("succeeded", 0)
    states = _states(tmp_path, run_id)
    assert states["report"] == ("failed", "exit code 7")
    assert states["alarm"] == ("skipped", "handler on_failure: the run succeeded")
    assert states["bye"][0] == "succeeded"
    (finished,) = [
        e for e in read_events(tmp_path / ".planrun", run_id) if e["type"] == "run_finished"
    ]
    assert finished["failed_steps"] == []
    assert read_events(tmp_path / ".planrun", run_id)[-1]["type"] == "run_finished"


def test_a_reference_to_a_step_that_did_not_run_fails_that_handler_only(tmp_path: Path) -> None:
    """``${steps.b.exit_code}`` of a step that never ran: the handler fails with a
    clear reason, the next handler still runs, the run's exit code stays 1."""
    run_id = f"hr-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "refs",
        "steps": [sh("a", "exit 1"), sh("b", "exit 0", depends_on=["a"])],
        "handlers": {
            "on_failure": [{"id": "uses-b", "command": "echo", "args": ["${steps.b.exit_code}"]}],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    done = planrun("run", write_json(tmp_path / "p.json", plan), "--run-id", run_id, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    state, reason = _states(tmp_path, run_id)["uses-b"]
    assert state == "failed"
    assert reason is not None
    assert "${steps.b.exit_code}" in reason
    assert "has no value" in reason
    assert (tmp_path / "bye").exists()


def _start(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.Popen[bytes]:
    plan_file = write_json(tmp_path / "plan.json", plan)
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        return subprocess.Popen(
            [*PLANRUN, "run", str(plan_file), "--run-id", run_id],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def _started(tmp_path: Path, run_id: str, step_id: str) -> bool:
    return any(
        e["type"] == "attempt_started" and e["step_id"] == step_id
        for e in read_events(tmp_path / ".planrun", run_id)
    )


def _output(tmp_path: Path) -> str:
    out = (tmp_path / "out.txt").read_text(errors="replace")
    err = (tmp_path / "err.txt").read_text(errors="replace")
    assert "Traceback" not in err, err
    return f"stdout:\n{out}\nstderr:\n{err}"


def _cleanup(proc: subprocess.Popen[bytes], run_id: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "planrun cancel"])
def test_a_cancel_runs_on_cancel_and_on_exit(tmp_path: Path, how: str) -> None:
    """SIGINT, SIGTERM or ``planrun cancel``: the main step is stopped, then on_cancel
    and on_exit run (on_failure is skipped); exit 130, the run cancelled, no process
    left."""
    run_id = f"hc-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "cancel",
        "globals": {"kill_grace_sec": 1},
        "steps": [sh("sleepy", "sleep 1000 & sleep 1000")],
        "handlers": {
            "on_cancel": [
                sh("cleanup", f'sleep 0.5; cp "$PLANRUN_SUMMARY" {tmp_path}/cancel.json')
            ],
            "on_failure": [sh("alarm", f"touch {tmp_path}/alarm")],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "sleepy"), 10), _output(tmp_path)
        if how == "planrun cancel":
            done = planrun("cancel", run_id, cwd=tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            proc.send_signal(signal.Signals[how])
        code = proc.wait(timeout=30)
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert json.loads((tmp_path / "cancel.json").read_text())["state"] == "cancelled"
        assert (tmp_path / "bye").exists()
        assert not (tmp_path / "alarm").exists()
        assert _run_row(tmp_path, run_id) == ("cancelled", EXIT_CANCELLED)
        states = _states(tmp_path, run_id)
        assert states["sleepy"] == ("cancelled", "run cancelled")
        assert states["cleanup"][0] == "succeeded"
        assert states["alarm"] == ("skipped", "handler on_failure: the run cancelled")
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        _cleanup(proc, run_id)


def test_handler_timeout_stops_a_hanging_on_cancel_handler(tmp_path: Path) -> None:
    """An on_cancel handler that hangs is stopped when handler_timeout_sec (2 s) passes:
    planrun exits 130 long before the handler's own sleep, with nothing left."""
    run_id = f"ht-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "deadline",
        "globals": {"kill_grace_sec": 1, "handler_timeout_sec": 2},
        "steps": [sh("sleepy", "sleep 1000")],
        "handlers": {
            "on_cancel": [sh("hang", "sleep 1000 & sleep 1000")],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "sleepy"), 10), _output(tmp_path)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        took = time.monotonic() - sent
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert took < 30, took
        assert _started(tmp_path, run_id, "hang")
        states = _states(tmp_path, run_id)
        assert states["hang"][0] == "cancelled"
        assert states["bye"] == (
            "cancelled",
            "run cancelled; handlers stopped: handler_timeout_sec (2s) passed",
        )
        assert not (tmp_path / "bye").exists()
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        _cleanup(proc, run_id)


def test_a_second_sigint_skips_the_handlers(tmp_path: Path) -> None:
    """A main step that ignores SIGTERM (grace 30 s): the second SIGINT kills it at once
    and the handlers are skipped, not run; exit 130, nothing left."""
    run_id = f"h2-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "twice",
        "globals": {"kill_grace_sec": 30},
        "steps": [sh("stubborn", "trap '' TERM; sleep 1000")],
        "handlers": {
            "on_cancel": [sh("cleanup", f"touch {tmp_path}/cleanup")],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "stubborn"), 10), _output(tmp_path)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None, "the first SIGINT waits for the grace period"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert time.monotonic() - sent < 15
        assert not (tmp_path / "cleanup").exists()
        assert not (tmp_path / "bye").exists()
        states = _states(tmp_path, run_id)
        assert states["cleanup"] == ("skipped", "handlers skipped: interrupted again")
        assert states["bye"] == ("skipped", "handlers skipped: interrupted again")
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        _cleanup(proc, run_id)


def test_a_second_sigint_stops_a_running_handler(tmp_path: Path) -> None:
    """The second SIGINT while an on_cancel handler runs (it ignores SIGTERM; grace and
    handler deadline long): it is killed at once, planrun exits 130, nothing left."""
    run_id = f"h3-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "twice-running",
        "globals": {"kill_grace_sec": 30, "handler_timeout_sec": 300},
        "steps": [sh("sleepy", "sleep 1000")],
        "handlers": {"on_cancel": [sh("stubborn", "trap '' TERM; sleep 1000")]},
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "sleepy"), 10), _output(tmp_path)
        proc.send_signal(signal.SIGINT)
        assert wait_until(lambda: _started(tmp_path, run_id, "stubborn"), 20), _output(tmp_path)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        assert code == EXIT_CANCELLED, _output(tmp_path)
        assert time.monotonic() - sent < 15
        assert _states(tmp_path, run_id)["stubborn"][0] == "cancelled"
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        _cleanup(proc, run_id)


def test_a_cancel_while_on_failure_runs_keeps_the_outcome(tmp_path: Path) -> None:
    """SIGINT while an on_failure handler runs: it is stopped, on_exit still runs, and
    the run stays failed (exit 1, as its steps decided), nothing left."""
    run_id = f"hd-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "decided",
        "globals": {"kill_grace_sec": 1},
        "steps": [sh("broken", "exit 4")],
        "handlers": {
            "on_failure": [sh("slow", "sleep 1000 & sleep 1000")],
            "on_exit": [sh("bye", f"touch {tmp_path}/bye")],
        },
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "slow"), 10), _output(tmp_path)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        assert code == 1, _output(tmp_path)
        assert _run_row(tmp_path, run_id) == ("failed", 1)
        states = _states(tmp_path, run_id)
        assert states["slow"] == ("cancelled", "run cancelled")
        assert states["bye"][0] == "succeeded"
        assert (tmp_path / "bye").exists()
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
    finally:
        _cleanup(proc, run_id)


def test_kill_9_runs_no_handler_and_the_run_is_crashed(tmp_path: Path) -> None:
    """``kill -9`` of planrun: nothing runs its handlers; the watchdog stops the step,
    the run reads crashed (its handlers pending), and a resume runs them at its end."""
    run_id = f"hk-{uuid.uuid4().hex[:8]}"
    plan = {
        "plan_id": "killed",
        "steps": [sh("sleepy", f"test -f {tmp_path}/ok || sleep 1000")],
        "handlers": {
            "on_cancel": [sh("cleanup", f"echo cancel >> {tmp_path}/log")],
            "on_success": [sh("yay", f"echo success >> {tmp_path}/log")],
            "on_exit": [sh("bye", f"echo exit >> {tmp_path}/log")],
        },
    }
    proc = _start(tmp_path, plan, run_id)
    try:
        assert wait_until(lambda: _started(tmp_path, run_id, "sleepy"), 10), _output(tmp_path)
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 2, 5)
        sigkill_leaves_no_step_alive(proc, run_id)
        shown = json.loads(planrun("show", run_id, "--json", cwd=tmp_path).stdout)
        assert shown["run"]["state"] == "crashed"
        states = {s["step_id"]: s["state"] for s in shown["steps"]}
        assert states == {
            "sleepy": "crashed",
            "cleanup": "pending",
            "yay": "pending",
            "bye": "pending",
        }
        assert not (tmp_path / "log").exists()
        (tmp_path / "ok").touch()
        again = planrun("resume", run_id, cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert (tmp_path / "log").read_text().split() == ["success", "exit"]
    finally:
        _cleanup(proc, run_id)


def test_resume_runs_the_handlers_again(tmp_path: Path) -> None:
    """A failed run ran on_failure; its resume succeeds and runs on_success and on_exit
    again (handlers are never kept), with attempt numbers after the first run's."""
    run_id = f"hm-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "log.txt"
    plan = {
        "plan_id": "resume",
        "steps": [sh("a", "exit 0"), sh("b", f"test -f {tmp_path}/ok", depends_on=["a"])],
        "handlers": {
            "on_success": [sh("yay", f"echo success >> {log}")],
            "on_failure": [sh("alarm", f"echo failure >> {log}")],
            "on_exit": [sh("bye", f"echo exit >> {log}")],
        },
    }
    plan_file = write_json(tmp_path / "p.json", plan)
    first = planrun("run", plan_file, "--run-id", run_id, cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    (tmp_path / "ok").touch()
    again = planrun("resume", run_id, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert log.read_text().split() == ["failure", "exit", "success", "exit"]
    states = _states(tmp_path, run_id)
    assert states["alarm"] == ("skipped", "handler on_failure: the run succeeded")
    assert states["yay"][0] == "succeeded"
    db = tmp_path / ".planrun" / "runs.db"
    bye = query(db, "SELECT attempt FROM attempts WHERE run_id = ? AND step_id = 'bye'", run_id)
    assert sorted(a for (a,) in bye) == [1, 2]


def test_validate_locates_handler_problems(tmp_path: Path) -> None:
    """Bad handlers: exit 2, each problem at its JSON path with the step id."""
    plan = {
        "plan_id": "bad",
        "steps": [sh("a", "exit 0", depends_on=["notify"])],
        "handlers": {
            "on_failure": [
                {"id": "notify", "command": "echo", "depends_on": ["a"], "args": ["${NOPE}"]},
                {"id": "a", "command": "true"},
                {"id": "x", "command": "true", "retries": -1},
            ],
            "on_exit": [{"id": "bye", "command": "true", "depends_on": ["notify"]}],
            "on_sucess": [],
        },
    }
    done = planrun("validate", write_json(tmp_path / "bad.json", plan), cwd=tmp_path)
    assert done.returncode == 2
    err = done.stderr
    for expected in (
        "$.steps[0].depends_on[0] (step 'a'): 'notify' is a run handler (on_failure)",
        "$.handlers.on_failure[0].depends_on[0] (step 'notify'): a handler cannot depend on "
        "step 'a'",
        "$.handlers.on_failure[0].args[0] (step 'notify'): variable 'NOPE' is not defined",
        "$.handlers.on_failure[1].id (step 'a'): duplicate step id 'a'",
        "$.handlers.on_failure[2].retries (step 'x'): expected `int` >= 0",
        "$.handlers.on_exit[0].depends_on[0] (step 'bye'): 'notify' is a handler of on_failure",
        "$.handlers.on_sucess: unknown handler list; did you mean 'on_success'?",
    ):
        assert expected in err, err
    notify = {"id": "notify", "command": "echo", "args": ["a=${steps.a.exit_code}"]}
    good = {"plan_id": "good", "steps": [sh("a", "exit 0")], "handlers": {"on_failure": [notify]}}
    shown = planrun("validate", write_json(tmp_path / "good.json", good), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "1 run handler (on_failure: notify)" in shown.stdout
    dry = planrun("run", "--dry-run", tmp_path / "good.json", cwd=tmp_path)
    assert "handlers on_failure (if the run fails" in dry.stdout
    assert "  notify: echo 'a=${steps.a.exit_code}'" in dry.stdout
