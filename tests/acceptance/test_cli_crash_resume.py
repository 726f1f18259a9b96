"""kill -9 of a real ``planrun run``, then ``planrun resume``: the run is marked crashed,
no step process survives, the resume completes it without re-running what had
succeeded, and the events committed before the kill stay exactly as they were.

Also the sweep at the next start: when the watchdog was killed too, the step processes
left behind (a ``setsid`` escapee with every fd closed among them) are killed by the
next planrun that starts a run in the same state dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from planrun.executors.watchdog import SOURCE

from ._cli import (
    PLANRUN,
    attempts,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    query,
    read_events,
    sh,
    show_run,
    sigkill_leaves_no_step_alive,
    wait_until,
    write_json,
)

#: Prefix of every step script: record this attempt in $CALLS.
RECORD = 'echo "$PLANRUN_STEP_ID $PLANRUN_ATTEMPT" >> "$CALLS"; '
#: Attempt 1 hangs with grandchildren (one orphaned into the group); later ones succeed.
GRANDCHILDREN = (
    'if [ "$PLANRUN_ATTEMPT" = 1 ]; then sleep 1000 & sleep 1000 & (sleep 1000 &); wait; fi'
)
#: Attempt 1 hangs with a grandchild that left the group and session with setsid.
SETSID = 'if [ "$PLANRUN_ATTEMPT" = 1 ]; then setsid sleep 1000 & sleep 1000 & wait; fi'
#: A line of the watchdog's source (it runs as ``python -I -S -c SOURCE``).
#: A line of the watchdog's source (it runs as ``python -c SOURCE``): found in its cmdline.
WATCHDOG_MARKER = SOURCE.strip().splitlines()[1].encode()


def step(step_id: str, script: str = "true", **fields: Any) -> dict[str, Any]:
    return sh(step_id, RECORD + script, **fields)


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def start_run(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.Popen[bytes]:
    plan_file = write_json(tmp_path / "plan.json", plan)
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        return subprocess.Popen(
            [
                *PLANRUN,
                "run",
                str(plan_file),
                "--state-dir",
                str(tmp_path / "state"),
                "--run-id",
                run_id,
                "--plain",
            ],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def db_events(state: Path, run_id: str) -> list[tuple[int, str]]:
    rows = query(
        state / "runs.db", "SELECT seq, body FROM events WHERE run_id = ? ORDER BY seq", run_id
    )
    return [(int(seq), str(body)) for seq, body in rows]


def jsonl_lines(state: Path, run_id: str) -> list[str]:
    path = state / "runs" / run_id / "events.jsonl"
    return path.read_text(encoding="utf-8").splitlines()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_with_cmdline(parent: int, marker: bytes) -> list[int]:
    """Live children of ``parent`` whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "cmdline").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def output(tmp_path: Path) -> str:
    out = (tmp_path / "out.txt").read_text(errors="replace")
    err = (tmp_path / "err.txt").read_text(errors="replace")
    return f"stdout:\n{out}\nstderr:\n{err}"


# --- the main acceptance: kill -9, crashed, resume -------------------------------------


def test_sigkilled_run_is_crashed_and_resume_completes_it(tmp_path: Path) -> None:
    """kill -9 of planrun mid-run (steps with grandchildren, one a setsid escapee): no
    step process is alive 2 s later; list/show say crashed; resume exits 0, re-running
    only what had not succeeded (reused outputs included); every event committed before
    the kill is still there, once, unchanged, as a prefix of the log."""
    run_id = "crash-resume"
    state = tmp_path / "state"
    seen = tmp_path / "seen.txt"
    use_token = f'echo "$PLANRUN_STEP_ID $PLANRUN_ATTEMPT $TOKEN" >> {seen}; '
    token = {"TOKEN": "${steps.prep.outputs.token}"}
    plan = {
        "plan_id": "crash-resume",
        "globals": {"max_concurrency": 8, "env": {"CALLS": str(tmp_path / "calls.txt")}},
        "steps": [
            step("prep", 'echo "token=t$PLANRUN_ATTEMPT" >> "$PLANRUN_OUTPUT"'),
            step("early"),
            *[
                step(f"w{i}", use_token + GRANDCHILDREN, depends_on=["prep"], env=token)
                for i in range(3)
            ],
            step("escapee", SETSID, depends_on=["prep"]),
            step("after", depends_on=["w0", "w1", "w2", "escapee", "early"]),
        ],
    }
    hanging = ["w0", "w1", "w2", "escapee"]
    proc = start_run(tmp_path, plan, run_id)
    try:

        def all_hanging() -> bool:
            events = read_events(state, run_id)
            started = {e["step_id"] for e in events if e["type"] == "attempt_started"}
            done = {e["step_id"] for e in events if e["type"] == "step_finished"}
            return set(hanging) <= started and {"prep", "early"} <= done

        assert wait_until(all_hanging, 20), output(tmp_path)
        # sh + 3 sleeps per w step, sh + 2 sleeps (one in its own session) for escapee.
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 15, 10)
        sigkill_leaves_no_step_alive(proc, run_id)
    finally:
        proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))

    # What the dead process had committed, read before any planrun command touches it.
    committed = db_events(state, run_id)
    jsonl_before = jsonl_lines(state, run_id)
    assert [seq for seq, _ in committed] == list(range(1, len(committed) + 1))
    assert jsonl_before == [body for _, body in committed][: len(jsonl_before)]
    assert sorted(calls(tmp_path)) == sorted(["prep 1", "early 1", *(f"{s} 1" for s in hanging)])

    listed = planrun("list", "--json", "--state-dir", state, cwd=tmp_path)
    assert [(r["run_id"], r["state"]) for r in json.loads(listed.stdout)] == [(run_id, "crashed")]
    doc = show_run(tmp_path, run_id)
    assert doc["run"]["state"] == "crashed"
    assert {s["step_id"]: s["state"] for s in doc["steps"]} == {
        "prep": "succeeded",
        "early": "succeeded",
        **dict.fromkeys(hanging, "crashed"),
        "after": "pending",
    }

    explain = planrun("resume", run_id, "--explain", "--state-dir", state, cwd=tmp_path)
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.splitlines()[0] == (
        f"run {run_id} (crashed): a resume would rerun 5 of 7 steps (nothing is run: --explain)"
    )
    for line in explain.stdout.splitlines()[1:]:
        sid, action, why = line.split(maxsplit=2)
        if sid in ("prep", "early"):
            assert (action, why) == ("reuse", "succeeded (attempt 1)"), line
        elif sid in hanging:
            assert (action, why.split(":")[0]) == ("rerun", "crashed"), line
        else:
            assert (sid, action) == ("after", "rerun"), line

    result = planrun("resume", run_id, "--plain", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"run {run_id} resumed: rerunning w0, w1, w2, escapee, after" in result.stdout

    # prep and early ran once, before the kill; the rest ran again (attempt 2) or first.
    after_calls = calls(tmp_path)
    assert sorted(after_calls[6:]) == sorted([*(f"{s} 2" for s in hanging), "after 1"])
    assert after_calls.count("prep 1") == 1
    assert after_calls.count("early 1") == 1
    assert not any(c.startswith(("prep 2", "early 2")) for c in after_calls)
    # The rerun steps got the output prep had stored before the kill.
    assert sorted(seen.read_text().splitlines()) == sorted(
        [*(f"w{i} 1 t1" for i in range(3)), *(f"w{i} 2 t1" for i in range(3))]
    )

    doc = show_run(tmp_path, run_id)
    assert doc["run"]["state"] == "succeeded"
    assert doc["run"]["exit_code"] == 0
    assert doc["run"]["resumes"] == 1
    assert attempts(doc) == {
        "prep": [(1, "succeeded")],
        "early": [(1, "succeeded")],
        **{s: [(1, "crashed"), (2, "succeeded")] for s in hanging},
        "after": [(1, "succeeded")],
    }
    logs = state / "runs" / run_id / "logs"
    assert {f"{s}.2.log" for s in hanging} <= {p.name for p in logs.iterdir()}

    # The log: the committed events are an unchanged prefix, then run_crashed (once),
    # then the resume; both stores agree, seq 1..N with no gap and no repeat.
    events_after = db_events(state, run_id)
    assert events_after[: len(committed)] == committed
    assert [seq for seq, _ in events_after] == list(range(1, len(events_after) + 1))
    jsonl_after = jsonl_lines(state, run_id)
    assert jsonl_after == [body for _, body in events_after]
    assert jsonl_after[: len(jsonl_before)] == jsonl_before
    types = [json.loads(body)["type"] for _, body in events_after]
    assert types.count("run_crashed") == 1
    assert types.count("run_resumed") == 1
    assert types[len(committed) : len(committed) + 2] == ["run_crashed", "run_resumed"]
    assert types[-1] == "run_finished"
    assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []

    # A replay shows the crash where it happened, then the resume, then the end.
    watched = planrun("watch", run_id, "--plain", "--state-dir", state, cwd=tmp_path)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    lines = watched.stdout.splitlines()
    crashed = next(i for i, line in enumerate(lines) if f"run {run_id} crashed: " in line)
    resumed = next(i for i, line in enumerate(lines) if f"run {run_id} resumed: " in line)
    assert crashed < resumed


# --- the sweep at the next start -------------------------------------------------------

#: Attempt 1: fork an escapee that leaves the session and closes every fd (so neither the
#: process group nor the sentinel pipe knows it), write its pid, then hang. A later
#: attempt writes the escapee's process state as it starts ("gone" if there is no such
#: process, "Z" if it is dead but unreaped) to PIDFILE.seen and succeeds.
ESCAPE = """
import os, sys, time
if os.environ["PLANRUN_ATTEMPT"] != "1":
    pid = open(sys.argv[1]).read()
    try:
        state = open("/proc/" + pid + "/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    open(sys.argv[1] + ".seen", "w").write(state)
    sys.exit(0)
if os.fork() == 0:
    os.setsid()
    os.closerange(0, 65536)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(1000)
    os._exit(0)
time.sleep(1000)
"""


@pytest.mark.parametrize("starter", ["run", "resume"])
def test_next_start_kills_what_a_killed_watchdog_left(tmp_path: Path, starter: str) -> None:
    """kill -9 of the watchdog, then of planrun: the step processes survive (the
    escapee included). The next planrun that starts a run in this state dir — a new
    ``run`` of another plan, or the ``resume`` of this one — kills them first (for the
    resume: before the step runs again)."""
    run_id = f"swept-{starter}"
    state = tmp_path / "state"
    pid_file = tmp_path / "escapee.pid"
    plan = {
        "plan_id": "swept",
        "globals": {"env": {"CALLS": str(tmp_path / "calls.txt")}},
        "steps": [
            step("first"),
            {
                "id": "hold",
                "command": sys.executable,
                "args": ["-c", ESCAPE, str(pid_file)],
                "depends_on": ["first"],
            },
        ],
    }
    proc = start_run(tmp_path, plan, run_id)
    escapee = watchdog = None
    try:
        assert wait_until(pid_file.exists, 20), output(tmp_path)
        escapee = int(pid_file.read_text())
        watchdogs = children_with_cmdline(proc.pid, WATCHDOG_MARKER)
        assert len(watchdogs) == 1, watchdogs
        watchdog = watchdogs[0]
        os.kill(watchdog, signal.SIGKILL)
        assert wait_until(lambda: not alive(watchdog), 5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        # Nobody is left to clean up: the step and its escapee live on.
        assert alive(escapee)
        left = live_pids_with_env("PLANRUN_RUN_ID", run_id)
        assert escapee in left
        assert len(left) >= 2  # the step's own process too

        if starter == "run":
            other = write_json(
                tmp_path / "other.json",
                {"plan_id": "other", "steps": [{"id": "x", "command": "true"}]},
            )
            result = planrun("run", other, "--state-dir", state, "--plain", cwd=tmp_path)
        else:
            result = planrun("resume", run_id, "--state-dir", state, "--plain", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

        assert wait_until(lambda: not alive(escapee), 2), f"escapee {escapee} still alive"
        assert live_pids_with_env("PLANRUN_RUN_ID", run_id) == []
        runs = json.loads(planrun("list", "--json", "--state-dir", state, cwd=tmp_path).stdout)
        states = {r["run_id"]: r["state"] for r in runs}
        if starter == "run":
            assert states[run_id] == "crashed"
            assert calls(tmp_path) == ["first 1"]
        else:
            assert states == {run_id: "succeeded"}
            assert calls(tmp_path) == ["first 1"]  # not run again
            # Killed before the step ran again, not merely when the resume ended.
            assert (tmp_path / "escapee.pid.seen").read_text() in ("gone", "Z")
            assert attempts(show_run(tmp_path, run_id))["hold"] == [
                (1, "crashed"),
                (2, "succeeded"),
            ]
    finally:
        proc.kill()
        kill_pids([p for p in (escapee, watchdog) if p is not None])
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_a_resume_killed_9_is_crashed_and_can_be_resumed_again(tmp_path: Path) -> None:
    """The resume itself is SIGKILLed while its rerun step hangs with grandchildren: no
    step process survives it, the run is crashed, and the next resume finishes it as
    attempt 3, keeping the whole log (two run_resumed, one run_crashed) intact."""
    run_id = "resume-killed"
    state = tmp_path / "state"
    script = 'case "$PLANRUN_ATTEMPT" in 1) exit 1 ;; 2) sleep 1000 & sleep 1000 & wait ;; esac'
    plan = {
        "plan_id": "resume-killed",
        "globals": {"env": {"CALLS": str(tmp_path / "calls.txt")}},
        "steps": [step("a"), step("b", script, depends_on=["a"]), step("c", depends_on=["b"])],
    }
    plan_file = write_json(tmp_path / "plan.json", plan)
    first = planrun(
        "run", plan_file, "--run-id", run_id, "--state-dir", state, "--plain", cwd=tmp_path
    )
    assert first.returncode == 1, first.stdout + first.stderr
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        proc = subprocess.Popen(
            [*PLANRUN, "resume", run_id, "--state-dir", str(state), "--plain"],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:

        def second_attempt_hangs() -> bool:
            return any(
                e["type"] == "attempt_started" and e["step_id"] == "b" and e["attempt"] == 2
                for e in read_events(state, run_id)
            )

        assert wait_until(second_attempt_hangs, 20), output(tmp_path)
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", run_id)) >= 3, 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 2), str(
            live_pids_with_env("PLANRUN_RUN_ID", run_id)
        )
    finally:
        proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
    committed = db_events(state, run_id)

    listed = planrun("list", "--json", "--state-dir", state, cwd=tmp_path)
    assert [r["state"] for r in json.loads(listed.stdout)] == ["crashed"]
    result = planrun("resume", run_id, "--state-dir", state, "--plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    assert calls(tmp_path) == ["a 1", "b 1", "b 2", "b 3", "c 1"]
    doc = show_run(tmp_path, run_id)
    assert doc["run"]["state"] == "succeeded"
    assert doc["run"]["resumes"] == 2
    assert attempts(doc) == {
        "a": [(1, "succeeded")],
        "b": [(1, "failed"), (2, "crashed"), (3, "succeeded")],
        "c": [(1, "succeeded")],
    }
    events = db_events(state, run_id)
    assert events[: len(committed)] == committed
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    assert jsonl_lines(state, run_id) == [body for _, body in events]
    types = [json.loads(body)["type"] for _, body in events]
    assert types.count("run_resumed") == 2
    assert types.count("run_crashed") == 1
    assert types[: len(committed)].count("run_resumed") == 1  # the killed resume's
    assert types[len(committed) : len(committed) + 2] == ["run_crashed", "run_resumed"]
    assert types[-1] == "run_finished"

    watched = planrun("watch", run_id, "--plain", "--state-dir", state, cwd=tmp_path)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.count(f"run {run_id} resumed") == 2
