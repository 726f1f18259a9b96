"""The variable rules of issue 13: undeclared given variables, validating without
values, each problem on its own, and the ``$${`` hint for shell forms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import PlanError, run_plan
from planrun.plan import validate
from planrun.plan.variables import escaped_for_shell
from planrun.prepare import check_plan, prepare


def _doc(*args: str, variables: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    step = {"id": "a", "command": "sh", "args": list(args) or ["-c", "true"]}
    return {"plan_id": "p", "variables": variables or {}, **top, "steps": [step]}


def _messages(doc: dict[str, Any], given: dict[str, str], **kw: Any) -> list[str]:
    return [p.render() for p in validate(doc, given, **kw).errors]


def test_undeclared_variable_is_an_error_with_did_you_mean() -> None:
    doc = _doc(variables={"BRANCH": None, "TARGET": "main"})
    (problem,) = validate(doc, {"BRANCH": "b", "TARGT": "x"}).errors
    assert problem.path == "--var TARGT"
    assert problem.message == "variable 'TARGT' is not declared in the plan"
    assert problem.hint is not None
    assert problem.hint.startswith("did you mean 'TARGET'?")
    assert "--allow-undeclared" in problem.hint


def test_did_you_mean_ignores_case() -> None:
    (problem,) = validate(_doc(variables={"TEST_CMD": "true"}), {"test_cmd": "x"}).errors
    assert problem.hint is not None
    assert "did you mean 'TEST_CMD'?" in problem.hint


def test_without_a_close_match_the_hint_lists_the_variables() -> None:
    (problem,) = validate(_doc(variables={"B": "1", "A": "2"}), {"ZZZZ": "x"}).errors
    assert problem.hint is not None
    assert problem.hint.startswith("the plan's variables are A, B;")
    (problem,) = validate(_doc(), {"ZZZZ": "x"}).errors
    assert problem.hint is not None
    assert problem.hint.startswith("the plan declares no variables")


def test_allow_undeclared_and_known_names_let_it_through() -> None:
    assert validate(_doc(), {"EXTRA": "1"}, allow_undeclared=True).ok
    assert validate(_doc(), {"EXTRA": "1"}, known=["EXTRA"]).ok
    assert not validate(_doc(), {"EXTRA": "1", "OTHER": "2"}, known=["EXTRA"]).ok


def test_a_variable_the_plan_uses_counts_as_declared() -> None:
    """``${X}`` (even in a malformed ``${X:-y}``) declares X by its use."""
    assert validate(_doc("-c", "true", "${X}"), {"X": "1"}).ok
    errors = _messages(_doc("-c", "echo ${X:-y}"), {"X": "1"})
    assert len(errors) == 1
    assert "invalid variable name 'X:-y'" in errors[0]


def test_builtin_and_secret_names_keep_their_own_rules() -> None:
    """PLAN_DIR given: the built-in error only; a secret's name: the clash only."""
    assert _messages(_doc(), {"PLAN_DIR": "x"}) == [
        "--var PLAN_DIR: 'PLAN_DIR' is built in and cannot be set"
    ]
    (clash,) = validate(_doc(secrets=["TOKEN"]), {"TOKEN": "x"}).errors
    assert "is both a secret and a variable" in clash.message


def test_each_variable_problem_is_its_own() -> None:
    doc = _doc(variables={"A": None, "B": None, "C": None})
    result = validate(doc, {"TYPO": "1", "1x": "2", "C": "a\0b"})
    paths = [p.path for p in result.errors]
    assert paths == ["$.variables.A", "$.variables.B", "--var C", "--var 1x", "--var TYPO"]
    assert all(p.hint for p in result.errors)


def test_require_values_false_lists_unset_but_checks_given() -> None:
    doc = _doc(variables={"A": None, "B": None, "C": "c"})
    result = validate(doc, require_values=False)
    assert result.ok
    assert result.unset == ("A", "B")
    result = validate(doc, {"A": "a\0", "TYPO": "x"}, require_values=False)
    assert [p.path for p in result.errors] == ["--var A", "--var TYPO"]
    assert result.unset == ("B",)
    assert not validate(doc).ok  # a run still needs them


def test_shell_form_error_gives_the_escaped_form() -> None:
    (problem,) = validate(_doc("-c", 'echo "${HOME:-/tmp}" ${X}'), {"X": "1"}).errors
    assert problem.hint is not None
    assert "'$${' writes a literal '${'" in problem.hint
    assert '"echo \\"$${HOME:-/tmp}\\" ${X}"' in problem.hint  # JSON-quoted, ${X} kept
    assert 'give HOME a default under "variables"' in problem.hint


def test_a_malformed_name_that_is_no_shell_form_gets_no_such_hint() -> None:
    (problem,) = validate(_doc("${1x}")).errors
    assert problem.hint is None


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("${X:-d}", "$${X:-d}"),
        ("$${X:-d}", "$${X:-d}"),
        ("a ${X} ${#X} $Y $", "a ${X} $${#X} $Y $"),
        ("${X:-${Y}}", "$${X:-${Y}}"),
        ("${steps.a.outputs.K} ${@}", "${steps.a.outputs.K} $${@}"),
        ("${unterminated", "$${unterminated"),
    ],
)
def test_escaped_for_shell(text: str, escaped: str) -> None:
    assert escaped_for_shell(text) == escaped


def test_prepare_reports_secrets_with_the_other_problems() -> None:
    doc = _doc(variables={"A": None}, secrets=["TOKEN"])
    with pytest.raises(PlanError) as caught:
        prepare(doc, {"TYPO": "1"}, environ={})
    paths = [p.path for p in caught.value.problems]
    assert paths == ["$.variables.A", "--var TYPO", "$.secrets[0]"]


def test_prepare_allow_undeclared_puts_it_in_the_environment() -> None:
    with pytest.raises(PlanError):
        prepare(_doc(), {"EXTRA": "1"})
    (step,) = prepare(_doc(), {"EXTRA": "1"}, allow_undeclared=True).steps
    assert step.env["EXTRA"] == "1"


def test_run_plan_refuses_a_typo_before_writing_anything(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        await run_plan(_doc(variables={"COUNT": "1"}), {"COUTN": "2"}, state_dir=state)

    with pytest.raises(PlanError) as caught:
        anyio.run(main)
    assert "did you mean 'COUNT'?" in str(caught.value)
    assert not state.exists()


def test_check_plan_validates_without_values(tmp_path: Path) -> None:
    plan = tmp_path / "p.json"
    step = '{"id": "a", "command": "true"}'
    plan.write_text(f'{{"plan_id": "p", "variables": {{"B": null}}, "steps": [{step}]}}')
    result = check_plan(plan)
    assert result.ok
    assert result.unset == ("B",)
    assert result.warnings == ()
