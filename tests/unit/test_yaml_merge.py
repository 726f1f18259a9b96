"""YAML anchors with merge keys, and top-level ``x-*`` extension fields."""

from __future__ import annotations

import json
from typing import Any

import pytest

from planrun.errors import PlanError
from planrun.plan import parse_document, validate

TEMPLATED = """\
plan_id: anchors
x-cell: &cell
  command: echo
  timeout_sec: 5
  args: [from-cell]
x-retry: &retry
  retries: 2
  command: printf
steps:
  - <<: *cell
    id: a
  - <<: [*retry, *cell]
    id: b
    args: [own]
  - id: c
    <<: *cell
    command: "true"
"""


def test_merge_keys_are_no_duplicates_and_own_keys_win() -> None:
    doc = parse_document(TEMPLATED, ".yaml")
    result = validate(doc)
    assert result.ok, result.problems
    assert result.plan is not None
    a, b, c = result.plan.steps
    assert (a.command, a.args, a.timeout_sec, a.retries) == ("echo", ["from-cell"], 5, 0)
    # Of merged sources the first listed wins (*retry's command), own keys win over all.
    assert (b.command, b.args, b.timeout_sec, b.retries) == ("printf", ["own"], 5, 2)
    # An own key overrides a merged one wherever the '<<' is written.
    assert (c.command, c.args) == ("true", ["from-cell"])


def test_a_true_duplicate_key_is_still_reported() -> None:
    text = "plan_id: d\nx-c: &c\n  command: echo\nsteps:\n  - <<: *c\n    id: a\n    id: b\n"
    result = validate(parse_document(text, ".yaml"))
    assert [(p.path, p.message) for p in result.errors] == [
        ("$.steps[0].id", "key 'id' appears more than once")
    ]


def test_merging_a_scalar_is_a_located_syntax_error() -> None:
    with pytest.raises(PlanError) as info:
        parse_document("plan_id: p\nsteps:\n  - <<: 3\n    id: a\n", ".yaml")
    (problem,) = info.value.problems
    assert problem.path == "3:9"
    assert "merges a mapping or a list of mappings" in problem.message


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        (
            json.dumps(
                {
                    "plan_id": "x",
                    "x-notes": {"any": ["thing"]},
                    "steps": [{"id": "a", "command": "true"}],
                }
            ),
            ".json",
        ),
        ('plan_id = "x"\n"x-notes" = 1\n[[steps]]\nid = "a"\ncommand = "true"\n', ".toml"),
        ("plan_id: x\nx-notes: [1, 2]\nsteps: [{id: a, command: 'true'}]\n", ".yaml"),
    ],
)
def test_top_level_x_keys_are_ignored_in_every_format(text: str, suffix: str) -> None:
    result = validate(parse_document(text, suffix))
    assert result.ok, result.problems


@pytest.mark.parametrize(
    "doc",
    [
        {"plan_id": "x", "xnotes": 1, "steps": [{"id": "a", "command": "true"}]},
        {"plan_id": "x", "steps": [{"id": "a", "command": "true", "x-notes": 1}]},
    ],
)
def test_other_unknown_keys_stay_errors(doc: dict[str, Any]) -> None:
    assert not validate(doc).ok
