"""The plan language through the real CLI, with real processes: ``if`` conditions, a
static matrix, YAML anchors, output keys with '-' and ``${steps...:-default}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planrun.store.sql import SELECT_PLAN_JSON

from ._cli import planrun, query, read_events, sh, write_json

OUT = '>> "$PLANRUN_OUTPUT"'


def show_steps(run_id: str, cwd: Path) -> dict[str, dict[str, Any]]:
    result = planrun("show", run_id, "--json", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return {s["step_id"]: s for s in json.loads(result.stdout)["steps"]}


def record(step_id: str, out: Path, text: str, **fields: Any) -> dict[str, Any]:
    """A step that appends ``text`` (a template) as one line to ``out``."""
    return sh(step_id, 'printf "%s\\n" "$1" >> "$2"', **fields) | {
        "args": ["-c", 'printf "%s\\n" "$1" >> "$2"', "sh", text, str(out)]
    }


# --- conditions ----------------------------------------------------------------------


def _gate_plan(tmp_path: Path, out: Path) -> Path:
    return write_json(
        tmp_path / "gate.json",
        {
            "plan_id": "gate",
            "variables": {"TARGET": "dev"},
            "steps": [
                sh("build", f"echo cache-hit=yes {OUT}; echo count=12 {OUT}"),
                record(
                    "deploy",
                    out,
                    "deployed",
                    depends_on=["build"],
                    **{"if": "vars.TARGET == 'prod' && steps.build.outputs.cache-hit == 'yes'"},
                ),
                record("after", out, "after", depends_on=["deploy"]),
                record("cleanup", out, "cleanup", depends_on=["deploy"], when="all_done"),
                record(
                    "big",
                    out,
                    "big",
                    depends_on=["build"],
                    **{"if": "steps.build.outputs.count > 9 && steps.build.exit_code == 0"},
                ),
            ],
        },
    )


def test_a_false_condition_skips_the_step_and_the_run_succeeds(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    plan = _gate_plan(tmp_path, out)
    result = planrun("run", plan, "--run-id", "r-false", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The skipped branch is not a failure anywhere.
    assert "failed" not in result.stdout
    assert "deploy skipped: condition false: vars.TARGET == 'prod'" in result.stdout
    assert sorted(out.read_text().split()) == ["big", "cleanup"]
    steps = show_steps("r-false", tmp_path)
    assert steps["deploy"]["state"] == "skipped"
    assert steps["deploy"]["reason"] == (
        "condition false: vars.TARGET == 'prod' && steps.build.outputs.cache-hit == 'yes'"
    )
    assert steps["deploy"]["attempts"] == []  # it never started
    assert steps["after"]["state"] == "skipped"  # skip propagates as for any skip
    assert steps["cleanup"]["state"] == "succeeded"
    finished = [
        e for e in read_events(tmp_path / ".planrun", "r-false") if e["type"] == "run_finished"
    ]
    assert finished[0]["state"] == "succeeded"
    assert finished[0]["failed_steps"] == []


def test_a_true_condition_runs_the_step(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    plan = _gate_plan(tmp_path, out)
    result = planrun("run", plan, "--var", "TARGET=prod", "--run-id", "r-true", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(out.read_text().split()) == ["after", "big", "cleanup", "deployed"]
    assert show_steps("r-true", tmp_path)["deploy"]["state"] == "succeeded"


def test_dry_run_shows_the_condition(tmp_path: Path) -> None:
    plan = _gate_plan(tmp_path, tmp_path / "ran.txt")
    result = planrun("run", plan, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "if vars.TARGET == 'prod' && steps.build.outputs.cache-hit == 'yes'" in result.stdout
    doc = json.loads(planrun("run", plan, "--dry-run", "--json", cwd=tmp_path).stdout)
    by_id = {s["id"]: s for s in doc["steps"]}
    assert by_id["big"]["if"] == "steps.build.outputs.count > 9 && steps.build.exit_code == 0"
    assert by_id["build"]["if"] is None


def test_an_invalid_condition_is_exit_2_with_path_and_column(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "bad.json",
        {
            "plan_id": "bad",
            "variables": {"TARGET": "dev"},
            "steps": [
                {"id": "a", "command": "true"},
                {"id": "b", "command": "true", "depends_on": ["a"], "if": "vars.TARGET = 'x'"},
                {"id": "c", "command": "true", "if": "vars.TARGT == 'x' || steps.a.state"},
            ],
        },
    )
    for command in (("validate",), ("run",)):
        result = planrun(*command, plan, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "$.steps[1].if (step 'b'): column 13: unexpected character '='" in result.stderr
        assert "use '==' to compare" in result.stderr
        assert "$.steps[2].if (step 'c'): column 1: unknown variable 'TARGT'" in result.stderr
        assert "did you mean 'vars.TARGET'?" in result.stderr
        assert "column 22: 'steps.a.state': step 'a' is not an ancestor of 'c'" in result.stderr
    assert not (tmp_path / ".planrun").exists() or not list((tmp_path / ".planrun").rglob("*.log"))
    doc = json.loads(planrun("validate", plan, "--json", cwd=tmp_path).stdout)
    assert [p["path"] for p in doc["problems"]] == [
        "$.steps[1].if",
        "$.steps[2].if",
        "$.steps[2].if",
    ]


# --- matrix --------------------------------------------------------------------------


def _matrix_plan(tmp_path: Path, out: Path, fail_marker: Path | None = None) -> Path:
    # The failing instance fails once the other two have written their line (at most
    # 5 s later): its failure aborts the run, which would cancel one still running.
    wait = (
        'i=0; while [ "$(cat "$2" 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 500 ]; '
        "do sleep 0.01; i=$((i+1)); done"
    )
    fail = (
        f'if [ "$1" = "3.12/pg" ] && [ ! -e {fail_marker} ]; then {wait}; exit 1; fi; '
        if fail_marker
        else ""
    )
    return write_json(
        tmp_path / "matrix.json",
        {
            "plan_id": "matrix",
            "steps": [
                sh("build", "true"),
                {
                    "id": "test",
                    "command": "sh",
                    "args": [
                        "-c",
                        f'{fail}printf "%s\\n" "$1" >> "$2"',
                        "sh",
                        "${matrix.python}/${matrix.db}",
                        str(out),
                    ],
                    "depends_on": ["build"],
                    "matrix": {
                        "python": ["3.11", 3.12],
                        "db": ["pg", "sqlite"],
                        "exclude": [{"python": 3.12, "db": "sqlite"}],
                    },
                    "env": {"PY": "${matrix.python}"},
                },
                record("report", out, "report", depends_on=["test"]),
            ],
        },
    )


INSTANCES = ["test[python=3.11,db=pg]", "test[python=3.11,db=sqlite]", "test[python=3.12,db=pg]"]


def test_a_matrix_runs_one_instance_per_combination(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    plan = _matrix_plan(tmp_path, out)
    text = planrun("validate", plan, cwd=tmp_path)
    assert f"  test: 3 instances: {', '.join(INSTANCES)}" in text.stdout
    listed = planrun("validate", plan, "--json", cwd=tmp_path)
    assert json.loads(listed.stdout)["steps"] == ["build", *INSTANCES, "report"]
    dry = planrun("run", plan, "--dry-run", cwd=tmp_path)
    assert "test[python=3.12,db=pg]: sh -c" in dry.stdout
    assert f"after {', '.join(INSTANCES)}" in dry.stdout
    doc = json.loads(planrun("run", plan, "--dry-run", "--json", cwd=tmp_path).stdout)
    assert [s["matrix"] for s in doc["steps"]] == [
        None,
        {"python": "3.11", "db": "pg"},
        {"python": "3.11", "db": "sqlite"},
        {"python": "3.12", "db": "pg"},
        None,
    ]
    graph = planrun("graph", plan, "--format", "dot", cwd=tmp_path)
    assert graph.returncode == 0, graph.stderr
    assert "python=3.11,db=sqlite" in graph.stdout

    result = planrun("run", plan, "--run-id", "r-matrix", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = out.read_text().split()
    assert sorted(lines[:3]) == ["3.11/pg", "3.11/sqlite", "3.12/pg"]
    assert lines[3] == "report"  # after every instance
    steps = show_steps("r-matrix", tmp_path)
    assert list(steps) == ["build", *INSTANCES, "report"]
    assert all(steps[i]["state"] == "succeeded" for i in INSTANCES)
    logs = planrun("logs", "r-matrix", "test[python=3.12,db=pg]", cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    # The stored plan is the plan as written (a resume expands it again).
    ((stored,),) = query(tmp_path / ".planrun" / "runs.db", SELECT_PLAN_JSON, "r-matrix")
    assert [s["id"] for s in json.loads(stored)["steps"]] == ["build", "test", "report"]


def test_a_matrix_resume_reruns_only_the_failed_instance(tmp_path: Path) -> None:
    out = tmp_path / "ran.txt"
    marker = tmp_path / "fixed"
    plan = _matrix_plan(tmp_path, out, marker)
    first = planrun("run", plan, "--run-id", "r-res", cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "test[python=3.12,db=pg]" in first.stdout
    marker.touch()
    explain = planrun("resume", "r-res", "--explain", cwd=tmp_path)
    assert explain.returncode == 0, explain.stderr
    rerun = [line.split()[0] for line in explain.stdout.splitlines()[1:] if " rerun " in line]
    assert rerun == ["test[python=3.12,db=pg]", "report"]
    out.write_text("")
    again = planrun("resume", "r-res", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert out.read_text().split() == ["3.12/pg", "report"]


def test_matrix_errors_are_located(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "bad.json",
        {
            "plan_id": "bad",
            "steps": [
                {
                    "id": "t",
                    "command": "echo",
                    "args": ["${matrix.pyhton}"],
                    "matrix": {"python": [], "db": ["pg"]},
                },
                {"id": "u", "command": "echo", "args": ["${matrix.db}"]},
            ],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    assert "$.steps[0].matrix.python (step 't'): axis 'python' has no values" in result.stderr
    assert (
        "'pyhton' is not an axis of the matrix; did you mean '${matrix.python}'?" in result.stderr
    )
    assert (
        "$.steps[1].args[0] (step 'u'): '${matrix.db}' is used outside a matrix step"
        in result.stderr
    )


# --- YAML anchors, dashed output keys, defaults ---------------------------------------


def test_yaml_anchors_dashed_outputs_and_defaults(tmp_path: Path) -> None:
    out = tmp_path / "got.txt"
    plan = tmp_path / "anchors.yaml"
    plan.write_text(
        f"""\
plan_id: anchors
x-record: &record
  command: sh
  timeout_sec: 30
x-args: &args
  args: ["-c", 'printf "%s\\n" "$1" >> "$2"', sh, "cell", "{out}"]
steps:
  - id: produce
    command: sh
    args: ["-c", 'echo cache-hit=true {OUT}']
  - <<: [*record, *args]
    id: cell
  - id: gate
    command: "false"
    critical: false
    on_failure: continue
    if: "steps.produce.outputs.cache-hit != 'true'"
    depends_on: [produce]
  - <<: *record
    id: consume
    depends_on: [produce, gate]
    when: all_done
    args:
      - -c
      - 'printf "%s|%s|%s\\n" "$1" "$2" "$3" >> "$4"'
      - sh
      - "${{steps.produce.outputs.cache-hit}}"
      - "${{steps.produce.outputs.missing:-fallback}}"
      - "${{steps.gate.exit_code:-none}}"
      - "{out}"
""",
        encoding="utf-8",
    )
    result = planrun("run", plan, "--run-id", "r-anchors", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(out.read_text().splitlines()) == ["cell", "true|fallback|none"]
    steps = show_steps("r-anchors", tmp_path)
    assert steps["produce"]["outputs"] == {"cache-hit": "true"}
    assert steps["gate"]["state"] == "skipped"


def test_a_default_is_only_for_step_references(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "strict.json",
        {"plan_id": "strict", "steps": [{"id": "a", "command": "echo", "args": ["${NAME:-x}"]}]},
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    assert "$.steps[0].args[0] (step 'a')" in result.stderr
    assert "takes no shell forms such as ${X:-default}" in result.stderr


def test_without_a_default_a_missing_output_still_fails_the_consumer(tmp_path: Path) -> None:
    plan = write_json(
        tmp_path / "missing.json",
        {
            "plan_id": "missing",
            "steps": [
                sh("a", "true"),
                {
                    "id": "b",
                    "command": "echo",
                    "args": ["${steps.a.outputs.nope}"],
                    "depends_on": ["a"],
                },
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-missing", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "the step did not write nope=... to $PLANRUN_OUTPUT"
        in show_steps("r-missing", tmp_path)["b"]["reason"]
    )


def test_conditions_on_a_fan_out_and_after_a_matrix(tmp_path: Path) -> None:
    """A for_each step's ``if`` that uses ``item`` is each instance's own; one that does
    not decides for the whole fan-out (false: no instance is made)."""
    out = tmp_path / "ran.txt"
    items = 'ITEMS=["a", "b", "c"]'
    plan = write_json(
        tmp_path / "fan.json",
        {
            "plan_id": "fan",
            "steps": [
                {"id": "test", "command": "true", "matrix": {"n": [1, 2]}},
                sh("list", f"echo '{items}' {OUT}", depends_on=["test"]),
                record(
                    "each",
                    out,
                    "item=${item}",
                    depends_on=["list"],
                    for_each="${steps.list.outputs.ITEMS}",
                    **{"if": "item != 'b'"},
                ),
                record(
                    "gated",
                    out,
                    "gated",
                    depends_on=["list"],
                    for_each="${steps.list.outputs.ITEMS}",
                    **{"if": "steps.list.state == 'failed'"},
                ),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-fan", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(out.read_text().split()) == ["item=a", "item=c"]
    steps = show_steps("r-fan", tmp_path)
    assert steps["each[1:b]"]["state"] == "skipped"
    assert steps["each[1:b]"]["reason"] == "condition false: item != 'b'"
    assert steps["gated"]["state"] == "skipped"
    assert not [s for s in steps if s.startswith("gated[")]
