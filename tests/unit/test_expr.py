"""The ``if`` expression language: a corpus of valid expressions with their values, of
invalid ones with the column of their error, and the name checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planrun.expr import ExprError, Operand, Value, evaluate, parse, truthy
from planrun.expr_check import Condition, Scope, check

#: The values the corpus evaluates against.
VALUES: dict[str, Value] = {
    "vars.TARGET": "prod",
    "vars.COUNT": "10",
    "vars.EMPTY": "",
    "vars.ZERO": "0",
    "matrix.python": "3.11",
    "item": "doc-17",
    "item.kind": "pdf",
    "steps.build.outputs.changed": "yes",
    "steps.build.outputs.cache-hit": "true",
    "steps.build.outputs.list": "a,b,c",
    "steps.build.state": "succeeded",
    "steps.build.exit_code": 0,
    "steps.lint.exit_code": 3,
    "steps.lint.state": "failed",
    "steps.my.step-1.state": "skipped",
}


def _lookup(op: Operand) -> Value:
    return VALUES.get(op.text)  # a missing value is null


def value_of(text: str) -> Value:
    return evaluate(parse(text), _lookup)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("null", None),
        ("'a'", "a"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\"\n"', 'say "hi"\n'),
        (r"'back\\slash'", "back\\slash"),
        ("42", 42),
        ("-1.5", -1.5),
        ("vars.TARGET == 'prod'", True),
        ("vars.TARGET != 'prod'", False),
        ("vars.TARGET == 'Prod'", False),  # case-sensitive
        ('vars.TARGET == "prod"', True),
        # A numeric string and a number compare as numbers, as in GitHub Actions.
        ("vars.COUNT == 10", True),
        ("vars.COUNT == 10.0", True),
        ("vars.COUNT > 9", True),
        ("vars.COUNT < 9", False),
        ("vars.COUNT >= 10 && vars.COUNT <= 10", True),
        ("matrix.python == 3.11", True),
        ("matrix.python > 3.9", False),  # numerically: 3.11 < 3.9 (versions are not numbers)
        ("matrix.python > 3.1", True),
        ("'3.11' > '3.9'", False),  # two strings: by code point
        ("'b' > 'a'", True),
        ("vars.TARGET > 1", False),  # not a number: false
        ("vars.TARGET == 1", False),
        ("steps.build.exit_code == 0", True),
        ("steps.build.exit_code == '0'", True),
        ("steps.lint.exit_code != 0", True),
        ("steps.lint.state == 'failed'", True),
        ("steps.build.outputs.changed == 'yes'", True),
        ("steps.build.outputs.cache-hit == 'true'", True),
        ("steps.build.outputs.cache-hit == true", False),  # a string is not a boolean
        ("steps.build.outputs.missing == null", True),  # a missing output is null
        ("steps.build.outputs.missing == ''", False),
        ("steps.build.outputs.missing", None),
        ("steps.my.step-1.state == 'skipped'", True),  # ids with '.' and '-'
        ("null == null", True),
        ("null == 0", False),
        ("true == true", True),
        ("true == 1", False),
        # in: an element of a list, or a substring of a string.
        ("vars.TARGET in ['dev', 'prod']", True),
        ("vars.TARGET in ['dev', 'staging']", False),
        ("vars.COUNT in [1, 10]", True),
        ("vars.TARGET in []", False),
        ("null in [null]", True),
        ("'b,c' in steps.build.outputs.list", True),
        ("'x' in steps.build.outputs.list", False),
        ("'a' in steps.build.outputs.missing", False),
        ("1 in '123'", False),  # only a string is a substring
        # Truthiness: false, null, 0 and '' are false.
        ("!vars.EMPTY", True),
        ("!vars.ZERO", False),  # '0' is a non-empty string
        ("!0", True),
        ("!null", True),
        ("!!'x'", True),
        ("!steps.build.outputs.missing", True),
        ("vars.EMPTY || 'fallback'", True),  # && and || give booleans
        ("vars.EMPTY && true", False),
        ("true || false && false", True),  # && binds tighter
        ("(true || false) && false", False),
        ("!(vars.TARGET == 'dev') && item == 'doc-17'", True),
        ("item.kind == 'pdf'", True),
        ("item.size == null", True),
        ("  vars.TARGET  ==\t'prod'  ", True),
    ],
)
def test_valid_expressions_and_their_values(text: str, expected: Value) -> None:
    assert value_of(text) == expected
    assert type(value_of(text)) is type(expected)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
        ("vars.X = 'a'", 8, "use '=='"),
        ("vars.X == 'a", 11, "unterminated string"),
        ('"abc', 1, "unterminated string"),
        (r"'a\q'", 3, "unknown escape"),
        ("vars.X & vars.Y", 8, "use '&&' or '||'"),
        ("vars.X | vars.Y", 8, "use '&&' or '||'"),
        ("(vars.X == 'a'", 15, "expected ')'"),
        ("vars.X == 'a')", 14, "unexpected ')'"),
        ("vars.X ==", 10, "expected a value, found the end"),
        ("== 'a'", 1, "expected a value"),
        ("'a' == 'a' == 'a'", 12, "do not chain"),
        ("'a' < 'b' < 'c'", 11, "do not chain"),
        ("foo == 'a'", 1, "unknown name 'foo' (a variable is vars.foo"),
        ("vars == 'a'", 1, "unknown name 'vars'"),
        ("vars.1x == 'a'", 1, "unknown name"),
        ("env.HOME", 1, "unknown name 'env.HOME'"),
        ("steps.a", 1, "invalid step reference 'steps.a'"),
        ("steps.a.outputs", 1, "invalid step reference"),
        ("steps.a.output.k", 1, "invalid step reference"),
        ("steps.a.outputs.k.x", 1, "invalid step reference"),
        ("matrix.", 1, "unknown name"),
        ("['a'] == 'a'", 1, "list literal can only follow 'in'"),
        ("'a' in ['a', vars.X]", 14, "a list holds literals only"),
        ("'a' in ['a' 'b']", 13, "expected ',' or ']'"),
        ("'a' in ['a',", 13, "a list holds literals only"),
        ("in ['a']", 1, "expected a value before 'in'"),
        ("${{ vars.X }}", 1, "without '${{ }}'"),
        ("vars.X == 'a' vars.Y", 15, "unexpected 'vars.Y'"),
        ("1.2.3", 4, "unexpected character '.'"),
        ("!", 2, "expected a value"),
        ("'" + "a" * 5000 + "'", 4097, "longer than 4096"),
        ("(" * 80 + "true" + ")" * 80, 65, "nested deeper"),
        ("!" * 80 + "true", 64, "nested deeper"),
    ],
)
def test_invalid_expressions_report_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        parse(text)
    assert info.value.column == column, info.value
    assert fragment in info.value.message
    assert str(info.value).startswith(f"column {column}: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, False),
        (None, False),
        (0, False),
        (0.0, False),
        ("", False),
        ("0", True),
        ("false", True),
        (True, True),
        (1, True),
        (-1, True),
        ("x", True),
    ],
)
def test_truthiness(value: Value, expected: bool) -> None:
    assert truthy(value) is expected


def test_condition_binds_known_values_and_asks_steps_at_run_time() -> None:
    """A compiled condition keeps the variables/instance values it uses (only those)
    and asks for steps' values when it is evaluated."""
    cond = Condition.compile(
        "vars.T == 'prod' && matrix.py == '3.11' && steps.b.outputs.k-1 == 'v'",
        {"T": "prod", "matrix.py": "3.11", "OTHER": "x"},
    )
    assert dict(cond.bound) == {"T": "prod", "matrix.py": "3.11"}
    asked: list[tuple[str, str, str | None]] = []

    def steps(step_id: str, what: str, key: str | None) -> Value:
        asked.append((step_id, what, key))
        return "v"

    assert cond.holds(steps)
    assert asked == [("b", "outputs", "k-1")]
    assert not cond.holds(lambda *_: None)
    # Short-circuit: a false left side asks nothing.
    asked.clear()
    assert not Condition.compile("vars.T == 'dev' && steps.b.state", {"T": "prod"}).holds(steps)
    assert asked == []


SCOPE = Scope(
    step_id="deploy",
    variables=["TARGET", "REGION", "PLAN_DIR"],
    steps=["build", "test", "deploy", "later", "fan"],
    ancestors={"build", "test", "fan"},
    axes=None,
    multi={"test", "fan"},
)


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("vars.TARGET == 'x' && steps.build.state == 'succeeded'", SCOPE, []),
        (
            "vars.TARGT == 'x'",
            SCOPE,
            [(1, "unknown variable 'TARGT'", "did you mean 'vars.TARGET'?")],
        ),
        ("vars.NOPE", SCOPE, [(1, "unknown variable 'NOPE'", 'declare it under "variables"')]),
        ("steps.later.state", SCOPE, [(1, "'later' is not an ancestor of 'deploy'", "depends_on")]),
        ("steps.biuld.state", SCOPE, [(1, "unknown step 'biuld'", "did you mean 'build'?")]),
        ("steps.deploy.state", SCOPE, [(1, "refers to the step itself", None)]),
        ("steps.test.exit_code == 0", SCOPE, [(1, "runs as several instances", None)]),
        ("matrix.py == 1", SCOPE, [(1, "step 'deploy' has no matrix", None)]),
        (
            "matrix.pyhton == 1",
            Scope("t", [], ["t"], set(), axes=["python", "db"]),
            [(1, "'pyhton' is not an axis", "did you mean 'matrix.python'?")],
        ),
        ("matrix.db == 'pg'", Scope("t", [], ["t"], set(), axes=["python", "db"]), []),
        ("item == 'x'", SCOPE, [(1, "'item' outside a for_each step", None)]),
        ("item.kind == 'x'", Scope("p", [], ["p"], set(), for_each=True), []),
        (
            "true && vars.TARGET = 1",
            SCOPE,
            [(21, "unexpected character '='", "fix the expression")],
        ),
        (
            "vars.A || vars.TARGET || vars.B",
            SCOPE,
            [(1, "unknown variable 'A'", None), (26, "unknown variable 'B'", None)],
        ),
    ],
)
def test_check_reports_each_unknown_name(
    text: str, scope: Scope, expected: list[tuple[int, str, str | None]]
) -> None:
    issues = check(text, scope)
    assert len(issues) == len(expected), issues
    for issue, (column, message, hint) in zip(issues, expected, strict=True):
        assert issue.column == column
        assert message in issue.message
        if hint is not None:
            assert issue.hint is not None
            assert hint in issue.hint


# --- properties ----------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "vars.X",
        "steps.a.state",
        "steps.a.outputs.k-1",
        "matrix.m",
        "item",
        "'s'",
        '"d"',
        "1",
        "-2.5",
        "true",
        "null",
        "==",
        "!=",
        "<",
        ">=",
        "&&",
        "||",
        "!",
        "(",
        ")",
        "in",
        "[",
        "]",
        ",",
        "'",
        "\\",
        "=",
        "&",
        "$",
        "  ",
        "x",
    ]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_PIECES, max_size=30).map(" ".join) | st.text(max_size=60))
def test_any_text_parses_or_raises_a_located_expr_error(text: str) -> None:
    """No input ends in anything but a tree or an ExprError with a column inside it."""
    tree: object = None
    column = 0
    try:
        tree = parse(text)
    except ExprError as exc:
        column = exc.column
    if tree is None:
        assert 1 <= column <= len(text) + 1
    else:
        evaluate(parse(text), lambda _op: None)  # and a tree always evaluates


def _show(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


_LITERALS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=8))


@settings(max_examples=300, deadline=None, database=None)
@given(_LITERALS, _LITERALS, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
def test_comparisons_of_literals_follow_the_documented_rules(a: Value, b: Value, op: str) -> None:
    got = value_of(f"{_show(a)} {op} {_show(b)}")
    assert isinstance(got, bool)
    if op == "==":
        assert got == value_of(f"!({_show(a)} != {_show(b)})")
    # A literal always equals itself; '==' is symmetric.
    assert value_of(f"{_show(a)} == {_show(a)}") is True
    assert value_of(f"{_show(a)} == {_show(b)}") == value_of(f"{_show(b)} == {_show(a)}")
