"""Static matrices: expansion (include/exclude as in GitHub Actions), stable ids,
dependencies on every instance, ``${matrix.K}`` values per instance, and the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planrun.model import Plan, base_id
from planrun.plan import resolve_steps, validate
from planrun.plan.expand import MAX_INSTANCES, combinations, expand, matrix_values
from planrun.prepare import check_plan, prepare


def plan_of(*steps: dict[str, Any], **top: Any) -> Plan:
    result = validate({"plan_id": "m", "steps": list(steps), **top})
    assert result.ok, result.problems
    assert result.plan is not None
    return result.plan


def test_product_in_axis_order_first_axis_slowest() -> None:
    combos = combinations({"python": ["3.11", 3.12], "db": ["pg", "sqlite"]})
    assert combos == [
        {"python": "3.11", "db": "pg"},
        {"python": "3.11", "db": "sqlite"},
        {"python": "3.12", "db": "pg"},
        {"python": "3.12", "db": "sqlite"},
    ]


def test_exclude_drops_every_combination_matching_all_its_keys() -> None:
    matrix = {
        "os": ["linux", "mac"],
        "python": ["3.11", "3.12"],
        "exclude": [{"os": "mac", "python": "3.11"}, {"python": "3.13"}],
    }
    assert combinations(matrix) == [
        {"os": "linux", "python": "3.11"},
        {"os": "linux", "python": "3.12"},
        {"os": "mac", "python": "3.12"},
    ]


def test_partial_exclude_drops_a_whole_row() -> None:
    matrix = {"os": ["linux", "mac"], "python": ["3.11", "3.12"], "exclude": [{"os": "mac"}]}
    assert [c["os"] for c in combinations(matrix)] == ["linux", "linux"]


def test_include_extends_matching_combinations_or_adds_its_own() -> None:
    """GitHub's rules: an include object's extra keys are added to every combination
    its axis keys match (never overwriting an axis value); one that matches none (or
    would overwrite one) is a combination of its own; added keys may be overwritten."""
    matrix = {
        "fruit": ["apple", "pear"],
        "animal": ["cat", "dog"],
        "include": [
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    }
    assert combinations(matrix) == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_expansion_ids_deps_and_values() -> None:
    plan = plan_of(
        {"id": "build", "command": "true"},
        {
            "id": "test",
            "name": "Tests",
            "command": "echo",
            "args": ["${matrix.python}/${matrix.db}"],
            "depends_on": ["build"],
            "matrix": {"python": ["3.11", 3.12], "db": ["pg"], "include": [{"python": "3.13"}]},
        },
        {"id": "report", "command": "true", "depends_on": ["test", "build"]},
    )
    expanded = expand(plan)
    ids = [s.id for s in expanded.steps]
    assert ids == [
        "build",
        "test[python=3.11,db=pg]",
        "test[python=3.12,db=pg]",
        "test[python=3.13]",
        "report",
    ]
    instances = expanded.steps[1:4]
    assert {base_id(s.id) for s in instances} == {"test"}
    # The matrix step's own depends_on is kept on every instance.
    assert all(s.depends_on == ["build"] for s in instances)
    # A dependency on the matrix step means all of its instances.
    assert expanded.steps[4].depends_on == [*ids[1:4], "build"]
    assert instances[0].display_name == "Tests [python=3.11,db=pg]"
    assert matrix_values(instances[2]) == {"matrix.python": "3.13"}
    # Expanding twice changes nothing; the plan as written is untouched.
    assert expand(expanded) == expanded
    assert [s.id for s in plan.steps] == ["build", "test", "report"]


def test_ids_are_stable_and_values_slugged() -> None:
    plan = plan_of(
        {
            "id": "t",
            "command": "echo",
            "matrix": {"node": ["lts/*", "a b", True, 1.5], "x": ["y" * 40]},
        }
    )
    first = [s.id for s in expand(plan).steps]
    assert first == [
        f"t[node=lts__,x={'y' * 32}]",
        f"t[node=a_b,x={'y' * 32}]",
        f"t[node=true,x={'y' * 32}]",
        f"t[node=1.5,x={'y' * 32}]",
    ]
    assert [s.id for s in expand(plan).steps] == first


def test_resolve_gives_each_instance_its_values_never_in_the_environment(tmp_path: Path) -> None:
    plan = plan_of(
        {
            "id": "t",
            "command": "echo",
            "args": ["${matrix.py}", "${V}"],
            "env": {"PY": "v${matrix.py}"},
            "cwd": "w-${matrix.py}",
            "matrix": {"py": ["3.11", "3.12"]},
            "if": "matrix.py == '3.12' && vars.V == 'x'",
        },
        variables={"V": "x"},
    )
    steps = resolve_steps(plan, {"V": "x"}, tmp_path)
    assert [rs.argv for rs in steps] == [("echo", "3.11", "x"), ("echo", "3.12", "x")]
    assert [rs.env["PY"] for rs in steps] == ["v3.11", "v3.12"]
    assert [rs.cwd for rs in steps] == [str(tmp_path / "w-3.11"), str(tmp_path / "w-3.12")]
    assert not any(k.startswith("matrix") for rs in steps for k in rs.env)
    assert [rs.index for rs in steps] == [0, 1]
    conditions = [rs.condition for rs in steps]
    assert all(c is not None for c in conditions)
    assert [c.holds(lambda *_: None) for c in conditions if c is not None] == [False, True]


def test_prepare_stores_the_plan_as_written(tmp_path: Path) -> None:
    data = {
        "plan_id": "m",
        "steps": [{"id": "t", "command": "echo", "matrix": {"a": [1, 2]}}],
    }
    prepared = prepare(data)
    assert [s.id for s in prepared.plan.steps] == ["t[a=1]", "t[a=2]"]
    assert [rs.step.id for rs in prepared.steps] == ["t[a=1]", "t[a=2]"]
    assert '"id":"t"' in prepared.plan_json()
    assert "t[a=1]" not in prepared.plan_json()
    assert [s.id for s in check_plan(data).plan.steps] == ["t[a=1]", "t[a=2]"]  # type: ignore[union-attr]


def _problems(*steps: dict[str, Any], **top: Any) -> list[tuple[str, str, str | None]]:
    result = validate({"plan_id": "m", "steps": list(steps), **top})
    return [(p.path, p.message, p.hint) for p in result.errors]


@pytest.mark.parametrize(
    ("matrix", "path", "fragment"),
    [
        ({}, "$.steps[0].matrix", "has no axes"),
        ({"exclude": [{"a": 1}]}, "$.steps[0].matrix", "has no axes"),
        ({"a": []}, "$.steps[0].matrix.a", "axis 'a' has no values"),
        ({"a": [[1]]}, "$.steps[0].matrix.a[0]", "got an array"),
        ({"a": [1, None]}, "$.steps[0].matrix.a[1]", "got null"),
        ({"a": [{"x": 1}]}, "$.steps[0].matrix.a[0]", "got an object"),
        ({"a-b": [1]}, "$.steps[0].matrix.a-b", "invalid axis name"),
        ({"a": [1], "exclude": [{"b": 1}]}, "$.steps[0].matrix.exclude[0].b", "not an axis"),
        ({"a": [1], "exclude": [3]}, "$.steps[0].matrix.exclude[0]", "non-empty object"),
        ({"a": [1], "include": [{}]}, "$.steps[0].matrix.include[0]", "non-empty object"),
        ({"a": [1], "include": [{"b": [1]}]}, "$.steps[0].matrix.include[0].b", "got an array"),
        ({"a": [1, "1"]}, "$.steps[0].matrix", "the same id 't[a=1]'"),
        ({"a": ["x/y", "x_y"]}, "$.steps[0].matrix", "the same id 't[a=x_y]'"),
        ({"a": [1], "exclude": [{"a": 1}]}, "$.steps[0].matrix", "expands to no instance"),
        ({"a": list(range(17)), "b": list(range(16))}, "$.steps[0].matrix", "272 instances"),
        ({"a": list(range(300)), "b": list(range(300))}, "$.steps[0].matrix", "90,000 instances"),
    ],
)
def test_bad_matrices_are_located(matrix: dict[str, Any], path: str, fragment: str) -> None:
    problems = _problems({"id": "t", "command": "echo", "matrix": matrix})
    assert any(p == path and fragment in m for p, m, _ in problems), problems


def test_the_cap_is_exactly_max_instances() -> None:
    assert MAX_INSTANCES == 256
    ok = {"a": list(range(16)), "b": list(range(16))}
    assert _problems({"id": "t", "command": "echo", "matrix": ok}) == []


@pytest.mark.parametrize(
    ("step", "path", "fragment", "hint"),
    [
        (
            {"id": "t", "command": "echo", "args": ["${matrix.a}"]},
            "$.steps[0].args[0]",
            "'${matrix.a}' is used outside a matrix step",
            "matrix",
        ),
        (
            {
                "id": "t",
                "command": "echo",
                "env": {"X": "${matrix.pyhton}"},
                "matrix": {"python": [1]},
            },
            "$.steps[0].env.X",
            "'pyhton' is not an axis",
            "did you mean '${matrix.python}'?",
        ),
        (
            {"id": "t", "command": "echo", "args": ["${item.x}"]},
            "$.steps[0].args[0]",
            "is used in a step without 'for_each'",
            "for_each",
        ),
    ],
)
def test_matrix_names_are_checked(
    step: dict[str, Any], path: str, fragment: str, hint: str
) -> None:
    problems = _problems(step)
    assert any(p == path and fragment in m and h and hint in h for p, m, h in problems), problems


def test_matrix_name_in_globals_is_an_error_and_include_keys_are_names() -> None:
    problems = _problems(
        {
            "id": "t",
            "command": "echo",
            "args": ["${matrix.extra}"],
            "matrix": {"a": [1], "include": [{"a": 1, "extra": "x"}]},
        },
        globals={"env": {"G": "${matrix.a}"}},
    )
    assert [(p, m) for p, m, _ in problems] == [
        ("$.globals.env.G", "'${matrix.a}' is used outside a matrix step")
    ]


def test_a_matrix_step_has_no_single_value_for_others() -> None:
    problems = _problems(
        {"id": "t", "command": "echo", "matrix": {"a": [1, 2]}},
        {"id": "u", "command": "echo", "args": ["${steps.t.exit_code}"], "depends_on": ["t"]},
    )
    assert [(p, "several instances" in m) for p, m, _ in problems] == [("$.steps[1].args[0]", True)]
