"""``planrun resume``: a failed or cancelled run is taken over in the same run id, with new
attempts for what did not succeed (and what depends on it); what succeeded is reused,
not run again. Every step appends ``<step> <attempt>`` to a calls file, which is how
these tests tell "reused" from "re-executed"."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

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
    wait_until,
    write_json,
)

EXIT_LOCKED = 3
EXIT_CANCELLED = 130

#: Prefix of every step script: record this attempt in $CALLS.
RECORD = 'echo "$PLANRUN_STEP_ID $PLANRUN_ATTEMPT" >> "$CALLS"; '
#: Fails unless the file $GATE exists (the test creates it to "fix" the step).
GATED = 'test -f "$GATE"'


# --- helpers ---------------------------------------------------------------------------


def step(step_id: str, script: str = "true", **fields: Any) -> dict[str, Any]:
    """A sh step that records its attempt in $CALLS, then runs ``script``."""
    return sh(step_id, RECORD + script, **fields)


def make_plan(tmp_path: Path, steps: list[dict[str, Any]], **extra: Any) -> Path:
    """Write ``plan.json`` with $CALLS and $GATE set for every step."""
    env = {"CALLS": str(tmp_path / "calls.txt"), "GATE": str(tmp_path / "gate")}
    globals_ = {"env": env, **extra.pop("globals", {})}
    return write_json(
        tmp_path / "plan.json",
        {"plan_id": "resumable", "globals": globals_, "steps": steps, **extra},
    )


def calls(tmp_path: Path) -> list[str]:
    """Every attempt any step made, in order: ``["a 1", "b 1", "b 2", ...]``."""
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def open_gate(tmp_path: Path) -> None:
    (tmp_path / "gate").touch()


def run(tmp_path: Path, plan: Path, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return planrun(
        "run",
        plan,
        "--run-id",
        run_id,
        "--state-dir",
        tmp_path / "state",
        "--plain",
        *args,
        cwd=tmp_path,
    )


def resume(tmp_path: Path, run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return planrun("resume", run_id, "--state-dir", tmp_path / "state", *args, cwd=tmp_path)


def popen(tmp_path: Path, name: str, *args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start ``planrun ARGS`` in the background, output to ``name.out``/``name.err``."""
    with (tmp_path / f"{name}.out").open("wb") as out, (tmp_path / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [*PLANRUN, *map(str, args)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def output(tmp_path: Path, name: str) -> str:
    out = (tmp_path / f"{name}.out").read_text(errors="replace")
    err = (tmp_path / f"{name}.err").read_text(errors="replace")
    return f"stdout:\n{out}\nstderr:\n{err}"


def step_states(doc: dict[str, Any]) -> dict[str, str]:
    return {s["step_id"]: s["state"] for s in doc["steps"]}


def db_events(tmp_path: Path, run_id: str) -> list[tuple[int, str]]:
    """``(seq, body)`` of every event in the ``events`` table, in seq order."""
    rows = query(
        tmp_path / "state" / "runs.db",
        "SELECT seq, body FROM events WHERE run_id = ? ORDER BY seq",
        run_id,
    )
    return [(int(seq), str(body)) for seq, body in rows]


def checked_log(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    """The run's events, after checking that both stores hold seq 1..N once each and
    the same JSON."""
    jsonl = read_events(tmp_path / "state", run_id)
    assert [e["seq"] for e in jsonl] == list(range(1, len(jsonl) + 1))
    rows = db_events(tmp_path, run_id)
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    assert [json.loads(body) for _, body in rows] == jsonl
    return jsonl


def snapshot(tmp_path: Path, run_id: str) -> dict[str, Any]:
    """Everything a command that must write nothing could change."""
    state = tmp_path / "state"
    run_dir = state / "runs" / run_id
    return {
        "jsonl": (run_dir / "events.jsonl").read_bytes(),
        "events": db_events(tmp_path, run_id),
        "runs": query(state / "runs.db", "SELECT * FROM runs WHERE run_id = ?", run_id),
        "steps": query(
            state / "runs.db", "SELECT * FROM steps WHERE run_id = ? ORDER BY step_id", run_id
        ),
        "attempts": query(
            state / "runs.db",
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY step_id, attempt",
            run_id,
        ),
        "logs": sorted(p.name for p in (run_dir / "logs").iterdir()),
        "calls": calls(tmp_path),
    }


def failed_run(tmp_path: Path, run_id: str) -> Path:
    """a -> b -> c with d also before b; b fails until the gate is opened, so the run
    fails with a and d succeeded, b failed (1 attempt) and c cancelled (never started)."""
    plan = make_plan(
        tmp_path,
        [
            step("a"),
            step("d"),
            step("b", GATED, depends_on=["a", "d"]),
            step("c", depends_on=["b"]),
        ],
    )
    first = run(tmp_path, plan, run_id)
    assert first.returncode == 1, first.stdout + first.stderr
    assert sorted(calls(tmp_path)) == ["a 1", "b 1", "d 1"]
    return plan


# --- a failed run ----------------------------------------------------------------------


def test_resume_reruns_the_failed_step_and_downstream_and_reuses_the_rest(
    tmp_path: Path,
) -> None:
    """The failed step reruns as attempt 2 (its own log), the step after it runs for the
    first time, the succeeded ones are not executed again; the run id is the same and
    ends succeeded with every attempt shown."""
    failed_run(tmp_path, "r1")
    before = len(db_events(tmp_path, "r1"))
    open_gate(tmp_path)

    result = resume(tmp_path, "r1", "--plain")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "run r1 resumed: rerunning b, c; 2 step(s) keep their result" in result.stdout
    # The summary times the resume, not the time since the first start.
    assert re.search(r"run r1 succeeded in \S+ since the resume \(4 succeeded\)", result.stdout)
    assert calls(tmp_path)[3:] == ["b 2", "c 1"]  # a and d: once each, before
    assert sorted(calls(tmp_path)[:3]) == ["a 1", "b 1", "d 1"]

    doc = show_run(tmp_path, "r1")
    assert doc["run"]["run_id"] == "r1"
    assert doc["run"]["state"] == "succeeded"
    assert doc["run"]["exit_code"] == 0
    assert doc["run"]["resumes"] == 1
    assert step_states(doc) == dict.fromkeys("adbc", "succeeded")
    assert attempts(doc) == {
        "a": [(1, "succeeded")],
        "d": [(1, "succeeded")],
        "b": [(1, "failed"), (2, "succeeded")],
        "c": [(1, "succeeded")],
    }
    logs = tmp_path / "state" / "runs" / "r1" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "a.1.log",
        "b.1.log",
        "b.2.log",
        "c.1.log",
        "d.1.log",
    ]
    b_logs = {
        a["attempt"]: a["log_path"]
        for s in doc["steps"]
        if s["step_id"] == "b"
        for a in s["attempts"]
    }
    assert b_logs == {1: str(logs / "b.1.log"), 2: str(logs / "b.2.log")}

    events = checked_log(tmp_path, "r1")
    resumed = [e for e in events if e["type"] == "run_resumed"]
    assert len(resumed) == 1
    assert resumed[0]["seq"] == before + 1  # the log goes on where the run stopped
    assert resumed[0]["rerun"] == ["b", "c"]
    assert resumed[0]["kept"] == {"a": "succeeded", "d": "succeeded"}
    assert [e["type"] for e in events].count("run_finished") == 2
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["state"] == "succeeded"
    started = [
        (e["step_id"], e["attempt"]) for e in events[before:] if e["type"] == "attempt_started"
    ]
    assert started == [("b", 2), ("c", 1)]


def test_a_resume_that_fails_again_can_be_resumed_again(tmp_path: Path) -> None:
    """Still broken: the resume exits 1 with attempt 2 failed; the next resume makes
    attempt 3. Attempts keep counting, the run stays one run."""
    failed_run(tmp_path, "r2")
    again = resume(tmp_path, "r2", "--plain")
    assert again.returncode == 1, again.stdout + again.stderr
    assert calls(tmp_path)[3:] == ["b 2"]
    assert show_run(tmp_path, "r2")["run"]["state"] == "failed"

    open_gate(tmp_path)
    last = resume(tmp_path, "r2", "--plain")
    assert last.returncode == 0, last.stdout + last.stderr
    assert calls(tmp_path)[3:] == ["b 2", "b 3", "c 1"]
    doc = show_run(tmp_path, "r2")
    assert doc["run"]["resumes"] == 2
    assert attempts(doc)["b"] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    events = checked_log(tmp_path, "r2")
    assert [e["type"] for e in events].count("run_resumed") == 2


def test_retries_count_again_from_the_resumed_attempt(tmp_path: Path) -> None:
    """A step with one retry that used both attempts gets two more on resume (3 and 4)."""
    plan = make_plan(
        tmp_path,
        [step("a"), step("b", 'test "$PLANRUN_ATTEMPT" -ge 4', depends_on=["a"], retries=1)],
    )
    assert run(tmp_path, plan, "r3").returncode == 1
    assert calls(tmp_path) == ["a 1", "b 1", "b 2"]
    result = resume(tmp_path, "r3", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["a 1", "b 1", "b 2", "b 3", "b 4"]
    assert "b running (attempt 3/4" in result.stdout
    assert [n for n, _ in attempts(show_run(tmp_path, "r3"))["b"]] == [1, 2, 3, 4]
    checked_log(tmp_path, "r3")


def test_outputs_of_reused_steps_reach_the_rerun_steps(tmp_path: Path) -> None:
    """A reused producer is not run again, yet its stored outputs are substituted into
    the consumer that reruns; ``--from`` the producer makes new ones."""
    seen = tmp_path / "seen.txt"
    plan = make_plan(
        tmp_path,
        [
            step("make", 'echo "token=t$PLANRUN_ATTEMPT" >> "$PLANRUN_OUTPUT"'),
            step(
                "use",
                f'echo "$TOKEN $CODE" >> {seen}; ' + GATED,
                depends_on=["make"],
                env={"TOKEN": "${steps.make.outputs.token}", "CODE": "${steps.make.exit_code}"},
            ),
        ],
    )
    assert run(tmp_path, plan, "r4").returncode == 1
    assert seen.read_text() == "t1 0\n"
    open_gate(tmp_path)

    result = resume(tmp_path, "r4", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["make 1", "use 1", "use 2"]
    assert seen.read_text() == "t1 0\nt1 0\n"  # the stored output, not a rerun's
    assert step_states(show_run(tmp_path, "r4"))["make"] == "succeeded"
    assert {s["step_id"]: s["outputs"] for s in show_run(tmp_path, "r4")["steps"]}["make"] == {
        "token": "t1"
    }

    again = resume(tmp_path, "r4", "--from", "make", "--plain")
    assert again.returncode == 0, again.stdout + again.stderr
    assert calls(tmp_path)[3:] == ["make 2", "use 3"]
    assert seen.read_text().splitlines()[-1] == "t2 0"
    checked_log(tmp_path, "r4")


# --- --from, --only, nothing to rerun --------------------------------------------------


def test_from_reruns_the_step_and_everything_downstream(tmp_path: Path) -> None:
    """On a succeeded run: plain resume has nothing to rerun (exit 0, nothing written);
    ``--from b`` reruns b and c (new attempts) but not a, nor d (only after a)."""
    plan = make_plan(
        tmp_path,
        [
            step("a"),
            step("b", depends_on=["a"]),
            step("c", depends_on=["b"]),
            step("d", depends_on=["a"]),
        ],
    )
    assert run(tmp_path, plan, "r5").returncode == 0
    assert sorted(calls(tmp_path)) == ["a 1", "b 1", "c 1", "d 1"]
    before = snapshot(tmp_path, "r5")

    nothing = resume(tmp_path, "r5", "--plain")
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "nothing to rerun" in nothing.stderr
    assert snapshot(tmp_path, "r5") == before

    result = resume(tmp_path, "r5", "--from", "b", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path)[4:] == ["b 2", "c 2"]
    doc = show_run(tmp_path, "r5")
    assert doc["run"]["state"] == "succeeded"
    assert attempts(doc) == {
        "a": [(1, "succeeded")],
        "b": [(1, "succeeded"), (2, "succeeded")],
        "c": [(1, "succeeded"), (2, "succeeded")],
        "d": [(1, "succeeded")],
    }
    events = checked_log(tmp_path, "r5")
    resumed = [e for e in events if e["type"] == "run_resumed"]
    assert [(e["rerun"], e["kept"]) for e in resumed] == [
        (["b", "c"], {"a": "succeeded", "d": "succeeded"})
    ]


def test_only_reruns_just_that_step_and_needs_its_dependencies(tmp_path: Path) -> None:
    """``--only c`` is refused while c's dependency b has failed (exit 2, nothing
    written); ``--only b`` reruns b alone, leaving c cancelled, so the run is still not
    a success (exit 1); a plain resume then runs just c."""
    failed_run(tmp_path, "r6")
    open_gate(tmp_path)
    before = snapshot(tmp_path, "r6")

    refused = resume(tmp_path, "r6", "--only", "c")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "its dependency 'b' did not succeed (failed)" in refused.stderr
    assert snapshot(tmp_path, "r6") == before

    only = resume(tmp_path, "r6", "--only", "b", "--plain")
    assert only.returncode == 1, only.stdout + only.stderr
    assert calls(tmp_path)[3:] == ["b 2"]
    doc = show_run(tmp_path, "r6")
    assert doc["run"]["state"] == "failed"
    assert "'c'" in doc["run"]["reason"]
    assert step_states(doc) == {
        "a": "succeeded",
        "d": "succeeded",
        "b": "succeeded",
        "c": "cancelled",
    }
    assert attempts(doc)["c"] == []

    rest = resume(tmp_path, "r6", "--plain")
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert calls(tmp_path)[3:] == ["b 2", "c 1"]
    checked_log(tmp_path, "r6")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["r7", "--from", "nope"], "--from nope: no such step"),
        (["r7", "--only", "nope"], "--only nope: no such step"),
        (["r7", "--from", "a", "--only", "b"], "cannot be combined"),
        (["r7-nope"], "no run 'r7-nope'"),
    ],
    ids=["unknown-from", "unknown-only", "from-and-only", "unknown-run"],
)
def test_bad_resume_arguments_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    failed_run(tmp_path, "r7")
    before = snapshot(tmp_path, "r7")
    result = resume(tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert snapshot(tmp_path, "r7") == before


# --- --explain -------------------------------------------------------------------------

EXPLAIN_LINE = re.compile(r"^  (\S+)\s+(reuse|rerun|keep)\s+(.+)$")


def explained(stdout: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in stdout.splitlines()[1:]:
        match = EXPLAIN_LINE.match(line)
        assert match, line
        rows[match[1]] = (match[2], match[3])
    return rows


def test_explain_says_what_each_step_would_do_and_writes_nothing(tmp_path: Path) -> None:
    """Default, ``--from`` and ``--only`` decisions with their reasons; no process is
    started and nothing in the state dir changes."""
    failed_run(tmp_path, "r8")
    open_gate(tmp_path)
    before = snapshot(tmp_path, "r8")

    default = resume(tmp_path, "r8", "--explain")
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[0] == (
        "run r8 (failed): a resume would rerun 2 of 4 steps (nothing is run: --explain)"
    )
    assert explained(default.stdout) == {
        "a": ("reuse", "succeeded (attempt 1)"),
        "d": ("reuse", "succeeded (attempt 1)"),
        "b": ("rerun", "failed: exit code 1"),
        "c": ("rerun", "cancelled: step 'b' failed"),
    }

    from_a = resume(tmp_path, "r8", "--explain", "--from", "a")
    assert from_a.returncode == 0, from_a.stderr
    rows = explained(from_a.stdout)
    assert {k: v[0] for k, v in rows.items()} == {
        "a": "rerun",
        "d": "reuse",
        "b": "rerun",
        "c": "rerun",
    }
    assert rows["a"][1] == "--from a"

    only_b = resume(tmp_path, "r8", "--explain", "--only", "b")
    assert only_b.returncode == 0, only_b.stderr
    rows = explained(only_b.stdout)
    assert {k: v[0] for k, v in rows.items()} == {
        "a": "reuse",
        "d": "reuse",
        "b": "rerun",
        "c": "keep",
    }
    assert rows["c"][1].startswith("left cancelled")

    assert snapshot(tmp_path, "r8") == before


# --- changed plan or variables ---------------------------------------------------------


def test_a_changed_plan_is_refused_unless_allowed(tmp_path: Path) -> None:
    """Editing a step's args makes resume exit 2 naming the step and the field, writing
    nothing; ``--allow-changed`` resumes with the new plan."""
    plan = failed_run(tmp_path, "r9")
    doc = json.loads(plan.read_text())
    doc["steps"][2]["args"][1] = RECORD + "echo changed > changed.txt"  # b no longer fails
    write_json(plan, doc)
    before = snapshot(tmp_path, "r9")

    refused = resume(tmp_path, "r9")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "step 'b' changed (args)" in refused.stderr
    assert "--allow-changed" in refused.stderr
    assert snapshot(tmp_path, "r9") == before

    explain = resume(tmp_path, "r9", "--explain", "--allow-changed")
    assert explain.returncode == 0, explain.stderr
    assert "changed since the run (allowed): step 'b' changed (args)" in explain.stdout
    assert snapshot(tmp_path, "r9") == before

    allowed = resume(tmp_path, "r9", "--allow-changed", "--plain")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (tmp_path / "changed.txt").read_text() == "changed\n"
    assert calls(tmp_path)[3:] == ["b 2", "c 1"]
    checked_log(tmp_path, "r9")


def test_changed_variables_are_refused_unless_allowed(tmp_path: Path) -> None:
    """The run's variables are used again; ``--var`` giving another value is refused
    (``variable X: 'a' -> 'b'``) unless ``--allow-changed``, and then it is used."""
    seen = tmp_path / "x.txt"
    plan = make_plan(
        tmp_path,
        [step("a"), step("b", f'echo "$X" >> {seen}; ' + GATED, depends_on=["a"])],
        variables={"X": "default"},
    )
    assert run(tmp_path, plan, "r10", "--var", "X=a").returncode == 1
    open_gate(tmp_path)
    before = snapshot(tmp_path, "r10")

    refused = resume(tmp_path, "r10", "--var", "X=b")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "variable X: 'a' -> 'b'" in refused.stderr
    assert snapshot(tmp_path, "r10") == before

    same = resume(tmp_path, "r10", "--var", "X=a", "--explain")
    assert same.returncode == 0, same.stderr  # the same value is no change

    allowed = resume(tmp_path, "r10", "--var", "X=b", "--allow-changed", "--plain")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert seen.read_text() == "a\nb\n"
    assert show_run(tmp_path, "r10")["run"]["variables"]["X"] == "b"


def test_a_run_without_var_is_resumed_with_its_own_variables(tmp_path: Path) -> None:
    """Not passing ``--var`` again is no change: the run's value is used."""
    seen = tmp_path / "x.txt"
    plan = make_plan(
        tmp_path,
        [step("b", f'echo "$X" >> {seen}; ' + GATED)],
        variables={"X": "default"},
    )
    assert run(tmp_path, plan, "r11", "--var", "X=given").returncode == 1
    open_gate(tmp_path)
    result = resume(tmp_path, "r11", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert seen.read_text() == "given\ngiven\n"


# Adding and removing steps with --allow-changed: `show`/`list` should describe the run
# the resume ran (the plan's steps, in plan order).


def _add_and_remove(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path,
        [step("a"), step("b", GATED, depends_on=["a"]), step("gone", critical=False)],
    )
    assert run(tmp_path, plan, "r12").returncode == 1
    open_gate(tmp_path)
    make_plan(tmp_path, [step("a"), step("new"), step("b", GATED, depends_on=["a"])])
    refused = resume(tmp_path, "r12")
    assert refused.returncode == 2
    assert "step 'gone' was removed" in refused.stderr
    assert "step 'new' was added" in refused.stderr
    allowed = resume(tmp_path, "r12", "--allow-changed", "--plain")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert calls(tmp_path)[-2:] in (["new 1", "b 2"], ["b 2", "new 1"])


def test_a_step_added_on_resume_is_shown_in_plan_order(tmp_path: Path) -> None:
    _add_and_remove(tmp_path)
    doc = show_run(tmp_path, "r12")
    positions = {s["step_id"]: s["position"] for s in doc["steps"] if s["step_id"] != "gone"}
    assert positions == {"a": 0, "new": 1, "b": 2}  # today: b is still 1, like new
    shown = [s["step_id"] for s in doc["steps"] if s["step_id"] != "gone"]
    assert shown == ["a", "new", "b"]


def test_a_step_removed_on_resume_is_no_longer_a_step_of_the_run(tmp_path: Path) -> None:
    _add_and_remove(tmp_path)
    doc = show_run(tmp_path, "r12")
    assert doc["run"]["state"] == "succeeded"
    assert sorted(s["step_id"] for s in doc["steps"]) == ["a", "b", "new"]
    assert doc["run"]["step_count"] == 3


# --- secrets ---------------------------------------------------------------------------


def test_resume_reads_the_secrets_again_and_reruns_a_masked_producer(tmp_path: Path) -> None:
    """A ``--secret`` run: resume without the secret in the environment exits 2 naming
    it; with it, the producer whose output held the secret reruns (its stored value is
    masked) and the consumer gets the real value. The value is never stored."""
    secret = "s3cr3t-Value-42"  # noqa: S105 - a test value
    plan = make_plan(
        tmp_path,
        [
            step("make", 'printf "key=%s\\n" "$TOKEN" >> "$PLANRUN_OUTPUT"'),
            step(
                "use",
                'test "$K" = "$TOKEN" && echo same > same.txt; ' + GATED,
                depends_on=["make"],
                env={"K": "${steps.make.outputs.key}"},
            ),
        ],
    )
    state = tmp_path / "state"
    with_secret = clean_env(TOKEN=secret)
    first = planrun(
        "run", plan, "--run-id", "r13", "--secret", "TOKEN", "--state-dir", state,
        cwd=tmp_path, env=with_secret,
    )  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    assert (tmp_path / "same.txt").exists()
    (tmp_path / "same.txt").unlink()
    open_gate(tmp_path)

    missing = planrun("resume", "r13", "--state-dir", state, cwd=tmp_path)
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "secret 'TOKEN'" in missing.stderr

    explain = planrun(
        "resume", "r13", "--explain", "--state-dir", state, cwd=tmp_path, env=with_secret
    )
    assert explain.returncode == 0, explain.stderr
    rows = explained(explain.stdout)
    assert rows["make"][0] == "rerun"
    assert "held a secret" in rows["make"][1]

    result = planrun(
        "resume", "r13", "--plain", "--state-dir", state, cwd=tmp_path, env=with_secret
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["make 1", "use 1", "make 2", "use 2"]
    assert (tmp_path / "same.txt").exists()
    for path in state.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# --- running, concurrent, cancelled ----------------------------------------------------


def _events_of(tmp_path: Path, run_id: str) -> list[dict[str, Any]]:
    return read_events(tmp_path / "state", run_id)


def _started(tmp_path: Path, run_id: str, step_id: str, attempt: int) -> bool:
    return any(
        e["type"] == "attempt_started" and e["step_id"] == step_id and e["attempt"] == attempt
        for e in _events_of(tmp_path, run_id)
    )


def _stop(proc: subprocess.Popen[bytes], run_id: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_resume_of_a_running_run_exits_3(tmp_path: Path) -> None:
    """While ``planrun run`` still runs the run, resume refuses (exit 3), says why and
    changes nothing of it."""
    plan = make_plan(tmp_path, [step("a"), step("slow", "sleep 1000", depends_on=["a"])])
    proc = popen(tmp_path, "run", "run", plan, "--run-id", "r14", "--state-dir", tmp_path / "state")
    try:
        assert wait_until(lambda: _started(tmp_path, "r14", "slow", 1), 15), output(tmp_path, "run")
        events = len(_events_of(tmp_path, "r14"))
        result = resume(tmp_path, "r14")
        assert result.returncode == EXIT_LOCKED, result.stdout + result.stderr
        assert "run r14 is running" in result.stderr
        assert len(_events_of(tmp_path, "r14")) == events
        assert calls(tmp_path) == ["a 1", "slow 1"]
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == EXIT_CANCELLED
    finally:
        _stop(proc, "r14")


def test_resume_of_a_cancelled_run(tmp_path: Path) -> None:
    """SIGTERM cancels a run mid-step (grandchildren included); resume reruns the
    cancelled step as attempt 2 and the never-started one, not the finished one."""
    script = 'if [ "$PLANRUN_ATTEMPT" = 1 ]; then sleep 1000 & sleep 1000; fi'
    plan = make_plan(
        tmp_path,
        [step("a"), step("b", script, depends_on=["a"]), step("c", depends_on=["b"])],
        globals={"kill_grace_sec": 1},
    )
    proc = popen(tmp_path, "run", "run", plan, "--run-id", "r15", "--state-dir", tmp_path / "state")
    try:
        assert wait_until(lambda: _started(tmp_path, "r15", "b", 1), 15), output(tmp_path, "run")
        assert wait_until(lambda: len(live_pids_with_env("PLANRUN_RUN_ID", "r15")) >= 3, 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == EXIT_CANCELLED, output(tmp_path, "run")
    finally:
        _stop(proc, "r15")
    assert live_pids_with_env("PLANRUN_RUN_ID", "r15") == []
    doc = show_run(tmp_path, "r15")
    assert doc["run"]["state"] == "cancelled"
    assert step_states(doc) == {"a": "succeeded", "b": "cancelled", "c": "cancelled"}

    explain = resume(tmp_path, "r15", "--explain")
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.splitlines()[0] == (
        "run r15 (cancelled): a resume would rerun 2 of 3 steps (nothing is run: --explain)"
    )
    decisions = explained(explain.stdout)
    assert decisions["a"] == ("reuse", "succeeded (attempt 1)")
    assert decisions["b"][0] == decisions["c"][0] == "rerun"
    assert decisions["b"][1].startswith("cancelled")
    assert calls(tmp_path) == ["a 1", "b 1"]  # --explain ran nothing

    result = resume(tmp_path, "r15", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(tmp_path) == ["a 1", "b 1", "b 2", "c 1"]
    doc = show_run(tmp_path, "r15")
    assert doc["run"]["state"] == "succeeded"
    assert attempts(doc) == {
        "a": [(1, "succeeded")],
        "b": [(1, "cancelled"), (2, "succeeded")],
        "c": [(1, "succeeded")],
    }
    events = checked_log(tmp_path, "r15")
    assert [e["type"] for e in events].count("run_resumed") == 1
    assert live_pids_with_env("PLANRUN_RUN_ID", "r15") == []


def test_two_resumes_at_once_one_proceeds_the_other_exits_3(tmp_path: Path) -> None:
    """Two ``planrun resume`` of one failed run started together: exactly one takes it
    over and reruns the step once (exit 0), the other exits 3."""
    slow_second = 'if [ "$PLANRUN_ATTEMPT" = 1 ]; then exit 1; fi; sleep 2'
    plan = make_plan(tmp_path, [step("a"), step("b", slow_second, depends_on=["a"])])
    assert run(tmp_path, plan, "r16").returncode == 1
    state = tmp_path / "state"
    first = popen(tmp_path, "one", "resume", "r16", "--plain", "--state-dir", state)
    second = popen(tmp_path, "two", "resume", "r16", "--plain", "--state-dir", state)
    try:
        codes = {"one": first.wait(timeout=30), "two": second.wait(timeout=30)}
    finally:
        _stop(first, "r16")
        _stop(second, "r16")
    assert sorted(codes.values()) == [0, EXIT_LOCKED], output(tmp_path, "one") + output(
        tmp_path, "two"
    )
    loser = next(name for name, code in codes.items() if code == EXIT_LOCKED)
    assert "run r16 is running" in (tmp_path / f"{loser}.err").read_text()
    assert calls(tmp_path) == ["a 1", "b 1", "b 2"]
    doc = show_run(tmp_path, "r16")
    assert doc["run"]["state"] == "succeeded"
    assert doc["run"]["resumes"] == 1
    assert attempts(doc)["b"] == [(1, "failed"), (2, "succeeded")]
    events = checked_log(tmp_path, "r16")
    assert [e["type"] for e in events].count("run_resumed") == 1


# --- watch -----------------------------------------------------------------------------


def test_watch_follows_a_run_through_its_resumes(tmp_path: Path) -> None:
    """``watch --plain`` replays the first run and each resume; it exits 1 while the
    last resume failed, and, started while a resume runs, exits 0 when it succeeds."""
    script = 'if [ "$PLANRUN_ATTEMPT" -lt 3 ]; then exit 1; fi; sleep 2'
    plan = make_plan(tmp_path, [step("a"), step("b", script, depends_on=["a"])])
    state = tmp_path / "state"
    assert run(tmp_path, plan, "r17").returncode == 1
    assert resume(tmp_path, "r17", "--plain").returncode == 1

    failed = planrun("watch", "r17", "--plain", "--state-dir", state, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "run r17 started" in failed.stdout
    assert failed.stdout.count("run r17 resumed: rerunning b") == 1
    assert "b attempt 2 failed" in failed.stdout

    proc = popen(tmp_path, "resume", "resume", "r17", "--plain", "--state-dir", state)
    try:
        assert wait_until(lambda: _started(tmp_path, "r17", "b", 3), 15), output(tmp_path, "resume")
        assert proc.poll() is None
        live = planrun("watch", "r17", "--plain", "--state-dir", state, cwd=tmp_path)
        assert proc.wait(timeout=15) == 0, output(tmp_path, "resume")
    finally:
        _stop(proc, "r17")
    assert live.returncode == 0, live.stdout + live.stderr
    assert live.stdout.count("run r17 resumed: rerunning b") == 2
    assert "b running (attempt 3/" in live.stdout
    assert "b succeeded" in live.stdout
    lines = live.stdout.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if text in line)
        for text in ("run r17 started", "b attempt 1 failed", "b attempt 2 failed", "b succeeded")
    ]
    assert order == sorted(order)

    replay = planrun("watch", "r17", "--plain", "--state-dir", state, cwd=tmp_path)
    assert replay.returncode == 0
    assert replay.stdout.count("run r17 resumed") == 2
    checked_log(tmp_path, "r17")


def test_two_resumes_waiting_for_the_plan_lock_one_proceeds_the_other_exits_3(
    tmp_path: Path,
) -> None:
    """The documented guarantee still holds when both resumes first wait for the plan's
    lock (held by another run): one reruns the step once, the other exits 3."""
    plan = make_plan(
        tmp_path,
        [step("a"), step("b", 'test "$PLANRUN_ATTEMPT" -gt 1', depends_on=["a"])],
        globals={"lock": "L", "on_lock_conflict": "wait"},
    )
    assert run(tmp_path, plan, "r18").returncode == 1
    state = tmp_path / "state"
    release = tmp_path / "release"
    holder_plan = write_json(
        tmp_path / "holder.json",
        {
            "plan_id": "holder",
            "globals": {"lock": "L"},
            "steps": [sh("hold", f'while [ ! -f "{release}" ]; do sleep 0.05; done')],
        },
    )
    holder = popen(
        tmp_path, "holder", "run", holder_plan, "--run-id", "holder", "--state-dir", state
    )
    procs = [holder]
    try:
        assert wait_until(lambda: _started(tmp_path, "holder", "hold", 1), 15), output(
            tmp_path, "holder"
        )
        procs.append(popen(tmp_path, "one", "resume", "r18", "--plain", "--state-dir", state))
        procs.append(popen(tmp_path, "two", "resume", "r18", "--plain", "--state-dir", state))

        def both_waiting() -> bool:
            return all(
                "waiting for lock 'L'" in (tmp_path / f"{name}.err").read_text()
                for name in ("one", "two")
            )

        assert wait_until(both_waiting, 15), output(tmp_path, "one") + output(tmp_path, "two")
        release.touch()
        codes = sorted(p.wait(timeout=30) for p in procs[1:])
        assert holder.wait(timeout=15) == 0
    finally:
        for proc in procs:
            _stop(proc, "r18")
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", "holder"))
    events = checked_log(tmp_path, "r18")
    started = [(e["step_id"], e["attempt"]) for e in events if e["type"] == "attempt_started"]
    assert started == [("a", 1), ("b", 1), ("b", 2)]
    assert calls(tmp_path) == ["a 1", "b 1", "b 2"]
    assert [e["type"] for e in events].count("run_resumed") == 1
    assert codes == [0, EXIT_LOCKED]
