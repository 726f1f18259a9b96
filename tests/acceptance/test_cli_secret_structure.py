"""Masking never touches structure (issue 11, finding 1), through the real CLI: a
secret shorter than 4 characters is refused (exit 2) by ``run`` and ``resume``; a
secret that also occurs in the state-dir path, a step id and the run id leaves every
stored id, path and exit code intact, and ``logs`` still prints the (masked) log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from planrun.events import AttemptFinished, AttemptStarted, StepFinished, decode_event

from ._cli import clean_env, planrun, query, sh, write_json

SECRET = "sekr"  # noqa: S105 - a test value: 4 characters, in every path and id below
GOOD = "good-secret"
SHORT = "ab"  # a 2-character secret: refused


def _gated_plan(tmp_path: Path, **extra: Any) -> Path:
    """One step that fails until ``tmp_path/gate`` exists."""
    gate = tmp_path / "gate"
    return write_json(
        tmp_path / "plan.json",
        {"plan_id": "short", "steps": [sh("a", f"test -e '{gate}'")], **extra},
    )


@pytest.mark.parametrize("value", ["ab", "e", "abc"])
@pytest.mark.parametrize("how", ["plan", "flag"])
def test_run_refuses_a_short_secret(tmp_path: Path, value: str, how: str) -> None:
    """``run`` with a secret of 1-3 characters exits 2 naming the secret (never its
    value); nothing is written."""
    work = tmp_path / "work"
    work.mkdir()
    if how == "plan":
        plan = _gated_plan(tmp_path, secrets=["TOKEN"])
        args: list[str | Path] = ["run", plan]
    else:
        plan = _gated_plan(tmp_path)
        args = ["run", plan, "--secret", "TOKEN"]
    result = planrun(*args, cwd=work, env=clean_env(TOKEN=value))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "secret 'TOKEN' is shorter than 4 characters" in result.stderr
    if how == "plan":
        assert "$.secrets[0]" in result.stderr
    else:
        assert "--secret TOKEN" in result.stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("how", ["plan", "flag"])
def test_run_refuses_a_secret_that_is_not_utf8(tmp_path: Path, how: str) -> None:
    """A secret whose bytes are not UTF-8 (it could be neither masked nor stored) exits
    2 naming it, with no traceback; nothing is written."""
    work = tmp_path / "work"
    work.mkdir()
    if how == "plan":
        args: list[str | Path] = ["run", _gated_plan(tmp_path, secrets=["TOKEN"])]
    else:
        args = ["run", _gated_plan(tmp_path), "--secret", "TOKEN"]
    # Passed to the child as the raw bytes ff fe, then "abcd" (surrogateescape).
    bad = "\udcff\udcfeabcd"
    result = planrun(*args, cwd=work, env=clean_env(TOKEN=bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "secret 'TOKEN' is not valid UTF-8" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("how", ["plan", "flag"])
def test_resume_refuses_a_short_secret(tmp_path: Path, how: str) -> None:
    """A run started with a good secret, resumed with a 2-character one: exit 2 naming
    it, and the run is left as it was."""
    state = tmp_path / "state"
    if how == "plan":
        plan = _gated_plan(tmp_path, secrets=["TOKEN"])
        flags: list[str] = []
    else:
        plan = _gated_plan(tmp_path)
        flags = ["--secret", "TOKEN"]
    first = planrun(
        "run", plan, *flags, "--run-id", "r-1", "--state-dir", state, "--plain",
        cwd=tmp_path, env=clean_env(TOKEN=GOOD),
    )  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    before = query(state / "runs.db", "SELECT state, last_seq FROM runs")
    (tmp_path / "gate").touch()
    result = planrun(
        "resume", "r-1", *flags, "--state-dir", state, "--plain",
        cwd=tmp_path, env=clean_env(TOKEN=SHORT),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "secret 'TOKEN'" in result.stderr
    assert "shorter than 4 characters" in result.stderr
    assert query(state / "runs.db", "SELECT state, last_seq FROM runs") == before
    # With a good value again, the resume works.
    again = planrun(
        "resume", "r-1", *flags, "--state-dir", state, "--plain",
        cwd=tmp_path, env=clean_env(TOKEN=GOOD),
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr


# --- a secret that is also part of the structure ------------------------------------

RUN_ID = f"r-{SECRET}"
#: Step ids holding the secret: one equal to it, one containing it.
STEP_A, STEP_B = SECRET, f"b-{SECRET}"


WRITE_A = 'echo "token $TOKEN in step $PLANRUN_STEP_ID"; echo "k=$TOKEN" >> "$PLANRUN_OUTPUT"'


def test_secret_in_paths_and_ids_changes_nothing_stored(tmp_path: Path) -> None:
    """The secret is in the state-dir path, in the step ids and in the run id; exit
    codes (0, 3) are numbers. Everything stored (runs.db rows, events.jsonl, ``show
    --json``) keeps those ids, paths and exit codes; only the log's and outputs' text
    is masked; ``logs`` prints the log, masked."""
    work = tmp_path / f"{SECRET}-work"
    state = work / SECRET / "state"
    plan = write_json(
        work / "plan.json",
        {
            "plan_id": f"plan-{SECRET}",
            "secrets": ["TOKEN"],
            "steps": [
                sh(STEP_A, WRITE_A),
                sh(STEP_B, "echo failing; exit 3", depends_on=[STEP_A], retries=1),
            ],
        },
    )  # fmt: skip
    result = planrun(
        "run", plan, "--run-id", RUN_ID, "--state-dir", state, "--plain",
        cwd=work, env=clean_env(TOKEN=SECRET),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    # planrun's own messages name the step, not '***'.
    assert f"step '{STEP_B}' failed" in result.stdout

    log_dir = state / "runs" / RUN_ID / "logs"
    logs_of = {
        STEP_A: [str(log_dir / f"{STEP_A}.1.log")],
        STEP_B: [str(log_dir / f"{STEP_B}.1.log"), str(log_dir / f"{STEP_B}.2.log")],
    }
    codes = {STEP_A: 0, STEP_B: 3}
    db = state / "runs.db"
    assert query(db, "SELECT run_id, plan_id, plan_path, state, exit_code FROM runs") == [
        (RUN_ID, f"plan-{SECRET}", str(plan), "failed", 1)
    ]
    assert query(db, "SELECT run_id, step_id, exit_code FROM steps ORDER BY position") == [
        (RUN_ID, STEP_A, 0),
        (RUN_ID, STEP_B, 3),
    ]
    assert query(
        db, "SELECT step_id, attempt, exit_code, log_path FROM attempts ORDER BY step_id, attempt"
    ) == [
        (STEP_B, 1, 3, logs_of[STEP_B][0]),
        (STEP_B, 2, 3, logs_of[STEP_B][1]),
        (STEP_A, 1, 0, logs_of[STEP_A][0]),
    ]
    assert json.loads(query(db, "SELECT variables FROM runs")[0][0]) == {"PLAN_DIR": str(work)}

    # events.jsonl and the events table: the same bytes, every line decodes, ids intact.
    lines = (state / "runs" / RUN_ID / "events.jsonl").read_text().splitlines()
    assert [row[0] for row in query(db, "SELECT body FROM events ORDER BY seq")] == lines
    events = [decode_event(line) for line in lines]
    assert {e.run_id for e in events} == {RUN_ID}
    for event in events:
        if isinstance(event, AttemptStarted):
            assert event.log_path == logs_of[event.step_id][event.attempt - 1]
        if isinstance(event, AttemptFinished | StepFinished):
            assert event.exit_code == codes[event.step_id]
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert [e.step_id for e in finished] == [STEP_A, STEP_B]
    assert finished[0].outputs == {"k": "***"}
    assert finished[0].masked_outputs == ["k"]
    started = json.loads(lines[0])
    assert [(s["id"], s["name"], s["depends_on"]) for s in started["steps"]] == [
        (STEP_A, STEP_A, []),
        (STEP_B, STEP_B, [STEP_A]),
    ]
    assert json.loads(lines[-1])["failed_steps"] == [STEP_B]

    show = planrun("show", RUN_ID, "--json", "--state-dir", state, cwd=work)
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    assert doc["run"]["run_id"] == RUN_ID
    assert doc["run"]["reason"] == f"step '{STEP_B}' failed"
    assert [
        (s["step_id"], s["exit_code"], [(a["exit_code"], a["log_path"]) for a in s["attempts"]])
        for s in doc["steps"]
    ] == [
        (STEP_A, 0, [(0, logs_of[STEP_A][0])]),
        (STEP_B, 3, [(3, logs_of[STEP_B][0]), (3, logs_of[STEP_B][1])]),
    ]

    # `logs` still finds the log files; what they hold is masked.
    one = planrun("logs", RUN_ID, STEP_A, "--state-dir", state, cwd=work)
    assert one.returncode == 0, one.stderr
    assert one.stdout == "token *** in step ***\n"
    every = planrun("logs", RUN_ID, "--state-dir", state, cwd=work)
    assert every.returncode == 0, every.stderr
    assert every.stdout.splitlines() == [
        f"[{STEP_A}] token *** in step ***",
        f"[{STEP_B}] failing",
    ]


def test_resume_with_a_secret_equal_to_an_enum_value(tmp_path: Path) -> None:
    """A secret equal to a value of the plan's structure (`on_failure: continue`, the
    secret's own name): the stored plan keeps it, so `resume` compares and works (it
    used to die with "Invalid enum value '***'")."""
    state = tmp_path / "state"
    gate = tmp_path / "gate"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "enum",
            "secrets": ["TOKEN"],
            "steps": [sh("a", f"test -e '{gate}'", on_failure="continue", when="all_done")],
        },
    )
    for secret in ("continue", "TOKEN"):
        run_id = f"r-{secret}"
        env = clean_env(TOKEN=secret)
        first = planrun(
            "run", plan, "--run-id", run_id, "--state-dir", state, "--plain", cwd=tmp_path, env=env
        )
        assert first.returncode == 1, first.stdout + first.stderr
        gate.touch()
        again = planrun("resume", run_id, "--state-dir", state, "--plain", cwd=tmp_path, env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        gate.unlink()
