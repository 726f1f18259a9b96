"""``planrun validate``, ``planrun schema`` and ``--help`` through the real CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._cli import DEMO, SCHEMA_FILE, planrun, sh, write_json

#: A JSON path as planrun prints it after the file name: ``$.steps[3].depends_on[0]``.
JSON_PATH = re.compile(r": (\$(?:\.[A-Za-z0-9_$-]+|\[\d+\])*)[ :]")


def test_validate_accepts_the_demo_plan(tmp_path: Path) -> None:
    """A good plan validates with exit 0 and "valid plan", and nothing is written."""
    result = planrun("validate", DEMO, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid plan 'demo': 8 steps in 4 levels" in result.stdout
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_validate_lists_every_problem_of_a_bad_plan(tmp_path: Path) -> None:
    """A bad plan exits 2 and every problem is reported at once, each at its JSON path."""
    bad: dict[str, Any] = {
        "plan_id": "bad",
        "globals": {"max_concurrency": 1, "bogus": True},
        "steps": [
            {"id": "a", "command": "true", "retries": -1},
            {"id": "a", "command": "true"},
            {"id": "c", "command": "true", "depends_on": ["c", "ghost"]},
            {"id": "d", "comand": "true"},
        ],
    }
    plan = write_json(tmp_path / "bad.json", bad)
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    paths = set(JSON_PATH.findall(err))
    expected = {
        "$.globals.bogus",
        "$.steps[0].retries",
        "$.steps[1].id",
        "$.steps[2].depends_on[0]",
        "$.steps[2].depends_on[1]",
        "$.steps[3].comand",
    }
    assert expected <= paths, err
    assert len(paths) >= 3
    assert "did you mean 'command'?" in err  # the typo gets a hint
    assert "valid plan '" not in result.stdout
    assert list(tmp_path.iterdir()) == [plan]


def test_validate_prints_warnings_but_exits_0(tmp_path: Path) -> None:
    """A variable spliced into ``sh -c`` is a warning: printed, yet the plan is valid."""
    plan = write_json(
        tmp_path / "warn.json",
        {
            "plan_id": "warn",
            "variables": {"X": "hi"},
            "steps": [sh("s", "echo ${X}")],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid plan 'warn'" in result.stdout
    assert "$.steps[0].args[1]" in result.stderr
    assert "warning" in result.stderr
    assert "spliced into a shell script" in result.stderr


def test_validate_reports_syntax_errors_with_line_and_column(tmp_path: Path) -> None:
    """A JSON syntax error exits 2 and is located by line:column."""
    plan = tmp_path / "broken.json"
    plan.write_text('{\n  "plan_id": "x",\n  "steps": [\n}\n', encoding="utf-8")
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    assert re.search(r"broken\.json: \d+:\d+: syntax error", result.stderr), result.stderr


def test_schema_is_json_and_matches_the_committed_file(tmp_path: Path) -> None:
    """``planrun schema`` prints a JSON Schema with the plan's properties, identical to
    the committed plans/plan.schema.json."""
    result = planrun("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert isinstance(schema, dict)
    root = schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        assert ref.startswith("#/$defs/")
        root = schema["$defs"][ref.removeprefix("#/$defs/")]
    properties = root["properties"]
    for name in ("plan_id", "steps", "globals"):
        assert name in properties, sorted(properties)
    assert set(root.get("required", [])) >= {"plan_id", "steps"}
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == schema, (
        "plans/plan.schema.json is stale: regenerate it with `planrun schema`"
    )


def test_module_help_lists_the_commands(tmp_path: Path) -> None:
    """``python -m planrun --help`` exits 0 and lists run, validate and schema."""
    result = planrun("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("run", "validate", "schema"):
        assert re.search(rf"^\W*{command}\s", result.stdout, re.M), result.stdout


def test_an_empty_plan_file_says_it_is_empty(tmp_path: Path) -> None:
    """Not "is a comma missing?": the file has nothing in it."""
    plan = tmp_path / "empty.json"
    plan.write_text("\n")
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    assert "the file is empty" in result.stderr
    assert "comma" not in result.stderr
