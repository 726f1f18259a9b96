"""``planrun watch``, ``show``, ``logs`` and ``list`` from other processes, against
real ``planrun run`` processes and the files they leave in the state dir."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec
import pytest

from planrun.records import AttemptRecord, RunRecord, StepRecord

from ._cli import (
    PLANRUN,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    query,
    read_events,
    sh,
    wait_until,
    write_json,
)

EXIT_CANCELLED = 130

#: alpha prints four lines over ~1 s; flaky fails its first attempt and succeeds on the
#: second; bravo runs after alpha.
ALPHA_LINES = [f"alpha-line-{i}" for i in range(1, 5)]
FLAKY_SCRIPT = (
    'echo "flaky-attempt-$PLANRUN_ATTEMPT"; sleep 0.3; '
    'if [ "$PLANRUN_ATTEMPT" -lt 2 ]; then echo flaky-failed >&2; exit 3; fi; echo flaky-ok'
)


def _obs_plan(bravo_sleep: float = 0.3) -> dict[str, Any]:
    return {
        "plan_id": "obs",
        "globals": {"max_concurrency": 2, "kill_grace_sec": 1},
        "steps": [
            sh("alpha", "for i in 1 2 3 4; do echo alpha-line-$i; sleep 0.25; done"),
            sh("flaky", FLAKY_SCRIPT, retries=1),
            sh("bravo", f"echo bravo-out; sleep {bravo_sleep:g}", depends_on=["alpha"]),
        ],
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Running:
    """A ``planrun run`` started in the background."""

    proc: subprocess.Popen[bytes]
    run_id: str
    state: Path
    workdir: Path
    plan_file: Path

    def output(self) -> str:
        out = (self.workdir / f"{self.run_id}.out").read_text(errors="replace")
        err = (self.workdir / f"{self.run_id}.err").read_text(errors="replace")
        return f"stdout:\n{out}\nstderr:\n{err}"

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.state, self.run_id)

    def wait_event(self, predicate: Any, timeout: float = 10) -> None:
        """Wait until an event of the run satisfies ``predicate``."""
        ok = wait_until(lambda: any(predicate(e) for e in self.events()), timeout)
        assert ok, self.output()

    def stop(self) -> None:
        """Kill the run and every process it started (test cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", self.run_id))


def start_run(
    workdir: Path, state: Path, plan: dict[str, Any], run_id: str, *extra: str
) -> Running:
    """Start ``planrun run PLAN --run-id RUN_ID --state-dir STATE`` in ``workdir``."""
    plan_file = write_json(workdir / f"{run_id}.json", plan)
    with (
        (workdir / f"{run_id}.out").open("wb") as out,
        (workdir / f"{run_id}.err").open("wb") as err,
    ):
        proc = subprocess.Popen(
            [*PLANRUN, "run", str(plan_file), "--run-id", run_id, "--state-dir", str(state),
             *extra],
            cwd=workdir,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )  # fmt: skip
    return Running(proc, run_id, state, workdir, plan_file)


@pytest.fixture
def runs() -> Iterator[list[Running]]:
    """Runs started by a test; killed (with their step processes) afterwards."""
    started: list[Running] = []
    yield started
    for run in started:
        run.stop()


@dataclass
class Lines:
    """A process whose stdout lines are collected with their arrival times."""

    proc: subprocess.Popen[str]
    lines: list[tuple[float, str, bool]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def texts(self) -> list[str]:
        return [line for _, line, _ in self.lines]

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        assert self.thread is not None
        self.thread.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def stream(args: list[str], cwd: Path, watched: subprocess.Popen[bytes]) -> Lines:
    """Start ``planrun ARGS`` and collect (time, line, ``watched`` still running) per line."""
    env = clean_env()
    # As for a user: stdout to a pipe is block-buffered unless planrun flushes it.
    env.pop("PYTHONUNBUFFERED", None)
    proc = subprocess.Popen(
        [*PLANRUN, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    collected = Lines(proc)

    def pump(stdout: IO[str]) -> None:
        for line in stdout:
            collected.lines.append((time.monotonic(), line.rstrip("\n"), watched.poll() is None))

    assert proc.stdout is not None
    collected.thread = threading.Thread(target=pump, args=(proc.stdout,), daemon=True)
    collected.thread.start()
    return collected


def _field_names(cls: type[msgspec.Struct]) -> set[str]:
    return {f.name for f in msgspec.structs.fields(cls)}


class ShowDoc(msgspec.Struct, forbid_unknown_fields=True):
    """The document ``planrun show --json`` prints."""

    run: RunRecord
    steps: list[StepRecord]


def _show(run: Running) -> tuple[dict[str, Any], ShowDoc]:
    """``show --json`` of a run as plain JSON and as the typed document (strictly decoded)."""
    result = planrun("show", run.run_id, "--json", "--state-dir", run.state, cwd=run.workdir)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"run", "steps"}
    assert set(doc["run"]) == _field_names(RunRecord)
    for step in doc["steps"]:
        assert set(step) == _field_names(StepRecord)
        for attempt in step["attempts"]:
            assert set(attempt) == _field_names(AttemptRecord)
    return doc, msgspec.json.decode(result.stdout, type=ShowDoc)


# --- a finished run, shared by the read-only tests ------------------------------------


@dataclass(frozen=True)
class Finished:
    """A state dir with a succeeded, a failed and a cancelled run."""

    workdir: Path
    state: Path
    ok: str
    failed: str
    cancelled: str


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """Run the obs plan to success, a plan that fails, and one cancelled by SIGTERM."""
    workdir = tmp_path_factory.mktemp("finished")
    state = workdir / "state"
    ok, failed, cancelled = _new_id("ok"), _new_id("failed"), _new_id("cancelled")
    write_json(workdir / "ok.json", _obs_plan())
    write_json(
        workdir / "failed.json",
        {"plan_id": "bad", "steps": [sh("boom", "echo going-down; exit 4")]},
    )
    for name, run_id in (("ok", ok), ("failed", failed)):
        result = planrun(
            "run", workdir / f"{name}.json", "--run-id", run_id, "--state-dir", state, cwd=workdir
        )
        assert result.returncode == (0 if name == "ok" else 1), result.stdout + result.stderr
    run = start_run(
        workdir, state, {"plan_id": "stop", "steps": [sh("sleepy", "sleep 1000")]}, cancelled
    )
    try:
        run.wait_event(lambda e: e["type"] == "attempt_started")
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=10) == EXIT_CANCELLED, run.output()
    finally:
        run.stop()
    return Finished(workdir, state, ok, failed, cancelled)


# --- watch -----------------------------------------------------------------------------


def test_watch_json_streams_events_as_they_land(tmp_path: Path, runs: list[Running]) -> None:
    """`watch --json` started mid-run prints every event as NDJSON while the run goes on,
    seq 1..N without gaps, ending with run_finished, and exits with the run's code."""
    state = tmp_path / "state"
    run = start_run(tmp_path, state, _obs_plan(bravo_sleep=0.6), _new_id("watch"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "run_started")
    watcher = stream(["watch", run.run_id, "--json", "--state-dir", str(state)], tmp_path, run.proc)
    try:
        code = watcher.finish(timeout=15)
        assert run.proc.wait(timeout=10) == 0, run.output()
        assert code == 0
        assert watcher.proc.stderr is not None
        assert watcher.proc.stderr.read() == ""
    finally:
        watcher.kill()

    texts = watcher.texts()
    events = [json.loads(line) for line in texts]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "run_started"
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["exit_code"] == 0
    assert sum(e["type"] == "run_finished" for e in events) == 1
    assert {e["run_id"] for e in events} == {run.run_id}
    # Exactly what the run recorded, byte for byte.
    jsonl = (state / "runs" / run.run_id / "events.jsonl").read_text().splitlines()
    assert texts == jsonl
    # Streamed, not dumped at the end: most lines arrived while the run was running,
    # spread over the run's lifetime.
    live = [line for _, line, running in watcher.lines if running]
    assert len(live) >= len(events) // 2, watcher.lines
    times = [t for t, _, _ in watcher.lines]
    assert times[-1] - times[0] > 0.5, watcher.lines


def test_watch_json_of_a_failing_run_exits_1(tmp_path: Path, runs: list[Running]) -> None:
    """`watch --json` started while a run is still going exits 1 when that run fails."""
    state = tmp_path / "state"
    plan = {"plan_id": "fails", "steps": [sh("late", "sleep 0.8; echo nope; exit 5")]}
    run = start_run(tmp_path, state, plan, _new_id("fails"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "attempt_started")
    result = planrun("watch", run.run_id, "--json", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert run.proc.wait(timeout=10) == 1, run.output()
    last = json.loads(result.stdout.splitlines()[-1])
    assert (last["type"], last["state"], last["exit_code"]) == ("run_finished", "failed", 1)


@pytest.mark.parametrize(
    ("which", "code", "state"),
    [("ok", 0, "succeeded"), ("failed", 1, "failed"), ("cancelled", 130, "cancelled")],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_watch_of_a_finished_run_exits_at_once_with_its_code(
    finished: Finished, which: str, code: int, state: str, as_json: bool
) -> None:
    """`watch` of a finished run replays it and exits at once with that run's exit code."""
    run_id: str = getattr(finished, which)
    began = time.monotonic()
    result = planrun(
        "watch", run_id, *(["--json"] if as_json else []), "--state-dir", finished.state,
        cwd=finished.workdir, timeout=10,
    )  # fmt: skip
    took = time.monotonic() - began
    assert result.returncode == code, result.stdout + result.stderr
    assert took < 4, took
    if as_json:
        last = json.loads(result.stdout.splitlines()[-1])
        assert (last["type"], last["state"], last["exit_code"]) == ("run_finished", state, code)
    else:
        assert f"run {run_id} {state} in " in result.stdout


def test_watch_of_an_unknown_run_exits_2_with_a_hint(finished: Finished) -> None:
    """`watch` of a run id that does not exist exits 2 naming it; a near miss is suggested."""
    result = planrun("watch", "no-such-run", "--state-dir", finished.state, cwd=finished.workdir)
    assert result.returncode == 2
    assert "no run 'no-such-run'" in result.stderr
    typo = finished.ok[:-1] + ("x" if finished.ok[-1] != "x" else "y")
    result = planrun("watch", typo, "--state-dir", finished.state, cwd=finished.workdir)
    assert result.returncode == 2
    assert f"did you mean '{finished.ok}'?" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["watch", "x"], ["show", "x"], ["logs", "x"], ["cancel", "x"]],
    ids=lambda a: a[0],
)
def test_commands_on_a_dir_without_a_store_fail_clearly(tmp_path: Path, args: list[str]) -> None:
    """Every observe command given a run id, pointed at an empty dir, exits non-zero
    saying there is no store there (and creates nothing). (``list`` there says "no runs
    yet": test_cli_state_discovery.py.)"""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = planrun(*args, "--state-dir", empty, cwd=tmp_path)
    assert result.returncode != 0
    assert "no run store at" in result.stderr
    assert str(empty / "runs.db") in result.stderr.replace("\n", "")
    assert list(empty.iterdir()) == []


def test_state_dir_from_the_environment(finished: Finished) -> None:
    """PLANRUN_STATE_DIR selects the store when --state-dir is not given."""
    env = clean_env(PLANRUN_STATE_DIR=str(finished.state))
    result = planrun("watch", finished.ok, "--json", cwd=finished.workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["type"] == "run_finished"


def test_watch_reports_a_run_whose_process_died(tmp_path: Path, runs: list[Running]) -> None:
    """When the run's process was SIGKILLed, the run is marked crashed: `watch` says why
    and exits 1, `logs --follow` ends at once, `cancel` exits 1 (not running)."""
    state = tmp_path / "state"
    plan = {"plan_id": "doomed", "steps": [sh("forever", "echo hi; sleep 1000")]}
    run = start_run(tmp_path, state, plan, _new_id("doomed"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "attempt_started")
    run.proc.kill()
    run.proc.wait(timeout=5)
    began = time.monotonic()
    result = planrun("watch", run.run_id, "--state-dir", state, cwd=tmp_path, timeout=10)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "crashed" in result.stdout
    assert "is gone" in result.stdout + result.stderr
    assert time.monotonic() - began < 5
    began = time.monotonic()
    result = planrun("logs", run.run_id, "--follow", "--state-dir", state, cwd=tmp_path, timeout=10)
    assert result.returncode == 0, result.stderr
    assert "hi" in result.stdout
    assert time.monotonic() - began < 5
    result = planrun("cancel", run.run_id, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 1
    assert "not running (state: crashed)" in result.stderr


@pytest.mark.parametrize(
    "as_json",
    [
        True,
        False,
    ],
    ids=["json", "text"],
)
def test_watch_into_a_closed_pipe_stops_quietly(
    tmp_path: Path, runs: list[Running], as_json: bool
) -> None:
    """`planrun watch RUN | head -1`: once the reader is gone watch stops without a
    traceback (like any well-behaved Unix filter)."""
    state = tmp_path / "state"
    plan = {
        "plan_id": "pipe",
        "steps": [sh(f"s{i}", f"sleep {0.3 * i:g}") for i in range(1, 4)],
    }
    run = start_run(tmp_path, state, plan, _new_id("pipe"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "run_started")
    watcher = subprocess.Popen(
        [*PLANRUN, "watch", run.run_id, *(["--json"] if as_json else []),
         "--state-dir", str(state)],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline()
        watcher.stdout.close()  # like `head -1` exiting
        assert run.events()[-1]["type"] != "run_finished"  # more events are still to come
        _, err = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(timeout=5)
    assert run.proc.wait(timeout=10) == 0, run.output()
    text = err.decode(errors="replace")
    assert "Traceback" not in text, text
    assert watcher.returncode in (0, 1), text


# --- show ------------------------------------------------------------------------------


def test_show_json_mid_run_and_after(tmp_path: Path, runs: list[Running]) -> None:
    """`show --json` is {"run": ..., "steps": [... "attempts": [...]]}: mid-run it shows
    the run and its running step; afterwards the final states, codes, attempts and logs."""
    state = tmp_path / "state"
    run = start_run(tmp_path, state, _obs_plan(), _new_id("show"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "attempt_started" and e["step_id"] == "alpha")

    doc, typed = _show(run)
    assert doc["run"]["run_id"] == run.run_id
    assert typed.run.state.value == "running"
    assert typed.run.exit_code is None
    assert typed.run.ended_at is None
    assert typed.run.duration_sec is None
    assert typed.run.owner_pid == run.proc.pid
    assert typed.run.owner_kind == "cli"
    assert typed.run.step_count == 3
    assert typed.run.steps_done < 3
    assert [s.step_id for s in typed.steps] == ["alpha", "flaky", "bravo"]
    assert [s.position for s in typed.steps] == [0, 1, 2]
    alpha = typed.steps[0]
    assert alpha.state.value == "running"
    assert alpha.attempts[0].state.value == "running"
    assert alpha.attempts[0].pid is not None
    assert alpha.attempts[0].ended_at is None
    bravo = typed.steps[2]
    assert (bravo.state.value, bravo.attempts) == ("pending", [])

    assert run.proc.wait(timeout=10) == 0, run.output()
    doc, typed = _show(run)
    final = typed.run
    assert (final.state.value, final.exit_code, final.reason) == ("succeeded", 0, None)
    assert final.ended_at is not None
    assert final.duration_sec is not None
    assert final.duration_sec > 0.5
    assert (final.step_count, final.steps_done) == (3, 3)
    assert final.plan_id == "obs"
    assert final.plan_path == str(run.plan_file.resolve())
    assert final.last_seq == len(run.events())
    logs = state / "runs" / run.run_id / "logs"
    expected_attempts = {"alpha": [0], "flaky": [3, 0], "bravo": [0]}
    for step in typed.steps:
        assert (step.state.value, step.exit_code) == ("succeeded", 0), step
        assert step.started_at is not None
        assert step.ended_at is not None
        assert [a.attempt for a in step.attempts] == [1, 2][: len(step.attempts)]
        assert [a.exit_code for a in step.attempts] == expected_attempts[step.step_id]
        for attempt in step.attempts:
            assert attempt.log_path == str(logs / f"{step.step_id}.{attempt.attempt}.log")
            assert Path(attempt.log_path).is_file()
            assert attempt.pid is not None
            assert attempt.duration_sec is not None
            assert attempt.duration_sec > 0
    flaky = typed.steps[1]
    assert [a.state.value for a in flaky.attempts] == ["failed", "succeeded"]
    assert Path(str(flaky.attempts[0].log_path)).read_text() == "flaky-attempt-1\nflaky-failed\n"
    # The text form tells the same story.
    text = planrun("show", run.run_id, "--state-dir", state, cwd=tmp_path)
    assert text.returncode == 0
    assert "state     succeeded (exit code 0)" in text.stdout
    assert str(logs / "flaky.1.log") not in text.stdout  # relative to the state dir:
    assert f" runs/{run.run_id}/logs/flaky.1.log\n" in text.stdout


def test_show_of_an_unknown_run_exits_2(finished: Finished) -> None:
    """`show` of a run id that does not exist exits 2 naming it (under --json, stdout
    holds only the error object: README "JSON output")."""
    result = planrun("show", "nope", "--json", "--state-dir", finished.state, cwd=finished.workdir)
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"] == "unknown_run"
    assert "no run 'nope'" in result.stderr


# --- logs ------------------------------------------------------------------------------


def test_logs_follow_streams_a_running_step_until_its_attempt_ends(
    tmp_path: Path, runs: list[Running]
) -> None:
    """`logs RUN STEP --follow` started while the step runs prints its lines as they are
    written and exits 0 when the attempt ends, while the run is still going.

    No timing: the step prints its first line, then waits for a file the test creates
    only once the follower has printed that line, so the line can only have been
    streamed from a running attempt."""
    state = tmp_path / "state"
    go = tmp_path / "go"
    plan = {
        "plan_id": "follow",
        "steps": [
            sh("alpha", f"echo first; while [ ! -e '{go}' ]; do sleep 0.05; done; echo second"),
            sh("bravo", "sleep 1.5", depends_on=["alpha"]),
        ],
    }
    run = start_run(tmp_path, state, plan, _new_id("follow"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "attempt_started" and e["step_id"] == "alpha")
    follower = stream(
        ["logs", run.run_id, "alpha", "--follow", "--state-dir", str(state)], tmp_path, run.proc
    )
    try:
        assert wait_until(lambda: follower.texts() == ["first"], 10), follower.lines
        assert follower.proc.poll() is None, "the attempt is still running: keep following"
        go.touch()
        assert follower.finish(timeout=10) == 0
        assert run.proc.poll() is None, "logs --follow should end with the attempt, not the run"
    finally:
        go.touch()
        follower.kill()
    assert follower.texts() == ["first", "second"]


def test_logs_follow_keeps_every_line_of_retried_attempts(
    tmp_path: Path, runs: list[Running]
) -> None:
    """`logs RUN STEP --follow` across retries prints each attempt whole, including an
    unterminated last line (none of the failed attempts' output is lost)."""
    state = tmp_path / "state"
    # Each attempt ends with a line without a newline: only the final read of that
    # attempt's log can print it.
    script = (
        'echo "start-$PLANRUN_ATTEMPT"; sleep 0.3; printf "end-$PLANRUN_ATTEMPT"; '
        '[ "$PLANRUN_ATTEMPT" -ge 4 ]'
    )
    plan = {"plan_id": "retry", "steps": [sh("again", script, retries=3)]}
    run = start_run(tmp_path, state, plan, _new_id("retry"))
    runs.append(run)
    run.wait_event(lambda e: e["type"] == "attempt_started")
    result = planrun("logs", run.run_id, "again", "--follow", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0
    assert run.proc.wait(timeout=10) == 0, run.output()
    lines = result.stdout.splitlines()
    assert lines[-2:] == ["start-4", "end-4"], lines
    for n in range(1, 4):
        if f"start-{n}" in lines:
            assert lines[lines.index(f"start-{n}") + 1] == f"end-{n}", lines


def test_logs_of_every_step_are_prefixed(finished: Finished) -> None:
    """`logs RUN` prints every step's last attempt, each line prefixed [step-id]."""
    result = planrun("logs", finished.ok, "--state-dir", finished.state, cwd=finished.workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines, result.stdout
    for line in lines:
        assert line.startswith(("[alpha] ", "[flaky] ", "[bravo] ")), line
    assert [line for line in lines if line.startswith("[alpha] ")] == [
        f"[alpha] {text}" for text in ALPHA_LINES
    ]
    assert [line for line in lines if line.startswith("[flaky] ")] == [
        "[flaky] flaky-attempt-2",
        "[flaky] flaky-ok",
    ]
    assert "[bravo] bravo-out" in lines


def test_logs_of_one_attempt(finished: Finished) -> None:
    """`logs RUN STEP --attempt 1` prints the failed first attempt (stdout and stderr),
    without a prefix; without --attempt the last one; a missing attempt or step exits 2."""

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        return planrun(
            "logs", finished.ok, *args, "--state-dir", finished.state, cwd=finished.workdir
        )

    first = logs("flaky", "--attempt", "1")
    assert (first.returncode, first.stdout) == (0, "flaky-attempt-1\nflaky-failed\n")
    last = logs("flaky")
    assert (last.returncode, last.stdout) == (0, "flaky-attempt-2\nflaky-ok\n")
    second = logs("flaky", "--attempt", "2")
    assert second.stdout == last.stdout
    missing = logs("flaky", "--attempt", "3")
    assert missing.returncode == 2
    assert "no attempt 3" in missing.stderr
    unknown = logs("flakey")
    assert unknown.returncode == 2
    assert "did you mean 'flaky'?" in unknown.stderr


def test_logs_from_another_directory_with_a_relative_state_dir(tmp_path: Path) -> None:
    """A run started with a relative --state-dir records absolute log paths, so `logs`
    and `show` work from any directory."""
    workdir = tmp_path / "project"
    workdir.mkdir()
    plan = write_json(workdir / "plan.json", {"plan_id": "rel", "steps": [sh("hello", "echo hi")]})
    result = planrun("run", plan, "--run-id", "rel", "--state-dir", "state", cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = workdir / "state"
    shown = planrun("show", "rel", "--json", "--state-dir", state, cwd=elsewhere)
    log_path = json.loads(shown.stdout)["steps"][0]["attempts"][0]["log_path"]
    assert Path(log_path).is_absolute(), log_path
    logs = planrun("logs", "rel", "hello", "--state-dir", state, cwd=elsewhere)
    assert logs.stdout == "hi\n"


# --- list ------------------------------------------------------------------------------


def test_list_newest_first_with_filters(tmp_path: Path, runs: list[Running]) -> None:
    """`list` and `list --json` show runs newest first with steps done/total, and
    --state, --plan and --limit filter them."""
    state = tmp_path / "state"
    write_json(tmp_path / "p1.json", {"plan_id": "p1", "steps": [sh("a", "true"), sh("b", "true")]})
    write_json(
        tmp_path / "p2.json",
        {"plan_id": "p2", "steps": [sh("x", "exit 1"), sh("y", "true", depends_on=["x"])]},
    )
    ids = [_new_id(f"l{i}") for i in range(4)]
    for run_id, plan, code in ((ids[0], "p1", 0), (ids[1], "p2", 1), (ids[2], "p1", 0)):
        done = planrun(
            "run", tmp_path / f"{plan}.json", "--run-id", run_id, "--state-dir", state,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == code, done.stdout + done.stderr
    live_plan = {
        "plan_id": "p2",
        "steps": [sh("quick", "true"), sh("slow", "sleep 1000"), sh("last", "true",
                  depends_on=["slow"])],
    }  # fmt: skip
    live = start_run(tmp_path, state, live_plan, ids[3])
    runs.append(live)
    live.wait_event(lambda e: e["type"] == "step_finished" and e["step_id"] == "quick")
    live.wait_event(lambda e: e["type"] == "attempt_started" and e["step_id"] == "slow")

    def listed(*args: str) -> list[dict[str, Any]]:
        result = planrun("list", "--json", *args, "--state-dir", state, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        for row in rows:
            assert set(row) == _field_names(RunRecord)
        return rows

    everything = listed()
    assert [r["run_id"] for r in everything] == ids[::-1]
    summary = {r["run_id"]: (r["plan_id"], r["state"], r["steps_done"], r["step_count"])
               for r in everything}  # fmt: skip
    assert summary == {
        ids[0]: ("p1", "succeeded", 2, 2),
        ids[1]: ("p2", "failed", 2, 2),
        ids[2]: ("p1", "succeeded", 2, 2),
        ids[3]: ("p2", "running", 1, 3),
    }
    assert [r["run_id"] for r in listed("--state", "succeeded")] == [ids[2], ids[0]]
    assert [r["run_id"] for r in listed("--state", "running")] == [ids[3]]
    assert [r["run_id"] for r in listed("--plan", "p2")] == [ids[3], ids[1]]
    assert [r["run_id"] for r in listed("--limit", "2")] == [ids[3], ids[2]]
    assert [r["run_id"] for r in listed("--plan", "p1", "--limit", "1")] == [ids[2]]
    assert listed("--plan", "nope") == []
    assert listed("--state", "cancelled") == []

    table = planrun("list", "--state-dir", state, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["run", "id", "plan", "state", "started", "(UTC)", "took", "steps"]
    assert [line.split()[0] for line in lines[1:]] == ids[::-1]
    assert lines[1].split()[1:3] == ["p2", "running"]
    assert lines[1].split()[-1] == "1/3"
    assert lines[2].split()[-1] == "2/2"
    bad = planrun("list", "--state", "done", "--state-dir", state, cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown state 'done'" in bad.stderr

    live.proc.send_signal(signal.SIGTERM)
    assert live.proc.wait(timeout=10) == EXIT_CANCELLED, live.output()
    assert listed("--state", "running") == []
    assert [r["run_id"] for r in listed("--state", "cancelled")] == [ids[3]]
    rows = query(state / "runs.db", "SELECT COUNT(*) FROM runs")
    assert rows == [(4,)]
