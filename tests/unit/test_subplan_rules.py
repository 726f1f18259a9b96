"""The rules of ``uses`` steps: one of command/uses, fields that do not apply, with keys,
secrets, cycles of ``uses`` (files in a temp dir, validated by ``plan.validate``), and
the child run ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from planrun.plan import validate
from planrun.plan.uses import MAX_USES_DEPTH
from planrun.subplan import child_run_id


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _uses(target: str, step_id: str = "s", **fields: Any) -> dict[str, Any]:
    """A ``uses`` step (``with_`` is written ``with``)."""
    if "with_" in fields:
        fields["with"] = fields.pop("with_")
    return {"id": step_id, "uses": target, **fields}


def _messages(path: Path, **kwargs: Any) -> list[str]:
    return [p.render() for p in validate(path, **kwargs).errors]


def _child(tmp_path: Path, **fields: Any) -> Path:
    doc = {"plan_id": "child", "steps": [{"id": "a", "command": "true"}], **fields}
    return _write(tmp_path / "child.json", doc)


def test_a_two_plan_cycle_names_the_chain(tmp_path: Path) -> None:
    """a -> b -> a is one error naming the whole chain."""
    _write(tmp_path / "a.json", {"plan_id": "a", "steps": [_uses("b.json")]})
    _write(tmp_path / "b.json", {"plan_id": "b", "steps": [_uses("a.json")]})
    errors = _messages(tmp_path / "a.json")
    assert len(errors) == 1
    assert "uses cycle: a.json -> b.json -> a.json" in errors[0]


def test_a_plan_using_itself_is_a_cycle(tmp_path: Path) -> None:
    plan = _write(tmp_path / "self.json", {"plan_id": "x", "steps": [_uses("./self.json")]})
    (error,) = _messages(plan)
    assert "$.steps[0].uses (step 's'): uses cycle: self.json -> self.json" in error


def test_a_diamond_of_uses_is_no_cycle(tmp_path: Path) -> None:
    """Two steps using the same child (and the child used at two depths) is fine."""
    _child(tmp_path)
    _write(tmp_path / "mid.json", {"plan_id": "mid", "steps": [_uses("child.json")]})
    plan = _write(
        tmp_path / "top.json",
        {"plan_id": "top", "steps": [_uses("mid.json", "one"), _uses("child.json", "two")]},
    )
    assert _messages(plan) == []


def test_a_chain_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    for i in range(MAX_USES_DEPTH + 2):
        _write(tmp_path / f"p{i}.json", {"plan_id": f"p{i}", "steps": [_uses(f"p{i + 1}.json")]})
    _child(tmp_path)
    (tmp_path / f"p{MAX_USES_DEPTH + 2}.json").write_text((tmp_path / "child.json").read_text())
    errors = _messages(tmp_path / "p0.json")
    assert len(errors) == 1
    assert f"'uses' nested deeper than {MAX_USES_DEPTH} plans" in errors[0]


@pytest.mark.parametrize(
    ("with_", "expected"),
    [
        ({"DOC": "1"}, []),
        ({"DOC": "${X}"}, []),  # a template: the child checks the given value's name only
        ({"DOC": "1", "DCO": "2"}, ["$.steps[0].with.DCO (step 's'): child.json: variable 'DCO'"]),
        ({}, ["$.steps[0].uses (step 's'): child.json: $.variables.DOC: variable 'DOC' has no"]),
    ],
    ids=["declared", "template", "undeclared-key", "required-missing"],
)
def test_with_keys_are_the_childs_variables(
    tmp_path: Path, with_: dict[str, str], expected: list[str]
) -> None:
    _child(tmp_path, variables={"DOC": None, "MODE": "fast"})
    plan = _write(
        tmp_path / "p.json",
        {
            "plan_id": "p",
            "variables": {"X": "x"},
            "steps": [_uses("child.json", with_=with_)],
        },
    )
    errors = _messages(plan)
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), error


def test_a_required_child_variable_is_needed_even_when_validating_the_parent(
    tmp_path: Path,
) -> None:
    """``planrun validate`` does not require the parent's values, but the child's come
    from ``with``, which is written in the plan: still required."""
    _child(tmp_path, variables={"DOC": None})
    plan = _write(tmp_path / "p.json", {"plan_id": "p", "steps": [_uses("child.json")]})
    assert len(validate(plan, require_values=False).errors) == 1


@pytest.mark.parametrize(
    ("step", "fragment"),
    [
        ({"id": "s"}, "$.steps[0] (step 's'): missing required field 'command'"),
        (
            {"id": "s", "command": "true", "uses": "child.json"},
            "$.steps[0].uses (step 's'): a step has either 'command' or 'uses', not both",
        ),
        (
            {"id": "s", "command": "true", "with": {"A": "1"}},
            "$.steps[0].with (step 's'): 'with' is only for a step with 'uses'",
        ),
        (
            {"id": "s", "command": "true", "secrets": ["TOKEN"]},
            "$.steps[0].secrets (step 's'): 'secrets' is only for a step with 'uses'",
        ),
        (
            _uses("child.json", args=["x"]),
            "$.steps[0].args (step 's'): 'args' does not apply to a 'uses' step",
        ),
        (
            _uses("child.json", env={"A": "1"}),
            "$.steps[0].env (step 's'): 'env' does not apply",
        ),
        (
            _uses("child.json", success_exit_codes=[0, 1]),
            "$.steps[0].success_exit_codes (step 's'): 'success_exit_codes' does not apply",
        ),
        (
            _uses("child.json", secrets=["OTHER"]),
            "$.steps[0].secrets[0] (step 's'): 'OTHER' is not a secret of this plan",
        ),
        (
            _uses("child.json", with_={"A": "${TOKEN}"}),
            "$.steps[0].with.A (step 's'): secret 'TOKEN' cannot be passed in 'with'",
        ),
        (
            _uses("${steps.x.outputs.P}"),
            "$.steps[0].uses (step 's'): 'uses' cannot hold ${steps.x.outputs.P}",
        ),
        (_uses("nowhere.json"), "$.steps[0].uses (step 's'): nowhere.json: plan file not found"),
    ],
    ids=[
        "neither",
        "both",
        "with-without-uses",
        "secrets-without-uses",
        "args",
        "env",
        "exit-codes",
        "unknown-secret",
        "secret-in-with",
        "step-ref-in-uses",
        "missing-file",
    ],
)
def test_uses_fields_are_checked_with_a_location(
    tmp_path: Path, step: dict[str, Any], fragment: str
) -> None:
    _child(tmp_path, variables={"A": "a"})
    plan = _write(tmp_path / "p.json", {"plan_id": "p", "secrets": ["TOKEN"], "steps": [step]})
    errors = _messages(plan)
    assert any(fragment in e for e in errors), errors


def test_a_child_secret_must_be_passed(tmp_path: Path) -> None:
    _child(tmp_path, secrets=["TOKEN"])
    plan = _write(
        tmp_path / "p.json",
        {"plan_id": "p", "secrets": ["TOKEN"], "steps": [_uses("child.json")]},
    )
    (error,) = _messages(plan)
    assert "child.json needs secret 'TOKEN', which this step does not pass" in error
    passed = _write(
        tmp_path / "q.json",
        {"plan_id": "q", "secrets": ["TOKEN"], "steps": [_uses("child.json", secrets=["TOKEN"])]},
    )
    assert _messages(passed) == []


def test_uses_takes_variables_relative_to_the_plan(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(
        tmp_path / "sub" / "child.json", {"plan_id": "c", "steps": [{"id": "a", "command": "true"}]}
    )
    plan = _write(
        tmp_path / "p.json",
        {"plan_id": "p", "variables": {"DIR": "sub"}, "steps": [_uses("${DIR}/child.json")]},
    )
    assert _messages(plan) == []
    assert _messages(plan, variables={"DIR": "elsewhere"})[0].endswith("check the path")


@pytest.mark.parametrize(
    ("parent", "step", "attempt", "expected"),
    [
        ("p1", "restore", 1, "p1.restore.1"),
        ("20261124T101502123Z-3f9a2c", "sub", 3, "20261124T101502123Z-3f9a2c.sub.3"),
    ],
)
def test_child_run_ids_are_readable(parent: str, step: str, attempt: int, expected: str) -> None:
    assert child_run_id(parent, step, attempt) == expected


def test_child_run_ids_of_instances_are_valid_and_distinct() -> None:
    """Instance ids hold characters a run id cannot: they are replaced, and a hash
    keeps ``a[x]`` and ``a_x_`` apart; a long id is cut to 128 characters."""
    ids = {child_run_id("p", s, 1) for s in ("a[x]", "a_x_", "a[x=1,y=2]", "a[0:doc-17]")}
    assert len(ids) == 4
    pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
    long = child_run_id("r" * 120, "step" * 30, 12)
    assert len(long) <= 128
    assert long.endswith(".12")
    for run_id in {*ids, long}:
        assert re.fullmatch(pattern, run_id), run_id
