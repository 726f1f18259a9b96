"""``${NAME}`` substitution: grammar, no re-expansion, and one value = one argv element."""

from __future__ import annotations

from pathlib import Path

import pytest

from planrun.model import Plan, Step
from planrun.plan import resolve_steps, resolve_variables, validate
from planrun.subst import (
    Piece,
    Ref,
    StepRef,
    SubstError,
    parse,
    partial,
    references,
    render,
    step_references,
    substitute,
)


@pytest.mark.parametrize(
    ("template", "pieces"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("plain", ["plain"], id="no-dollar"),
        pytest.param("${X}", [Ref("X")], id="only-ref"),
        pytest.param("a${X}b", ["a", Ref("X"), "b"], id="ref-in-middle"),
        pytest.param("${X}${Y}", [Ref("X"), Ref("Y")], id="adjacent-refs"),
        pytest.param("${_a1}", [Ref("_a1")], id="underscore-and-digit"),
        pytest.param("$${X}", ["${X}"], id="escaped-literal"),
        pytest.param("a$${X}${Y}", ["a${X}", Ref("Y")], id="escape-then-ref"),
        pytest.param("$", ["$"], id="lone-dollar"),
        pytest.param("$$", ["$$"], id="double-dollar"),
        pytest.param("$X and $ 5", ["$X and $ 5"], id="dollar-without-brace"),
        pytest.param("cost: 5$", ["cost: 5$"], id="trailing-dollar"),
        pytest.param("$$${X}", ["$${X}"], id="triple-dollar-left-to-right"),
        pytest.param("{X}", ["{X}"], id="brace-without-dollar"),
        pytest.param("${X}}", [Ref("X"), "}"], id="extra-close-brace"),
    ],
)
def test_parse_splits_literals_and_references(template: str, pieces: list[Piece]) -> None:
    """parse() returns the literal strings and Ref items in order (ignoring empty literals)."""
    assert [piece for piece in parse(template) if piece != ""] == pieces


def test_parse_emits_no_empty_literals() -> None:
    """parse() never returns empty literal pieces."""
    assert parse("${X}${Y}") == [Ref("X"), Ref("Y")]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("${X", "unterminated '${' at offset 0", id="unterminated"),
        pytest.param("abc${", "unterminated '${' at offset 3", id="unterminated-at-end"),
        pytest.param("${}", "invalid variable name '' in '${}'", id="empty-name"),
        pytest.param("${1x}", "invalid variable name '1x' in '${1x}'", id="leading-digit"),
        pytest.param("${a-b}", "invalid variable name 'a-b'", id="dash"),
        pytest.param("${ X }", "invalid variable name ' X '", id="spaces"),
        pytest.param("${X:-d}", "invalid variable name 'X:-d'", id="shell-default-syntax"),
        pytest.param("${${X}}", "invalid variable name '${X'", id="nested"),
    ],
)
def test_parse_rejects_malformed_templates(template: str, message: str) -> None:
    """A malformed template raises SubstError with a precise message."""
    with pytest.raises(SubstError) as info:
        parse(template)
    assert message in str(info.value)


def test_unterminated_message_explains_the_escape() -> None:
    """The unterminated-reference message tells how to write a literal ``${``."""
    with pytest.raises(SubstError, match=r"write '\$\$\{' for a literal '\$\{'"):
        parse("${")


def test_subst_error_is_a_value_error() -> None:
    """SubstError is a ValueError so generic callers can catch it."""
    assert issubclass(SubstError, ValueError)


def test_references_lists_names_in_order_with_repeats() -> None:
    """references() yields each referenced name in order, repeats included, not escapes."""
    assert list(references("${B}-${A}-$${C}-${B}")) == ["B", "A", "B"]


def test_references_raises_on_malformed_template() -> None:
    """references() raises SubstError for a malformed template."""
    with pytest.raises(SubstError):
        list(references("ok ${bad-name}"))


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        pytest.param("no refs", {}, "no refs", id="plain"),
        pytest.param("${X}", {"X": "1"}, "1", id="whole"),
        pytest.param("--out=${DIR}/f", {"DIR": "/tmp/d"}, "--out=/tmp/d/f", id="embedded"),
        pytest.param("${X}${X}", {"X": "ab"}, "abab", id="repeated"),
        pytest.param("${X}", {"X": ""}, "", id="empty-value"),
        pytest.param("$${X}", {"X": "1"}, "${X}", id="escape-not-substituted"),
        pytest.param("$", {}, "$", id="lone-dollar"),
        pytest.param("a $ b", {}, "a $ b", id="dollar-space"),
        pytest.param("${X}", {"X": "${Y}", "Y": "no"}, "${Y}", id="no-re-expansion"),
        pytest.param("${X}", {"X": "$${Y}"}, "$${Y}", id="escape-in-value-verbatim"),
        pytest.param("${X}", {"X": "${"}, "${", id="unterminated-in-value-verbatim"),
    ],
)
def test_substitute(template: str, values: dict[str, str], expected: str) -> None:
    """substitute() replaces each reference once and leaves values verbatim."""
    assert substitute(template, values) == expected


def test_substitute_missing_name_raises_key_error() -> None:
    """A name absent from the values raises KeyError naming it."""
    with pytest.raises(KeyError, match="MISSING"):
        substitute("a ${MISSING} b", {"OTHER": "x"})


def test_substitute_malformed_template_raises_subst_error() -> None:
    """A malformed template raises SubstError even when the values are fine."""
    with pytest.raises(SubstError):
        substitute("${X", {"X": "1"})


# --- injection corpus --------------------------------------------------------------

INJECTION = [
    pytest.param("; touch x", id="semicolon"),
    pytest.param("&& touch x", id="and-and"),
    pytest.param("| touch x", id="pipe"),
    pytest.param("$(touch x)", id="command-substitution"),
    pytest.param("`touch x`", id="backticks"),
    pytest.param("a\ntouch x", id="newline"),
    pytest.param("-rf", id="dash-option"),
    pytest.param("--upload-pack=touch x", id="long-option"),
    pytest.param("'quoted' \"double\"", id="quotes"),
    pytest.param("' ; touch x; echo '", id="quote-breakout"),
    pytest.param("*", id="glob-star"),
    pytest.param("~/file ?", id="tilde-and-question"),
    pytest.param("a value with spaces", id="spaces"),
    pytest.param("  padded  ", id="leading-trailing-spaces"),
    pytest.param("\ttab", id="tab"),
    pytest.param("${HOME}", id="reference-inside-value"),
    pytest.param("$HOME", id="shell-variable"),
    pytest.param("> /tmp/out", id="redirect"),
    pytest.param("", id="empty"),
]


def _plan_with(args: list[str]) -> Plan:
    """A one-step plan ``echo ARGS`` that validates without errors for V and W."""
    plan = Plan(plan_id="inj", steps=[Step(id="s", command="echo", args=args)])
    result = validate(plan, {"V": "x", "W": "y"}, allow_undeclared=True)
    assert result.errors == ()
    return plan


@pytest.mark.parametrize("value", INJECTION)
def test_injected_value_is_exactly_one_argv_element(value: str, tmp_path: Path) -> None:
    """A hostile ``--var`` value becomes exactly one argv element, byte for byte."""
    plan = _plan_with(["${V}"])
    values = resolve_variables(plan, {"V": value}, tmp_path)
    (resolved,) = resolve_steps(plan, values, tmp_path)
    assert resolved.argv == ("echo", value)
    assert resolved.env["V"] == value


@pytest.mark.parametrize("value", INJECTION)
def test_injected_value_inside_an_argument_stays_in_it(value: str, tmp_path: Path) -> None:
    """A value embedded in a larger argument stays inside that one argument."""
    plan = _plan_with(["--name=${V}.txt", "${W}"])
    values = resolve_variables(plan, {"V": value, "W": "last"}, tmp_path)
    (resolved,) = resolve_steps(plan, values, tmp_path)
    assert resolved.argv == ("echo", f"--name={value}.txt", "last")


def test_value_with_reference_is_not_expanded_again(tmp_path: Path) -> None:
    """A value containing ``${W}`` arrives verbatim even when W is defined."""
    plan = _plan_with(["${V}"])
    values = resolve_variables(plan, {"V": "${W}", "W": "expanded"}, tmp_path)
    (resolved,) = resolve_steps(plan, values, tmp_path)
    assert resolved.argv == ("echo", "${W}")


def test_resolve_variables_merges_defaults_given_and_plan_dir(tmp_path: Path) -> None:
    """Defaults are stringified, --var values override them, and PLAN_DIR is added."""
    plan = Plan(
        plan_id="v",
        steps=[Step(id="s", command="echo")],
        variables={"A": "a", "N": 3, "F": 1.5, "T": True, "OFF": False, "REQ": None, "O": "old"},
    )
    values = resolve_variables(plan, {"O": "new", "REQ": "given"}, tmp_path)
    assert values == {
        "A": "a",
        "N": "3",
        "F": "1.5",
        "T": "true",
        "OFF": "false",
        "REQ": "given",
        "O": "new",
        "PLAN_DIR": str(tmp_path),
    }


def test_resolve_steps_substitutes_env_and_cwd(tmp_path: Path) -> None:
    """Env values and cwd are substituted too; cwd is relative to the plan directory."""
    plan = Plan(
        plan_id="e",
        steps=[Step(id="s", command="${TOOL}", env={"OUT": "${DIR}/o"}, cwd="${DIR}")],
        variables={"TOOL": "make", "DIR": "build dir"},
    )
    values = resolve_variables(plan, {}, tmp_path)
    (resolved,) = resolve_steps(plan, values, tmp_path)
    assert resolved.argv == ("make",)
    assert resolved.env["OUT"] == "build dir/o"
    assert resolved.cwd == str(tmp_path / "build dir")


# --- step references ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "pieces"),
    [
        pytest.param("${steps.build.outputs.sha}", [StepRef("build", "sha")], id="output"),
        pytest.param("${steps.build.exit_code}", [StepRef("build")], id="exit-code"),
        pytest.param(
            "${steps.my.step-1.outputs.sha}", [StepRef("my.step-1", "sha")], id="dots-and-dashes"
        ),
        pytest.param("${steps.2nd.exit_code}", [StepRef("2nd")], id="id-starting-with-digit"),
        pytest.param("${steps.a.outputs._K9}", [StepRef("a", "_K9")], id="key-underscore"),
        pytest.param(
            "${steps.a.outputs.exit_code}", [StepRef("a", "exit_code")], id="output-named-exit_code"
        ),
        pytest.param(
            "${steps.x.exit_code.exit_code}", [StepRef("x.exit_code")], id="id-looks-like-ref"
        ),
        pytest.param(
            "${steps.a.outputs.b.outputs.K}", [StepRef("a.outputs.b", "K")], id="greedy-id"
        ),
        pytest.param(
            "--sha=${steps.a.outputs.sha}@${V}",
            ["--sha=", StepRef("a", "sha"), "@", Ref("V")],
            id="mixed-with-variable",
        ),
        pytest.param("$${steps.a.exit_code}", ["${steps.a.exit_code}"], id="escaped"),
        pytest.param("${steps}", [Ref("steps")], id="variable-named-steps"),
    ],
)
def test_parse_step_references(template: str, pieces: list[Piece]) -> None:
    """``${steps.ID.outputs.KEY}`` and ``${steps.ID.exit_code}`` parse to StepRef items."""
    assert parse(template) == pieces


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("${steps.a}", id="no-field"),
        pytest.param("${steps.}", id="nothing"),
        pytest.param("${steps..exit_code}", id="empty-id"),
        pytest.param("${steps.a.outputs}", id="outputs-without-key"),
        pytest.param("${steps.a.outputs.}", id="empty-key"),
        pytest.param("${steps.a.outputs.1x}", id="key-leading-digit"),
        pytest.param("${steps.a.outputs.K.x}", id="key-with-dot"),
        pytest.param("${steps.a.outputs.-k}", id="key-leading-dash"),
        pytest.param("${steps.a.exitcode}", id="misspelt-exit_code"),
        pytest.param("${steps.a.output.K}", id="misspelt-outputs"),
    ],
)
def test_malformed_step_reference_raises(template: str) -> None:
    """A malformed ``${steps...}`` raises SubstError showing both valid forms."""
    with pytest.raises(SubstError) as info:
        parse(template)
    assert str(info.value) == (
        f"invalid step reference '{template}': use '${{steps.ID.outputs.KEY}}' or "
        "'${steps.ID.exit_code}' (either may end in ':-DEFAULT')"
    )


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param(StepRef("a", "K"), id="output"),
        pytest.param(StepRef("a"), id="exit-code"),
        pytest.param(StepRef("my.step-1", "sha"), id="dotted-id"),
    ],
)
def test_step_ref_text_parses_back(ref: StepRef) -> None:
    """StepRef.text is the template that refers to it."""
    assert parse(ref.text) == [ref]


def test_step_ref_text() -> None:
    """StepRef.text spells the reference as written in a plan."""
    assert StepRef("build", "sha").text == "${steps.build.outputs.sha}"
    assert StepRef("build").text == "${steps.build.exit_code}"


def test_references_skip_step_references() -> None:
    """references() lists variables only; step_references() lists step refs only."""
    template = "${A}${steps.s.exit_code}${B}${steps.t.outputs.K}$${steps.u.exit_code}"
    assert list(references(template)) == ["A", "B"]
    assert list(step_references(template)) == [StepRef("s"), StepRef("t", "K")]


def test_step_references_raises_on_malformed_template() -> None:
    """step_references() raises SubstError for a malformed template."""
    with pytest.raises(SubstError):
        list(step_references("${steps.a}"))


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        pytest.param("", {}, ("",), id="empty"),
        pytest.param("plain", {}, ("plain",), id="plain"),
        pytest.param("a${X}b$${Y}", {"X": "1"}, ("a1b${Y}",), id="variables-merged"),
        pytest.param("${steps.a.exit_code}", {}, (StepRef("a"),), id="only-step-ref"),
        pytest.param(
            "${X}${steps.a.exit_code}-${Y}${steps.b.outputs.K}",
            {"X": "1", "Y": "2"},
            ("1", StepRef("a"), "-2", StepRef("b", "K")),
            id="mixed",
        ),
        pytest.param(
            "${steps.a.exit_code}${steps.a.exit_code}",
            {},
            (StepRef("a"), StepRef("a")),
            id="repeated",
        ),
        pytest.param(
            "${X}", {"X": "${steps.a.exit_code}"}, ("${steps.a.exit_code}",), id="value-verbatim"
        ),
    ],
)
def test_partial(
    template: str, values: dict[str, str], expected: tuple[str | StepRef, ...]
) -> None:
    """partial() substitutes variables now, keeps step refs, and merges adjacent literals."""
    assert partial(template, values) == expected


def test_partial_missing_variable_raises_key_error() -> None:
    """partial() raises KeyError for a variable missing from the values."""
    with pytest.raises(KeyError, match="MISSING"):
        partial("${steps.a.exit_code}${MISSING}", {})


def test_render_fills_step_references() -> None:
    """render() joins the pieces, asking lookup for each step reference."""
    pieces = partial("--sha=${steps.a.outputs.sha} rc=${steps.a.exit_code} ${X}", {"X": "x"})
    asked: list[StepRef] = []

    def lookup(ref: StepRef) -> str:
        asked.append(ref)
        return "abc" if ref.key == "sha" else "0"

    assert render(pieces, lookup) == "--sha=abc rc=0 x"
    assert asked == [StepRef("a", "sha"), StepRef("a")]


def test_render_values_are_not_expanded() -> None:
    """A looked-up value holding ``${...}`` or shell syntax arrives verbatim."""
    pieces = partial("${steps.a.outputs.K}", {})
    assert render(pieces, lambda _: "${X}; rm -rf /") == "${X}; rm -rf /"


def test_render_lookup_errors_propagate() -> None:
    """An error from lookup (a missing output) propagates, never becomes ''."""
    pieces = partial("${steps.a.outputs.K}", {})

    def lookup(ref: StepRef) -> str:
        raise KeyError(ref.text)

    with pytest.raises(KeyError, match=r"steps\.a\.outputs\.K"):
        render(pieces, lookup)


def test_render_without_step_references_needs_no_lookup() -> None:
    """A template without step refs renders without calling lookup."""

    def lookup(ref: StepRef) -> str:
        raise AssertionError(ref)

    assert render(partial("a${X}", {"X": "1"}), lookup) == "a1"


@pytest.mark.parametrize(
    "template",
    ["${steps.a.exit_code}", "x-${steps.a.outputs.K}", "${X}${steps.a.exit_code}"],
)
def test_substitute_rejects_step_references(template: str) -> None:
    """substitute() raises ValueError (not SubstError or KeyError) for a step reference."""
    with pytest.raises(ValueError, match="refers to a step's results") as info:
        substitute(template, {"X": "1"})
    assert not isinstance(info.value, SubstError)


def test_substitute_escaped_step_reference_is_literal() -> None:
    """``$${steps...}`` is a literal, so substitute() accepts it."""
    assert substitute("$${steps.a.exit_code}", {}) == "${steps.a.exit_code}"


@pytest.mark.parametrize(
    ("template", "piece"),
    [
        pytest.param("${steps.a.outputs.cache-hit}", StepRef("a", "cache-hit"), id="dash-key"),
        pytest.param("${steps.a.outputs.k:-none}", StepRef("a", "k", "none"), id="output-default"),
        pytest.param("${steps.a.exit_code:-1}", StepRef("a", None, "1"), id="exit-default"),
        pytest.param("${steps.a.b.exit_code:-}", StepRef("a.b", None, ""), id="empty-default"),
        pytest.param("${steps.a.outputs.k:-x:-y}", StepRef("a", "k", "x:-y"), id="default-rest"),
        pytest.param("${matrix.python}", Ref("matrix.python"), id="matrix"),
        pytest.param("${item}", Ref("item"), id="item"),
        pytest.param("${item.doc-id}", Ref("item.doc-id"), id="item-key"),
    ],
)
def test_new_reference_forms(template: str, piece: Piece) -> None:
    """Output keys with '-', defaults on step references, instance names."""
    assert parse(template) == [piece]


def test_default_shows_in_text() -> None:
    assert StepRef("a", "k", "x").text == "${steps.a.outputs.k:-x}"
    assert StepRef("a", None, "").text == "${steps.a.exit_code:-}"


@pytest.mark.parametrize("template", ["${NAME:-x}", "${matrix.K:-x}", "${matrix.}", "${items}x"])
def test_defaults_stay_strict_elsewhere(template: str) -> None:
    """Only step references take a default; other names stay strict."""
    if template == "${items}x":
        assert parse(template) == [Ref("items"), "x"]
        return
    with pytest.raises(SubstError):
        parse(template)
