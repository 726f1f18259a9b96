"""``planrun run`` end to end: the demo plan, exit codes, --dry-run, plan formats."""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ._cli import DEMO, REPO, STAMP, planrun, query, read_events, sh, write_json

# --- the demo plan --------------------------------------------------------------------


def test_demo_plan_runs_in_plain_mode_and_records_the_run(tmp_path: Path) -> None:
    """The demo plan succeeds, logs one timestamped line per state change and records
    the run under .planrun/ in the working directory."""
    result = planrun("run", DEMO, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    started = re.search(r"^\S+ UTC run (\S+) started: plan demo, 8 steps", out, re.M)
    assert started is not None, out
    run_id = started[1]

    # The state dir was created in the cwd, with the store and the run's event log.
    state = tmp_path / ".planrun"
    assert (state / "runs.db").is_file()
    events_file = state / "runs" / run_id / "events.jsonl"
    assert events_file.is_file()
    events = read_events(state, run_id)
    assert events[0]["type"] == "run_started"
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["state"] == "succeeded"
    assert events[-1]["exit_code"] == 0

    # Plain mode: every line up to the summary is timestamped, but for the steps' own
    # lines (prefixed: not a terminal) ...
    lines = out.splitlines()
    summary_at = next(i for i, line in enumerate(lines) if line.startswith(f"run {run_id} "))
    streamed = [line for line in lines[:summary_at] if re.match(r"^[\w-]+ +\| ", line)]
    assert "flaky-upload  | attempt 3: uploaded" in streamed, streamed
    stamped = [line for line in lines[:summary_at] if line not in streamed]
    assert all(STAMP.match(line) for line in stamped), stamped
    # ... one per state change: every event except a successful attempt's end (the
    # step's own line says it) and the run's end (the summary says it).
    changes = [
        e
        for e in events
        if e["type"] != "run_finished"
        and not (e["type"] == "attempt_finished" and e["state"] == "succeeded")
    ]
    assert len(stamped) == len(changes), "\n".join(stamped)
    assert "\x1b[" not in out  # not a terminal: no escape sequences
    bodies = [STAMP.sub("", line) for line in stamped]
    assert any(b.startswith("flaky-upload retrying") for b in bodies), bodies
    assert "flaky-upload succeeded" in "\n".join(bodies)
    assert any(b.startswith("optional-lint failed") for b in bodies), bodies
    assert any(b.startswith("lint-report skipped") for b in bodies), bodies
    # Each step reaches its final state exactly once.
    for step, final in [
        ("fetch-a", "succeeded"),
        ("fetch-b", "succeeded"),
        ("fetch-c", "succeeded"),
        ("flaky-upload", "succeeded"),
        ("optional-lint", "failed"),
        ("lint-report", "skipped"),
        ("build", "succeeded"),
        ("cleanup", "succeeded"),
    ]:
        finals = [b for b in bodies if re.match(rf"{re.escape(step)} {final}\b", b)]
        assert len(finals) == 1, (step, bodies)

    # The summary: the run succeeded (the failed step is not critical), and the
    # failure is shown with its log tail.
    summary = lines[summary_at]
    assert re.match(rf"run {re.escape(run_id)} succeeded in \S+ \(", summary), summary
    tail = "\n".join(lines[summary_at:])
    assert "optional-lint (non-critical): failed" in tail
    assert "| style: 3 warnings" in tail

    rows = query(state / "runs.db", "SELECT state, exit_code FROM runs WHERE run_id = ?", run_id)
    assert rows == [("succeeded", 0)]


# --- exit codes -----------------------------------------------------------------------


def test_critical_step_failure_exits_1(tmp_path: Path) -> None:
    """A critical step that fails makes the run fail with exit code 1."""
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "fails", "steps": [sh("boom", "echo broken >&2; exit 3")]},
    )
    result = planrun("run", plan, "--run-id", "r-fail", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "run r-fail failed" in result.stdout
    assert "| broken" in result.stdout  # the failed step's log tail
    rows = query(
        tmp_path / ".planrun" / "runs.db",
        "SELECT state, exit_code FROM runs WHERE run_id = ?",
        "r-fail",
    )
    assert rows == [("failed", 1)]


def _invalid_plan(marker: Path) -> dict[str, Any]:
    """A plan with several problems, and one valid step that would create ``marker``."""
    return {
        "plan_id": "bad",
        "globals": {"max_concurrency": 0},
        "steps": [
            {"id": "marker", "command": "touch", "args": [str(marker)]},
            {"id": "a", "command": "true", "depends_on": ["nope"]},
            {"id": "b", "command": "true", "when": "sometimes"},
            {"id": "c", "command": "echo", "args": ["${UNDEFINED}"]},
        ],
    }


@pytest.mark.parametrize("command", [["run"], ["run", "--dry-run"], ["validate"]], ids=" ".join)
def test_invalid_plan_exits_2_lists_every_problem_and_touches_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    """An invalid plan exits 2, lists every problem with its JSON path, and creates no
    state and starts no process."""
    marker = tmp_path / "started"
    plan = write_json(tmp_path / "plans" / "bad.json", _invalid_plan(marker))
    work = tmp_path / "work"
    work.mkdir()
    result = planrun(*command, plan, cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert "invalid plan (4 problems)" in err, err
    for path in (
        "$.globals.max_concurrency",
        "$.steps[1].depends_on[0]",
        "$.steps[2].when",
        "$.steps[3].args[0]",
    ):
        assert f": {path}" in err, (path, err)
    assert "'nope'" in err
    assert "UNDEFINED" in err
    assert list(work.iterdir()) == []
    assert not marker.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "NOEQUALS"], "NAME=VALUE"),
        (["--var", "=value"], "NAME=VALUE"),
        (["--run-id", "../x"], "invalid run id"),
        (["--run-id", "a/b"], "invalid run id"),
    ],
)
def test_bad_arguments_exit_2_before_anything_happens(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A malformed --var or an unsafe --run-id exits 2 with a message, writing and
    starting nothing."""
    marker = tmp_path / "started"
    plan = write_json(
        tmp_path / "plans" / "ok.json",
        {"plan_id": "ok", "steps": [{"id": "m", "command": "touch", "args": [str(marker)]}]},
    )
    work = tmp_path / "work"
    work.mkdir()
    result = planrun("run", plan, *args, cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert list(work.iterdir()) == []
    assert not (tmp_path / "x").exists()
    assert not marker.exists()


def test_run_deadline_exits_124(tmp_path: Path) -> None:
    """A run that exceeds globals.timeout_sec is stopped and exits 124."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "deadline",
            "globals": {"timeout_sec": 0.5, "kill_grace_sec": 0.2},
            "steps": [{"id": "slow", "command": "sleep", "args": ["30"]}],
        },
    )
    started = time.monotonic()
    result = planrun("run", plan, "--run-id", "r-deadline", cwd=tmp_path, timeout=20)
    took = time.monotonic() - started
    assert result.returncode == 124, result.stdout + result.stderr
    assert took < 8, took
    assert "deadline" in result.stdout
    rows = query(
        tmp_path / ".planrun" / "runs.db",
        "SELECT exit_code FROM runs WHERE run_id = ?",
        "r-deadline",
    )
    assert rows == [(124,)]


@pytest.mark.parametrize("command", ["run", "validate"])
def test_missing_plan_file_exits_2_with_a_clear_message(tmp_path: Path, command: str) -> None:
    """A plan file that does not exist exits 2 saying so, with no traceback."""
    result = planrun(command, "no-such-plan.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "not found" in result.stderr
    assert "no-such-plan.json" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- --dry-run ------------------------------------------------------------------------


def _dry_run_levels(out: str) -> dict[int, dict[str, str]]:
    """``{level: {step id: argv as shown}}`` from --dry-run output."""
    levels: dict[int, dict[str, str]] = {}
    current: int | None = None
    for line in out.splitlines():
        header = re.fullmatch(r"level (\d+):", line)
        if header is not None:
            current = int(header[1])
            levels[current] = {}
            continue
        step = re.fullmatch(r"  (\S+): (.*)", line)
        if step is not None:
            assert current is not None, out
            levels[current][step[1]] = step[2]
    return levels


def test_dry_run_prints_levels_with_resolved_argv_and_writes_nothing(tmp_path: Path) -> None:
    """--dry-run shows the demo's steps level by level, with ${...} resolved, and
    creates no state dir."""
    result = planrun("run", DEMO, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    levels = _dry_run_levels(result.stdout)
    assert {k: sorted(v) for k, v in levels.items()} == {
        0: ["fetch-a", "fetch-b", "fetch-c"],
        1: ["flaky-upload", "optional-lint"],
        2: ["build", "lint-report"],
        3: ["cleanup"],
    }
    # "level 0:" ... "level 3:" in order.
    headers = re.findall(r"^level (\d+):$", result.stdout, re.M)
    assert headers == ["0", "1", "2", "3"]
    flaky = shlex.split(levels[1]["flaky-upload"])
    assert flaky == ["python3", str(REPO / "plans" / "demo" / "flaky.py"), "2"]
    assert shlex.split(levels[2]["lint-report"]) == ["echo", "lint passed"]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_substitutes_vars_and_starts_nothing(tmp_path: Path) -> None:
    """--dry-run with --var shows the substituted argv but runs no step."""
    marker = tmp_path / "marker"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "dry",
            "variables": {"TARGET": "default"},
            "steps": [
                {"id": "first", "command": "touch", "args": ["${TARGET}"]},
                {
                    "id": "second",
                    "command": "echo",
                    "args": ["x ${TARGET} y"],
                    "depends_on": ["first"],
                },
            ],
        },
    )
    result = planrun("run", plan, "--dry-run", "--var", f"TARGET={marker}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    levels = _dry_run_levels(result.stdout)
    assert shlex.split(levels[0]["first"]) == ["touch", str(marker)]
    assert shlex.split(levels[1]["second"]) == ["echo", f"x {marker} y"]
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


# --- the original design's example plan, in every format -----------------------------

EXAMPLE: dict[str, Any] = {
    "plan_id": "TEST-001",
    "globals": {"max_concurrency": 1},
    "steps": [{"id": "echo", "command": "echo", "args": ["hello"], "depends_on": []}],
}

EXAMPLE_TOML = """\
plan_id = "TEST-001"

[globals]
max_concurrency = 1

[[steps]]
id = "echo"
command = "echo"
args = ["hello"]
depends_on = []
"""


def _write_example(path: Path) -> None:
    if path.suffix == ".json":
        write_json(path, EXAMPLE)
    elif path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(EXAMPLE), encoding="utf-8")
    else:
        path.write_text(EXAMPLE_TOML, encoding="utf-8")


@pytest.mark.parametrize("name", ["plan.json", "plan.yaml", "plan.toml"])
def test_original_example_plan_runs_in_every_format(tmp_path: Path, name: str) -> None:
    """The original design's TEST-001 plan runs from a JSON, YAML or TOML file and its
    step's log holds the output."""
    plan = tmp_path / name
    _write_example(plan)
    result = planrun("run", plan, "--run-id", "example", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run example started: plan TEST-001" in result.stdout
    assert "run example succeeded" in result.stdout
    logs = list((tmp_path / ".planrun" / "runs" / "example" / "logs").iterdir())
    assert [p.name for p in logs] == ["echo.1.log"]
    assert logs[0].read_text().strip() == "hello"


def test_state_dir_option_puts_the_store_there(tmp_path: Path) -> None:
    """--state-dir writes the store where it is told, not in the cwd."""
    plan = tmp_path / "plan.json"
    _write_example(plan)
    work = tmp_path / "work"
    work.mkdir()
    state = tmp_path / "elsewhere" / "state"
    result = planrun("run", plan, "--state-dir", state, "--run-id", "sd", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(work.iterdir()) == []
    assert (state / "runs.db").is_file()
    assert read_events(state, "sd")[-1]["state"] == "succeeded"
    assert os.stat(state).st_mode & 0o777 == 0o700
