"""Resume decisions: which steps a resume reuses, reruns or keeps, and why; what changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pytest

from planrun.errors import UsageError
from planrun.model import Plan, Step, StepState
from planrun.resume import Action, Choice, PriorStep, choose, plan_changes, variable_changes
from planrun.subst import StepRef

OK = PriorStep(StepState.SUCCEEDED, attempts=1, exit_code=0)
FAILED = PriorStep(StepState.FAILED, attempts=2, exit_code=1, reason="exit code 1")
SKIPPED = PriorStep(StepState.SKIPPED, reason="dependency 'b' failed")
PENDING = PriorStep(StepState.PENDING)


def _plan(*steps: tuple[str, Sequence[str]] | str, **fields: Any) -> Plan:
    """A plan of ``echo`` steps: ``"id"`` or ``("id", [deps...])``."""
    raw = []
    for step in steps:
        sid, deps = (step, ()) if isinstance(step, str) else step
        raw.append({"id": sid, "command": "echo", "depends_on": list(deps)})
    return msgspec.convert({"plan_id": "p", "steps": raw, **fields}, Plan)


def _actions(choices: list[Choice]) -> dict[str, Action]:
    return {c.step_id: c.action for c in choices}


def _why(choices: list[Choice]) -> dict[str, str]:
    return {c.step_id: c.why for c in choices}


def _rerun(choices: list[Choice]) -> list[str]:
    return [c.step_id for c in choices if c.action is Action.RERUN]


def _choose(
    plan: Plan,
    prior: Mapping[str, PriorStep],
    refs: Mapping[str, Sequence[StepRef]] | None = None,
    **flags: str,
) -> list[Choice]:
    return choose(plan, prior, refs or {}, **flags)


# a -> b -> c (c depends on b, b on a); d alone
CHAIN = _plan("a", ("b", ["a"]), ("c", ["b"]), "d")


# --- default ------------------------------------------------------------------------


def test_everything_succeeded_reruns_nothing() -> None:
    """When every step succeeded, a resume reuses them all."""
    choices = _choose(CHAIN, dict.fromkeys("abcd", OK))
    assert _actions(choices) == dict.fromkeys("abcd", Action.REUSE)
    assert _why(choices)["a"] == "succeeded (attempt 1)"


def test_choices_follow_plan_order() -> None:
    """One choice per step, in plan order."""
    plan = _plan("z", "a", ("m", ["z"]))
    choices = _choose(plan, {})
    assert [c.step_id for c in choices] == ["z", "a", "m"]


def test_default_reruns_failed_steps_and_downstream() -> None:
    """A failed step reruns with everything downstream of it; the rest is reused."""
    prior = {"a": OK, "b": FAILED, "c": SKIPPED, "d": OK}
    choices = _choose(CHAIN, prior)
    assert _actions(choices) == {
        "a": Action.REUSE,
        "b": Action.RERUN,
        "c": Action.RERUN,
        "d": Action.REUSE,
    }
    assert _why(choices) == {
        "a": "succeeded (attempt 1)",
        "b": "failed: exit code 1",
        "c": "skipped: dependency 'b' failed",
        "d": "succeeded (attempt 1)",
    }


def test_succeeded_step_downstream_of_a_rerun_reruns_too() -> None:
    """A step that succeeded but depends on a rerun step reruns, naming that step."""
    prior = {"a": FAILED, "b": OK, "c": OK, "d": OK}
    choices = _choose(CHAIN, prior)
    assert _rerun(choices) == ["a", "b", "c"]
    assert _why(choices)["b"] == "depends on 'a', which reruns (was succeeded)"
    assert _why(choices)["c"] == "depends on 'b', which reruns (was succeeded)"


def test_never_started_step_reruns() -> None:
    """A step still pending (never started) reruns: 'never started'."""
    choices = _choose(CHAIN, {"a": OK, "b": OK, "c": PENDING, "d": OK})
    assert _rerun(choices) == ["c"]
    assert _why(choices)["c"] == "never started"


def test_new_step_reruns_with_its_downstream() -> None:
    """A step not in the earlier run reruns, and so does every step below it."""
    plan = _plan("a", "new", ("b", ["a", "new"]), "d")
    choices = _choose(plan, {"a": OK, "b": OK, "d": OK})
    assert _rerun(choices) == ["new", "b"]
    assert _why(choices)["new"] == "new in the plan"
    assert _why(choices)["b"] == "depends on 'new', which reruns (was succeeded)"


def test_downstream_of_new_step_that_is_new_too() -> None:
    """A new step below another new step says its upstream reruns (was new)."""
    plan = _plan("a", ("n1", ["a"]), ("n2", ["n1"]))
    choices = _choose(plan, {"a": FAILED})
    assert _rerun(choices) == ["a", "n1", "n2"]
    assert _why(choices)["n1"] == "new in the plan"


@pytest.mark.parametrize(
    ("prior", "why"),
    [
        pytest.param(PriorStep(StepState.FAILED, reason="exit code 1"), "failed: exit code 1"),
        pytest.param(PriorStep(StepState.FAILED), "failed", id="failed-no-reason"),
        pytest.param(
            PriorStep(StepState.TIMED_OUT, reason="timed out after 5s"),
            "timed_out: timed out after 5s",
            id="timed-out",
        ),
        pytest.param(PriorStep(StepState.CANCELLED), "cancelled", id="cancelled"),
        pytest.param(
            PriorStep(StepState.CRASHED, reason="planrun died"),
            "crashed: planrun died",
            id="crashed",
        ),
        pytest.param(PriorStep(StepState.RUNNING), "running", id="running"),
        pytest.param(PriorStep(StepState.PENDING), "never started", id="pending"),
    ],
)
def test_reason_describes_the_earlier_state(prior: PriorStep, why: str) -> None:
    """The reason a non-succeeded step reruns describes how it ended."""
    (choice,) = _choose(_plan("a"), {"a": prior})
    assert choice == Choice("a", Action.RERUN, why)


def test_succeeded_reason_without_attempts() -> None:
    """A succeeded step with no attempt count reads just 'succeeded'."""
    (choice,) = _choose(_plan("a"), {"a": PriorStep(StepState.SUCCEEDED)})
    assert choice == Choice("a", Action.REUSE, "succeeded")


def test_succeeded_reason_names_the_attempt() -> None:
    """A reused step says which attempt succeeded."""
    (choice,) = _choose(_plan("a"), {"a": PriorStep(StepState.SUCCEEDED, attempts=3)})
    assert choice.why == "succeeded (attempt 3)"


def test_downstream_reason_names_the_first_rerun_dependency() -> None:
    """With several dependencies, the reason names the first one (in depends_on order)
    that reruns."""
    plan = _plan("x", "y", ("z", ["x", "y"]))
    choices = _choose(plan, {"x": OK, "y": FAILED, "z": OK})
    assert _why(choices)["z"] == "depends on 'y', which reruns (was succeeded)"


def test_diamond_reruns_each_step_once() -> None:
    """In a diamond, a failed top reruns everything below it exactly once."""
    plan = _plan("top", ("l", ["top"]), ("r", ["top"]), ("bottom", ["l", "r"]))
    choices = _choose(plan, {"top": FAILED, "l": OK, "r": OK, "bottom": OK})
    assert _rerun(choices) == ["top", "l", "r", "bottom"]


# --- --from -------------------------------------------------------------------------


def test_from_adds_step_and_downstream() -> None:
    """``--from b`` reruns b and everything downstream of it, even if they succeeded."""
    choices = _choose(CHAIN, dict.fromkeys("abcd", OK), from_step="b")
    assert _actions(choices) == {
        "a": Action.REUSE,
        "b": Action.RERUN,
        "c": Action.RERUN,
        "d": Action.REUSE,
    }
    assert _why(choices)["b"] == "--from b"
    assert _why(choices)["c"] == "depends on 'b', which reruns (was succeeded)"


def test_from_keeps_the_default_reruns() -> None:
    """``--from`` adds to the default set: failed steps elsewhere still rerun."""
    choices = _choose(CHAIN, {"a": OK, "b": OK, "c": OK, "d": FAILED}, from_step="c")
    assert _rerun(choices) == ["c", "d"]
    assert _why(choices)["d"] == "failed: exit code 1"


def test_from_a_failed_step_keeps_its_own_reason() -> None:
    """``--from`` a step that failed anyway keeps the failure as its reason."""
    choices = _choose(CHAIN, {"a": OK, "b": FAILED, "c": SKIPPED, "d": OK}, from_step="b")
    assert _why(choices)["b"] == "failed: exit code 1"


def test_from_unknown_step_is_a_usage_error() -> None:
    """``--from`` a step the plan does not have is a usage error naming it."""
    with pytest.raises(UsageError, match=r"^--from zz: no such step in plan 'p'$"):
        _choose(CHAIN, {}, from_step="zz")


# --- --only -------------------------------------------------------------------------


def test_only_reruns_just_that_step() -> None:
    """``--only`` reruns one step; succeeded steps are reused, the others kept."""
    prior = {"a": OK, "b": FAILED, "c": SKIPPED, "d": OK}
    choices = _choose(CHAIN, prior, only="b")
    assert _actions(choices) == {
        "a": Action.REUSE,
        "b": Action.RERUN,
        "c": Action.KEEP,
        "d": Action.REUSE,
    }
    assert _why(choices) == {
        "a": "succeeded (attempt 1)",
        "b": "--only b",
        "c": "left skipped: dependency 'b' failed (--only)",
        "d": "succeeded (attempt 1)",
    }


def test_only_does_not_rerun_downstream() -> None:
    """``--only a`` leaves succeeded steps below a reused (no downstream closure)."""
    choices = _choose(CHAIN, dict.fromkeys("abcd", OK), only="a")
    assert _rerun(choices) == ["a"]
    assert _actions(choices)["b"] is Action.REUSE


def test_only_keeps_a_new_step_as_it_was() -> None:
    """A new step other than ``--only`` is kept, described as new."""
    plan = _plan("a", "n")
    choices = _choose(plan, {"a": FAILED}, only="a")
    assert choices[1] == Choice("n", Action.KEEP, "left new in the plan (--only)")


@pytest.mark.parametrize(
    ("prior", "state"),
    [
        pytest.param({"a": FAILED}, "failed", id="failed"),
        pytest.param({"a": PENDING}, "pending", id="pending"),
        pytest.param({}, "new", id="new"),
    ],
)
def test_only_with_unsucceeded_dependency_is_a_usage_error(
    prior: dict[str, PriorStep], state: str
) -> None:
    """``--only b`` when b's dependency did not succeed says so and suggests --from."""
    with pytest.raises(UsageError) as info:
        _choose(CHAIN, prior, only="b")
    assert str(info.value) == (
        f"--only b: its dependency 'a' did not succeed ({state}); use --from a to rerun both"
    )


def test_only_unknown_step_is_a_usage_error() -> None:
    """``--only`` a step the plan does not have is a usage error naming it."""
    with pytest.raises(UsageError, match=r"^--only zz: no such step in plan 'p'$"):
        _choose(CHAIN, {}, only="zz")


def test_only_needing_a_masked_output_is_a_usage_error() -> None:
    """``--only`` a step that uses an output stored masked cannot run: use --from."""
    prior = {"a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("TOKEN",)), "b": FAILED}
    refs = {"b": [StepRef("a", "TOKEN")]}
    with pytest.raises(UsageError) as info:
        _choose(CHAIN, prior, refs, only="b")
    assert str(info.value) == (
        "--only b: it uses output 'TOKEN' of 'a', which held a secret and was not stored; "
        "use --from a"
    )


def test_only_with_unmasked_output_or_exit_code_of_a_masked_producer_is_fine() -> None:
    """Another output, or the exit code, of a producer with masked outputs is usable."""
    prior = {"a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("TOKEN",)), "b": FAILED}
    refs = {"b": [StepRef("a", "SHA"), StepRef("a")]}
    assert _rerun(_choose(CHAIN, prior, refs, only="b")) == ["b"]


# --- masked outputs -----------------------------------------------------------------


def test_reused_producer_of_a_masked_output_reruns() -> None:
    """A reused step whose output held a secret reruns when a rerun step needs it."""
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("TOKEN",)),
        "b": OK,
        "c": FAILED,
        "d": OK,
    }
    refs = {"c": [StepRef("a", "TOKEN")]}
    choices = _choose(CHAIN, prior, refs)
    assert _rerun(choices) == ["a", "b", "c"]
    assert _why(choices)["a"] == (
        "its output 'TOKEN' held a secret, so it was not stored, and 'c' needs it"
    )
    assert _why(choices)["b"] == "depends on 'a', which reruns (was succeeded)"
    assert _why(choices)["c"] == "failed: exit code 1"


def test_unmasked_outputs_and_exit_codes_are_reused() -> None:
    """Other outputs and exit codes of a producer with a masked output are reused."""
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, outputs={"SHA": "1"}, masked_outputs=("TOKEN",)),
        "b": OK,
        "c": FAILED,
        "d": OK,
    }
    refs = {"c": [StepRef("a", "SHA"), StepRef("a"), StepRef("b", "TOKEN")]}
    assert _rerun(_choose(CHAIN, prior, refs)) == ["c"]


def test_masked_output_needed_only_by_reused_steps_does_not_rerun() -> None:
    """A masked output used only by a reused step changes nothing."""
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("TOKEN",)),
        "b": OK,
        "c": OK,
        "d": FAILED,
    }
    refs = {"b": [StepRef("a", "TOKEN")]}
    assert _rerun(_choose(CHAIN, prior, refs)) == ["d"]


def test_masked_outputs_rerun_transitively() -> None:
    """A producer rerun for its masked output reruns its own masked producers too."""
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("K1",)),
        "b": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("K2",)),
        "c": FAILED,
        "d": OK,
    }
    refs = {"b": [StepRef("a", "K1")], "c": [StepRef("b", "K2")]}
    choices = _choose(CHAIN, prior, refs)
    assert _rerun(choices) == ["a", "b", "c"]
    assert _why(choices)["a"] == (
        "its output 'K1' held a secret, so it was not stored, and 'b' needs it"
    )
    assert _why(choices)["b"] == (
        "its output 'K2' held a secret, so it was not stored, and 'c' needs it"
    )


def test_masked_output_rerun_with_from() -> None:
    """With ``--from``, a masked producer above the from-step reruns too."""
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("TOKEN",)),
        "b": OK,
        "c": OK,
        "d": OK,
    }
    refs = {"c": [StepRef("a", "TOKEN")]}
    choices = _choose(CHAIN, prior, refs, from_step="c")
    assert _rerun(choices) == ["a", "b", "c"]
    assert _why(choices)["c"] == "--from c"
    assert "'TOKEN'" in _why(choices)["a"]


def test_masked_producer_reruns_its_other_dependents() -> None:
    """Rerunning a masked producer reruns every step below it (the set stays closed)."""
    plan = _plan("a", ("b", ["a"]), ("c", ["a"]))
    prior = {
        "a": PriorStep(StepState.SUCCEEDED, 1, 0, masked_outputs=("T",)),
        "b": FAILED,
        "c": OK,
    }
    choices = _choose(plan, prior, {"b": [StepRef("a", "T")]})
    assert _rerun(choices) == ["a", "b", "c"]
    assert _why(choices)["c"] == "depends on 'a', which reruns (was succeeded)"


# --- plan_changes ----------------------------------------------------------------------


def _builtins(plan: Plan) -> dict[str, Any]:
    return msgspec.to_builtins(plan)  # type: ignore[no-any-return]


def test_same_plan_has_no_changes() -> None:
    """A plan compared with its own stored form has no changes."""
    plan = _plan("a", ("b", ["a"]), variables={"X": "1"})
    assert plan_changes(_builtins(plan), plan) == []


def test_top_level_changes_are_named() -> None:
    """Changed top-level fields (variables, globals, secrets, ...) are each named once."""
    old = _plan("a", variables={"X": "1"})
    new = _plan(
        "a",
        variables={"X": "2"},
        globals={"max_concurrency": 2},
        secrets=["TOKEN"],
        metadata={"k": "v"},
    )
    assert plan_changes(_builtins(old), new) == [
        "'globals' changed",
        "'metadata' changed",
        "'secrets' changed",
        "'variables' changed",
    ]


def test_plan_id_change_is_named() -> None:
    """A renamed plan is a change."""
    old = _builtins(_plan("a"))
    new = msgspec.convert({"plan_id": "q", "steps": [{"id": "a", "command": "echo"}]}, Plan)
    assert plan_changes(old, new) == ["'plan_id' changed"]


def test_removed_added_and_changed_steps() -> None:
    """Removed, added and changed steps are listed, with the fields that changed."""
    old = _builtins(_plan("a", "b", "c"))
    new = msgspec.convert(
        {
            "plan_id": "p",
            "steps": [
                {"id": "a", "command": "echo"},
                {"id": "c", "command": "true", "retries": 2, "depends_on": ["a"]},
                {"id": "d", "command": "echo"},
            ],
        },
        Plan,
    )
    assert plan_changes(old, new) == [
        "step 'b' was removed",
        "step 'c' changed (command, depends_on, retries)",
        "step 'd' was added",
    ]


def test_reordered_steps() -> None:
    """The same steps in another order are reported as reordered."""
    assert plan_changes(_builtins(_plan("a", "b")), _plan("b", "a")) == ["the steps were reordered"]


def test_reorder_is_not_reported_with_other_changes() -> None:
    """A reorder is not mentioned when something else changed too."""
    changes = plan_changes(_builtins(_plan("a", "b")), _plan("b", "a", variables={"X": "1"}))
    assert changes == ["'variables' changed"]


def test_field_set_to_default_is_no_change() -> None:
    """Writing a default value explicitly is not a change (defaults are omitted)."""
    old = _builtins(_plan("a"))
    new = msgspec.convert(
        {"plan_id": "p", "steps": [{"id": "a", "command": "echo", "retries": 0}]}, Plan
    )
    assert plan_changes(old, new) == []


# --- variable_changes ----------------------------------------------------------------


def test_no_variable_changes() -> None:
    """The same variables give no changes."""
    assert variable_changes({"A": "1"}, {"A": "1"}) == []


def test_variable_changes_are_sorted_and_quoted() -> None:
    """Removed, added and changed variables are listed by name, values quoted."""
    old = {"B": "old", "GONE": "x", "SAME": "s"}
    new = {"B": "new", "NEW": "", "SAME": "s"}
    assert variable_changes(old, new) == [
        "variable B: 'old' -> 'new'",
        "variable GONE is no longer set (was 'x')",
        "variable NEW is new ('')",
    ]


# --- resume: ephemeral --------------------------------------------------------------


def _ephemeral_plan() -> Plan:
    """setup -> tmp (ephemeral) -> use -> after; tmp -> other; lone alone."""
    plan = _plan(
        "setup", ("tmp", ["setup"]), ("use", ["tmp"]), ("after", ["use"]), ("other", ["tmp"]),
        "lone",
    )  # fmt: skip
    raw = msgspec.to_builtins(plan)
    raw["steps"][1]["resume"] = "ephemeral"
    return msgspec.convert(raw, Plan)


def test_an_ephemeral_step_reruns_when_a_step_after_it_reruns() -> None:
    """'after' failed: the ephemeral 'tmp' before it reruns too (and so does all that
    follows 'tmp'), saying why; 'setup' before it and the unrelated 'lone' are reused."""
    prior = {"setup": OK, "tmp": OK, "use": OK, "after": FAILED, "other": OK, "lone": FAILED}
    choices = _choose(_ephemeral_plan(), prior)
    assert _rerun(choices) == ["tmp", "use", "after", "other", "lone"]
    assert _why(choices)["tmp"] == (
        "its effect does not outlive a run (resume: ephemeral) and 'after', "
        "which comes after it, reruns"
    )
    assert _why(choices)["use"] == "depends on 'tmp', which reruns (was succeeded)"


def test_an_ephemeral_step_is_reused_when_nothing_after_it_reruns() -> None:
    """Only 'lone' failed: nothing downstream of 'tmp' reruns, so it is reused."""
    prior = {"setup": OK, "tmp": OK, "use": OK, "after": OK, "other": OK, "lone": FAILED}
    assert _rerun(_choose(_ephemeral_plan(), prior)) == ["lone"]


def test_from_a_step_after_an_ephemeral_one_reruns_it() -> None:
    """--from use: 'tmp' must be made again first."""
    prior = dict.fromkeys(["setup", "tmp", "use", "after", "other", "lone"], OK)
    assert _rerun(_choose(_ephemeral_plan(), prior, from_step="use")) == [
        "tmp",
        "use",
        "after",
        "other",
    ]


def test_only_a_step_after_an_ephemeral_one_is_refused() -> None:
    """--only use cannot rerun 'tmp' too: refused, pointing at --from tmp."""
    prior = dict.fromkeys(["setup", "tmp", "use", "after", "other", "lone"], OK)
    with pytest.raises(UsageError, match="use --from tmp"):
        _choose(_ephemeral_plan(), prior, only="after")
    assert _rerun(_choose(_ephemeral_plan(), prior, only="tmp")) == ["tmp"]


def test_defaults_however_spelled_or_stored_are_no_change() -> None:
    """A run stored by an older planrun (which wrote ``success_exit_codes: [0]`` out and
    left empty lists out) compared with the same plan spelling its defaults
    (``"depends_on": []``) has no changes: resume must not call every step changed."""
    stored = {
        "plan_id": "p",
        "steps": [
            {"id": "a", "command": "echo", "success_exit_codes": [0]},
            {"id": "b", "command": "echo", "depends_on": ["a"], "success_exit_codes": [0]},
        ],
        "globals": {},
        "handlers": {},
    }
    new = msgspec.convert(
        {
            "plan_id": "p",
            "steps": [
                {"id": "a", "command": "echo", "depends_on": [], "args": [], "env": {}},
                {"id": "b", "command": "echo", "depends_on": ["a"], "skip_exit_codes": []},
            ],
        },
        Plan,
    )
    assert plan_changes(stored, new) == []
    assert new.steps[0] == Step(id="a", command="echo")  # the same step, however spelled
    changed = msgspec.convert(
        {"plan_id": "p", "steps": [{"id": "a", "command": "echo", "success_exit_codes": [0, 1]}]},
        Plan,
    )
    assert "step 'a' changed (success_exit_codes)" in plan_changes(stored, changed)
