"""``planrun.cli.jsonout``: the stable words and shapes of ``--json`` documents."""

from __future__ import annotations

import pytest

from planrun.cli.jsonout import error_doc, error_kind, problem_doc
from planrun.errors import (
    CancelError,
    LockConflict,
    NoRunStore,
    PlanError,
    PlanrunError,
    Problem,
    ResumeConflict,
    RunExists,
    StoreError,
    UsageError,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (PlanError([Problem("$", "bad")]), "invalid_plan"),
        (UsageError("--var expects NAME=VALUE"), "usage"),
        (UsageError("no run 'x' in .planrun", field="run_id"), "unknown_run"),
        (RunExists("r1"), "run_exists"),
        (LockConflict("lock 'x' is held by run r"), "lock_held"),
        (ResumeConflict("r1"), "resume_conflict"),
        (CancelError("run r1 is not running", state="failed"), "not_cancelled"),
        (NoRunStore("/x/runs.db"), "no_run_store"),
        (StoreError("disk I/O error"), "store_failed"),
        (PlanrunError("other"), "failed"),
    ],
)
def test_each_error_has_its_stable_kind(exc: PlanrunError, kind: str) -> None:
    assert error_kind(exc) == kind
    doc = error_doc(exc)
    assert doc["type"] == "error"
    assert doc["error"] == kind
    assert doc["exit_code"] == exc.exit_code


def test_a_syntax_error_path_becomes_numbers() -> None:
    doc = problem_doc(Problem("12:7", "syntax error: x", hint="fix it"))
    assert (doc["line"], doc["column"], doc["severity"]) == (12, 7, "error")


@pytest.mark.parametrize("path", ["$", "$.steps[0].args[1]", "$.a:b", "1:x"])
def test_a_json_path_has_no_line(path: str) -> None:
    doc = problem_doc(Problem(path, "m", step_id="s", warning=True))
    assert (doc["line"], doc["column"], doc["path"]) == (None, None, path)
    assert doc["severity"] == "warning"
    assert doc["step_id"] == "s"


def test_an_invalid_plan_error_lists_its_problems() -> None:
    exc = PlanError([Problem("$.steps", "empty"), Problem("$.x", "odd", warning=True)], "p.json")
    doc = error_doc(exc)
    assert doc["message"] == "invalid plan (1 problem)"
    assert doc["plan"] == "p.json"
    assert [p["severity"] for p in doc["problems"]] == ["error", "warning"]
