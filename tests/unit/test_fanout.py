"""for_each, the pure parts: parsing items, their text, slugs and instance ids, the
validation rules, the reducer and the resume decisions for instances."""

from __future__ import annotations

from typing import Any

import pytest

from planrun import fanout
from planrun.events import RunStarted, StepFinished, StepInfo, StepsExpanded
from planrun.model import Plan, Step, StepState, base_id
from planrun.plan import validate
from planrun.resume import Action, Choice, PriorStep
from planrun.resume.instances import base_of, instance_choices
from planrun.state import replay

# --- items -------------------------------------------------------------------------


def test_parse_items_accepts_a_json_array() -> None:
    """A JSON array of anything is the items, in order."""
    assert fanout.parse_items('["a", 1, {"k": null}]', "x", 10) == ["a", 1, {"k": None}]
    assert fanout.parse_items("[]", "x", 10) == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"a": 1}', "is an object, not a JSON array"),
        ('"a"', "is a string, not a JSON array"),
        ("3", "is a number, not a JSON array"),
        ("null", "is null, not a JSON array"),
        ("true", "is a boolean, not a JSON array"),
        ("[1, 2", "is not valid JSON"),
        ("", "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
    ],
)
def test_parse_items_refuses_what_is_not_an_array(text: str, says: str) -> None:
    """Not JSON, or JSON that is not an array: the error names the source and says why."""
    with pytest.raises(fanout.FanoutError) as caught:
        fanout.parse_items(text, "output 'ITEMS' of step 'list'", 10)
    assert str(caught.value).startswith("for_each: output 'ITEMS' of step 'list' ")
    assert says in str(caught.value)


def test_max_items_is_inclusive() -> None:
    """Exactly max_items items pass; one more fails, with both numbers."""
    assert len(fanout.parse_items("[1,2,3]", "x", 3)) == 3
    with pytest.raises(fanout.FanoutError, match=r"has 4 items, more than max_items \(3\)"):
        fanout.parse_items("[1,2,3,4]", "x", 3)


@pytest.mark.parametrize(
    ("item", "text"),
    [
        ("plain", "plain"),
        ("with ${X} and $", "with ${X} and $"),
        (17, "17"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ({"b": 1, "a": [1, "x"]}, '{"b":1,"a":[1,"x"]}'),
        (["x", 2], '["x",2]'),
    ],
)
def test_item_text(item: Any, text: str) -> None:
    """A string item is itself (never re-expanded); anything else is compact JSON."""
    assert fanout.item_text(item) == text


def test_item_values_of_an_object_give_each_key() -> None:
    """``item`` is the whole item; ``item.KEY`` each key's text."""
    assert fanout.item_values({"id": "d1", "n": 2, "tags": ["a"]}) == {
        "item": '{"id":"d1","n":2,"tags":["a"]}',
        "item.id": "d1",
        "item.n": "2",
        "item.tags": '["a"]',
    }
    assert fanout.item_values("x") == {"item": "x"}


# --- slugs and ids -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "short"),
    [
        ("doc-17", "doc-17"),
        ("a b/c", "a-b-c"),
        ("../../etc/passwd", "..-..-etc-passwd"),
        ("  spaced  ", "spaced"),
        ("ünïcode", "n-code"),
        ("x" * 40, "x" * 24),
        ("a" * 23 + " b", "a" * 23),
        ("[]:,", ""),
        ("", ""),
        (17, "17"),
        ({"id": "doc-17", "size": 3}, "doc-17"),
        ({"tags": ["a"], "n": 4}, "4"),
        ([1, 2], "1-2"),
    ],
)
def test_slug(item: Any, short: str) -> None:
    """Only ``[A-Za-z0-9._-]``, at most 24 characters, no leading or trailing ``-``."""
    assert fanout.slug(item) == short


def test_ids_are_unique_even_when_slugs_collide() -> None:
    """Two items with the same slug (or none) still get distinct ids: the index."""
    ids = fanout.instance_ids("p", ["a b", "a/b", "a b", "", "%%"])
    assert ids == ["p[0:a-b]", "p[1:a-b]", "p[2:a-b]", "p[3]", "p[4]"]
    assert len(set(ids)) == len(ids)
    assert all(base_id(i) == "p" for i in ids)


def test_an_item_holding_a_secret_is_known_by_its_index() -> None:
    """Ids are stored and shown in clear: an item whose text holds a secret gets none."""
    ids = fanout.instance_ids("p", ["tok-1234", "ok"], lambda text: "1234" in text)
    assert ids == ["p[0]", "p[1:ok]"]


def test_ids_are_stable() -> None:
    """The same items give the same ids, whatever else (a resume relies on it)."""
    items = ["x", {"id": 3}, [1]]
    assert fanout.instance_ids("s", items) == fanout.instance_ids("s", list(items))
    assert fanout.instance_ids("s", items) == ["s[0:x]", "s[1:3]", "s[2:1]"]


def test_many_ids_are_unique() -> None:
    """10,000 items that all slug the same: 10,000 ids."""
    ids = fanout.instance_ids("s", ["same"] * 10_000)
    assert len(set(ids)) == 10_000


def test_item_names_of_a_step() -> None:
    """The item names a step uses, once each, in order."""
    step = Step(
        id="s",
        command="echo",
        args=["${item}", "${item.a}", "${X}", "${item.a}"],
        env={"E": "${item.b-c}"},
        for_each="${steps.l.outputs.I}",
    )
    assert fanout.item_names(step) == ["item", "item.a", "item.b-c"]


# --- validation ----------------------------------------------------------------------


def _problems(steps: list[dict[str, Any]], **extra: Any) -> list[str]:
    result = validate({"plan_id": "p", "steps": steps, **extra}, require_values=False)
    return [f"{p.path}: {p.message}" for p in result.errors]


LIST = {"id": "list", "command": "true"}


def test_a_valid_for_each_plan() -> None:
    """for_each naming an ancestor's output, ${item} and ${item.KEY} in its fields."""
    step = {
        "id": "p",
        "command": "echo",
        "args": ["${item}", "${item.id}"],
        "env": {"X": "${item.x}"},
        "depends_on": ["list"],
        "for_each": "${steps.list.outputs.ITEMS}",
    }
    assert _problems([LIST, step]) == []


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (
            {"id": "p", "command": "echo", "args": ["${item}"]},
            "$.steps[1].args[0]: '${item}' is used in a step without 'for_each'",
        ),
        (
            {"id": "p", "command": "echo", "args": ["${item.k}"]},
            "$.steps[1].args[0]: '${item.k}' is used in a step without 'for_each'",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "${steps.list.outputs.I}"},
            "$.steps[1].for_each: '${steps.list.outputs.I}': step 'list' is not an ancestor",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "${steps.nope.outputs.I}"},
            "$.steps[1].for_each: '${steps.nope.outputs.I}' names an unknown step 'nope'",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "${item}"},
            "$.steps[1].for_each: 'for_each' cannot use '${item}'",
        ),
        (
            {"id": "p", "command": "echo", "for_each": '["a", '},
            "$.steps[1].for_each: for_each: the value is not valid JSON",
        ),
        (
            {"id": "p", "command": "echo", "for_each": '{"a": 1}'},
            "$.steps[1].for_each: for_each: the value is an object, not a JSON array",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "[1, 2, 3]", "max_items": 2},
            "$.steps[1].for_each: for_each: the value has 3 items, more than max_items (2)",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "[1]", "matrix": {"a": [1]}},
            "$.steps[1].for_each: a step takes 'for_each' or 'matrix', not both",
        ),
        (
            {"id": "p", "command": "echo", "for_each": "${UNDEFINED}"},
            "$.steps[1].for_each: variable 'UNDEFINED' is not defined",
        ),
    ],
)
def test_invalid_for_each_plans(step: dict[str, Any], expected: str) -> None:
    """Each misuse is an error located at the field, in the step's words."""
    problems = _problems([LIST, step])
    assert any(p.startswith(expected) for p in problems), problems


def test_item_outside_for_each_is_a_variable_if_declared() -> None:
    """``${item}`` in a plain step is a variable named item when the plan declares one."""
    step = {"id": "p", "command": "echo", "args": ["${item}"]}
    assert _problems([step], variables={"item": "x"}) == []


def test_outputs_of_a_for_each_step_cannot_be_used() -> None:
    """A later step cannot read outputs of the for_each step itself (its instances
    write them)."""
    group = {"id": "p", "command": "true", "for_each": "[1]"}
    user = {"id": "u", "command": "echo", "args": ["${steps.p.outputs.X}"], "depends_on": ["p"]}
    problems = _problems([group, user])
    assert any("step 'p' is a for_each step" in p for p in problems), problems


def test_a_variable_for_each_is_checked_with_its_value() -> None:
    """A for_each from a variable is known before the run: checked with the value given."""
    step = {"id": "p", "command": "echo", "for_each": "${ITEMS}"}
    plan = {"plan_id": "p", "variables": {"ITEMS": None}, "steps": [step]}
    assert validate(plan, require_values=False).errors == ()
    bad = validate(plan, {"ITEMS": "nope"})
    [problem] = bad.errors
    assert (problem.path, problem.step_id) == ("$.steps[0].for_each", "p")
    assert problem.message.startswith("for_each: variable 'ITEMS' is not valid JSON")
    assert problem.message.endswith('\'nope\'; write a JSON array such as ["a", "b"]')
    assert validate(plan, {"ITEMS": '["a"]'}).ok


# --- the reducer -----------------------------------------------------------------------


def _base(seq: int) -> dict[str, Any]:
    return {"run_id": "r", "seq": seq, "ts": f"2026-01-01T00:00:{seq:02d}.000000Z"}


def test_the_reducer_adds_instances_after_their_step() -> None:
    """steps_expanded: the step runs, its instances follow it (pending), in order."""
    infos = [StepInfo("a", "a", [], 0, True), StepInfo("p", "p", ["a"], 0, True)]
    infos.append(StepInfo("z", "z", ["p"], 0, True))
    start = RunStarted(
        **_base(1),
        plan_id="x",
        plan_path=None,
        variables={},
        max_concurrency=1,
        steps=infos,
        pid=1,
    )
    made = [StepInfo(f"p[{i}:{c}]", f"p[{i}:{c}]", ["a"], 1, True) for i, c in enumerate("xy")]
    expanded = StepsExpanded(**_base(2), step_id="p", items=["x", "y"], steps=made)
    done = StepFinished(**_base(3), step_id="p[1:y]", state=StepState.SUCCEEDED, attempts=1)
    view = replay([start, expanded, done])
    assert view is not None
    assert list(view.steps) == ["a", "p", "p[0:x]", "p[1:y]", "z"]
    assert view.steps["p"].state is StepState.RUNNING
    assert view.steps["p[0:x]"].state is StepState.PENDING
    assert view.steps["p[0:x]"].max_attempts == 2
    assert view.counts[StepState.PENDING] == 3
    assert view.counts[StepState.SUCCEEDED] == 1


# --- resume decisions --------------------------------------------------------------------


def _fanout_plan() -> Plan:
    return Plan(
        plan_id="p",
        steps=[
            Step(id="list", command="true"),
            Step(id="p", command="true", depends_on=["list"], for_each="${x}"),
            Step(id="after", command="true", depends_on=["p"]),
        ],
    )


PRIOR = {
    "list": PriorStep(StepState.SUCCEEDED, 1),
    "p": PriorStep(StepState.FAILED, 0, reason="1 of 3 instances failed"),
    "p[0:a]": PriorStep(StepState.SUCCEEDED, 1),
    "p[1:b]": PriorStep(StepState.FAILED, 1, reason="exit code 1"),
    "p[2:c]": PriorStep(StepState.CANCELLED, 0),
    "after": PriorStep(StepState.CANCELLED, 0),
}


def _decide(group: Action, list_action: Action = Action.REUSE, **flags: str) -> dict[str, Action]:
    choices = [
        Choice("list", list_action, ""),
        Choice("p", group, ""),
        Choice("after", Action.RERUN, ""),
    ]
    out = instance_choices(_fanout_plan(), choices, PRIOR, **flags)
    return {c.step_id: c.action for c in out}


def test_resume_reuses_succeeded_instances_and_reruns_the_rest() -> None:
    """Default: the succeeded instance is reused, the failed and cancelled ones rerun;
    the instances follow their step, in the order they were made."""
    decided = _decide(Action.RERUN)
    assert list(decided) == ["list", "p", "p[0:a]", "p[1:b]", "p[2:c]", "after"]
    assert decided["p[0:a]"] is Action.REUSE
    assert decided["p[1:b]"] is Action.RERUN
    assert decided["p[2:c]"] is Action.RERUN


def test_resume_reruns_every_instance_when_the_producer_reruns() -> None:
    """The producer reruns: new items may come, so every instance reruns."""
    decided = _decide(Action.RERUN, Action.RERUN)
    assert [decided[f"p[{i}]"] for i in ("0:a", "1:b", "2:c")] == [Action.RERUN] * 3


def test_resume_from_or_only_an_instance() -> None:
    """--from/--only STEP reruns every instance; --only INSTANCE just that one, the
    others keep their result (a failed one stays failed)."""
    assert set(_decide(Action.RERUN, from_step="p").values()) == {Action.REUSE, Action.RERUN}
    assert _decide(Action.RERUN, from_step="p")["p[0:a]"] is Action.RERUN
    only = _decide(Action.RERUN, only="p[2:c]")
    assert only["p[2:c]"] is Action.RERUN
    assert only["p[0:a]"] is Action.REUSE
    assert only["p[1:b]"] is Action.KEEP


def test_base_of_an_instance_flag() -> None:
    """An instance id given to --from/--only maps to its step; an unknown one is refused."""
    assert base_of("--only", "p[1:b]", PRIOR) == "p"
    assert base_of("--only", "after", PRIOR) == "after"
    assert base_of("--only", None, PRIOR) is None
    with pytest.raises(Exception, match="made no such instance"):
        base_of("--only", "p[7:q]", PRIOR)
