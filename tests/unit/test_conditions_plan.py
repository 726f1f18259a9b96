"""``if`` in a plan: where its problems are reported, and which names it may use."""

from __future__ import annotations

from typing import Any

from planrun.plan import validate


def _errors(
    steps: list[dict[str, Any]], given: dict[str, str] | None = None, **top: Any
) -> list[tuple[str, str | None, str, str | None]]:
    result = validate({"plan_id": "c", "steps": steps, **top}, given)
    return [(p.path, p.step_id, p.message, p.hint) for p in result.errors]


def test_problems_are_located_with_step_column_and_hint() -> None:
    errors = _errors(
        [
            {"id": "a", "command": "true"},
            {"id": "b", "command": "true", "depends_on": ["a"]},
            {
                "id": "c",
                "command": "true",
                "depends_on": ["b"],
                "if": "steps.a.state == 'x' && vars.REGON",
            },
        ],
        variables={"REGION": "eu"},
    )
    assert errors == [
        ("$.steps[2].if", "c", "column 25: unknown variable 'REGON'", "did you mean 'vars.REGION'?")
    ]  # steps.a is an ancestor through b


def test_a_variable_given_for_a_condition_only_is_not_undeclared() -> None:
    steps = [{"id": "a", "command": "true", "if": "vars.MODE == 'x'"}]
    assert _errors(steps, {"MODE": "x"}) == []
    assert [e[2] for e in _errors(steps)] == ["column 1: unknown variable 'MODE'"]
    assert [e[2] for e in _errors(steps, {"MODEL": "x"})] == [
        "variable 'MODEL' is not declared in the plan",
        "column 1: unknown variable 'MODE'",
    ]


def test_builtins_and_secrets_are_variables_and_item_needs_for_each() -> None:
    steps = [{"id": "a", "command": "true", "if": "vars.PLAN_DIR != '' && vars.TOKEN != ''"}]
    assert _errors(steps, secrets=["TOKEN"]) == []
    uses_item: list[dict[str, Any]] = [
        {"id": "a", "command": "echo", "args": ["${item}"], "if": "item == 'x'"}
    ]
    assert [e[2] for e in _errors(uses_item)] == [
        "'${item}' is used in a step without 'for_each'",
        "column 1: 'item' outside a for_each step",
    ]


def test_a_for_each_step_has_a_state_but_no_outputs_in_a_condition() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "list", "command": "true"},
        {
            "id": "fan",
            "command": "echo",
            "for_each": "${steps.list.outputs.ITEMS}",
            "depends_on": ["list"],
            "if": "item != 'skip-me'",
        },
        {
            "id": "after",
            "command": "true",
            "depends_on": ["fan"],
            "if": "steps.fan.state == 'succeeded' && steps.fan.outputs.x",
        },
    ]
    assert [(e[0], e[2]) for e in _errors(steps)] == [
        (
            "$.steps[2].if",
            "column 35: 'steps.fan.outputs.x': step 'fan' is a for_each step, whose "
            "instances have the outputs, not the step",
        )
    ]
