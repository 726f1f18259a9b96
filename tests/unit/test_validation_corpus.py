"""A corpus of invalid plans: every problem must name its exact location, step and cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planrun.errors import PlanError, Problem
from planrun.model import Globals, Plan, Step
from planrun.plan import Validation, validate


def _step(step_id: str = "a", **fields: Any) -> dict[str, Any]:
    """A minimal valid step, with ``fields`` added or overridden."""
    return {"id": step_id, "command": "echo", **fields}


def _plan(*steps: Any, **fields: Any) -> dict[str, Any]:
    """A minimal valid plan holding ``steps``, with ``fields`` added or overridden."""
    return {"plan_id": "p", "steps": list(steps), **fields}


def _only_error_at(result: Validation, path: str) -> Problem:
    """The single error located at ``path`` (fails when there is none or several)."""
    found = [p for p in result.errors if p.path == path]
    assert len(found) == 1, f"errors at {path}: {found}; all problems: {result.problems}"
    return found[0]


# (doc, --var values, path, step_id, message fragment, hint fragment)
CORPUS = [
    pytest.param([1, 2], {}, "$", None, "a plan must be an object, got list", None, id="top-list"),
    pytest.param(None, {}, "$", None, "a plan must be an object, got nothing", None, id="top-null"),
    pytest.param(42, {}, "$", None, "a plan must be an object, got int", None, id="top-number"),
    pytest.param(
        {"steps": [_step()]},
        {},
        "$",
        None,
        "missing required field 'plan_id'",
        "add 'plan_id'",
        id="missing-plan_id",
    ),
    pytest.param(
        _plan(_step(), plan_id=""),
        {},
        "$.plan_id",
        None,
        "expected `str` of length >= 1",
        None,
        id="empty-plan_id",
    ),
    pytest.param(
        {"plan_id": "p"}, {}, "$", None, "missing required field", "add 'steps'", id="no-steps"
    ),
    pytest.param(_plan(), {}, "$.steps", None, "at least one step", None, id="empty-steps"),
    pytest.param(
        {"plan_id": "p", "steps": {"a": {}}},
        {},
        "$.steps",
        None,
        "expected an array of steps",
        None,
        id="steps-not-list",
    ),
    pytest.param(
        _plan(_step(), "echo"),
        {},
        "$.steps[1]",
        None,
        "expected an object (a step)",
        None,
        id="step-not-object",
    ),
    pytest.param(
        _plan(_step(), variabls={"X": "1"}),
        {},
        "$.variabls",
        None,
        "unknown field 'variabls'",
        "did you mean 'variables'?",
        id="unknown-top-field",
    ),
    pytest.param(
        _plan(_step(), zzz=1),
        {},
        "$.zzz",
        None,
        "unknown field 'zzz'",
        "known fields: plan_id, steps",
        id="unknown-top-field-no-match",
    ),
    pytest.param(
        _plan(_step(), globals={"max_concurency": 2}),
        {},
        "$.globals.max_concurency",
        None,
        "unknown field 'max_concurency'",
        "did you mean 'max_concurrency'?",
        id="unknown-globals-field",
    ),
    pytest.param(
        _plan(_step(), globals=[1]),
        {},
        "$.globals",
        None,
        "expected an object",
        None,
        id="globals-not-object",
    ),
    pytest.param(
        _plan(_step("build", comand="make")),
        {},
        "$.steps[0].comand",
        "build",
        "unknown field 'comand'",
        "did you mean 'command'?",
        id="unknown-step-field",
    ),
    pytest.param(
        _plan(_step(), _step("b", retries="x")),
        {},
        "$.steps[1].retries",
        "b",
        "expected `int`, got `str`",
        None,
        id="retries-str",
    ),
    pytest.param(
        _plan(_step(args="hello")),
        {},
        "$.steps[0].args",
        "a",
        "expected `array`, got `str`",
        None,
        id="args-not-list",
    ),
    pytest.param(
        _plan(_step(timeout_sec=0)),
        {},
        "$.steps[0].timeout_sec",
        "a",
        "expected `float` > 0.0",
        None,
        id="timeout-zero",
    ),
    pytest.param(
        _plan(_step(retry_jitter=2)),
        {},
        "$.steps[0].retry_jitter",
        "a",
        "expected `float` <= 1.0",
        None,
        id="jitter-above-one",
    ),
    pytest.param(
        _plan(_step(retry_backoff=0.5)),
        {},
        "$.steps[0].retry_backoff",
        "a",
        "expected `float` >= 1.0",
        None,
        id="backoff-below-one",
    ),
    pytest.param(
        _plan(_step(success_exit_codes=["0"])),
        {},
        "$.steps[0].success_exit_codes[0]",
        "a",
        "expected `int`, got `str`",
        None,
        id="success-code-str",
    ),
    pytest.param(
        _plan(_step(), globals={"max_concurrency": 0}),
        {},
        "$.globals.max_concurrency",
        None,
        "expected `int` >= 1",
        None,
        id="max-concurrency-zero",
    ),
    pytest.param(
        _plan(_step(), globals={"kill_grace_sec": -1}),
        {},
        "$.globals.kill_grace_sec",
        None,
        "expected `float` >= 0.0",
        None,
        id="kill-grace-negative",
    ),
    pytest.param(
        _plan(_step(on_failure="ignore")),
        {},
        "$.steps[0].on_failure",
        "a",
        "invalid enum value 'ignore'",
        "expected one of: abort, skip_dependents, continue",
        id="bad-on_failure",
    ),
    pytest.param(
        _plan(_step(when="always")),
        {},
        "$.steps[0].when",
        "a",
        "invalid enum value 'always'",
        "expected one of: all_success, all_done, one_failed, none_failed",
        id="bad-when",
    ),
    pytest.param(
        _plan(_step("-a")),
        {},
        "$.steps[0].id",
        "-a",
        "matching regex",
        "starting with a letter or digit",
        id="id-leading-dash",
    ),
    pytest.param(
        _plan(_step("a b")),
        {},
        "$.steps[0].id",
        "a b",
        "matching regex",
        "use letters, digits, '.', '_' and '-'",
        id="id-with-space",
    ),
    pytest.param(
        _plan(_step("x" * 129)),
        {},
        "$.steps[0].id",
        "x" * 129,
        "matching regex",
        "(max 128)",
        id="id-too-long",
    ),
    pytest.param(
        _plan({"command": "echo"}),
        {},
        "$.steps[0]",
        None,
        "missing required field 'id'",
        "add 'id'",
        id="step-without-id",
    ),
    pytest.param(
        _plan({"id": "a"}),
        {},
        "$.steps[0]",
        "a",
        "missing required field 'command'",
        "add 'command'",
        id="step-without-command",
    ),
    pytest.param(
        _plan(_step("a"), _step("b"), _step("a")),
        {},
        "$.steps[2].id",
        "a",
        "duplicate step id 'a' (first used at $.steps[0])",
        "unique id",
        id="duplicate-id",
    ),
    pytest.param(
        _plan(_step("a"), _step("b", depends_on=["b"])),
        {},
        "$.steps[1].depends_on[0]",
        "b",
        "a step cannot depend on itself",
        "remove it",
        id="self-dependency",
    ),
    pytest.param(
        _plan(_step("build"), _step("test", depends_on=["buidl"])),
        {},
        "$.steps[1].depends_on[0]",
        "test",
        "unknown dependency 'buidl'",
        "did you mean 'build'?",
        id="unknown-dependency",
    ),
    pytest.param(
        _plan(_step("build"), _step("test", depends_on=["build", "zzzz"])),
        {},
        "$.steps[1].depends_on[1]",
        "test",
        "unknown dependency 'zzzz'",
        "check the step ids",
        id="unknown-dependency-no-match",
    ),
    pytest.param(
        _plan(_step("a", depends_on=["b"]), _step("b", depends_on=["a"])),
        {},
        "$.steps[0].depends_on",
        "a",
        "dependency cycle: a -> b -> a",
        "remove one of these dependencies",
        id="cycle-2",
    ),
    pytest.param(
        _plan(
            _step("a", depends_on=["b"]),
            _step("b", depends_on=["c"]),
            _step("c", depends_on=["a"]),
        ),
        {},
        "$.steps[0].depends_on",
        "a",
        "dependency cycle: a -> b -> c -> a",
        "remove one of these dependencies",
        id="cycle-3",
    ),
    pytest.param(
        _plan(_step("x"), _step("b", depends_on=["c"]), _step("c", depends_on=["b"])),
        {},
        "$.steps[1].depends_on",
        "b",
        "dependency cycle: b -> c -> b",
        "remove one of these dependencies",
        id="cycle-not-first-step",
    ),
    pytest.param(
        _plan(_step(args=["${NAME}"])),
        {},
        "$.steps[0].args[0]",
        "a",
        "variable 'NAME' is not defined",
        "pass --var NAME=...",
        id="undefined-variable",
    ),
    pytest.param(
        _plan(_step(), globals={"env": {"HOME": "${ROOT}"}}),
        {},
        "$.globals.env.HOME",
        None,
        "variable 'ROOT' is not defined",
        'declare it under "variables"',
        id="undefined-variable-globals-env",
    ),
    pytest.param(
        _plan(_step(cwd="${DIR}/sub")),
        {},
        "$.steps[0].cwd",
        "a",
        "variable 'DIR' is not defined",
        "pass --var DIR=...",
        id="undefined-variable-cwd",
    ),
    pytest.param(
        _plan(_step(args=["${TARGET}"]), variables={"TARGET": None}),
        {},
        "$.variables.TARGET",
        None,
        "variable 'TARGET' has no default and no value",
        "pass --var TARGET=...",
        id="null-default-not-given",
    ),
    pytest.param(
        _plan(_step(args=["pre-${X"])),
        {"X": "1"},
        "$.steps[0].args[0]",
        "a",
        "unterminated '${' at offset 4",
        None,
        id="unterminated-reference",
    ),
    pytest.param(
        _plan(_step(args=["ok", "${1x}"])),
        {},
        "$.steps[0].args[1]",
        "a",
        "invalid variable name '1x' in '${1x}'",
        None,
        id="reference-bad-name",
    ),
    pytest.param(
        _plan(_step(command="")),
        {},
        "$.steps[0].command",
        "a",
        "empty command",
        "name a program",
        id="empty-command",
    ),
    pytest.param(
        _plan(_step(command="   ")),
        {},
        "$.steps[0].command",
        "a",
        "empty command",
        "name a program",
        id="blank-command",
    ),
    pytest.param(
        _plan(_step(args=["ok", "a\0b"])),
        {},
        "$.steps[0].args[1]",
        "a",
        "contains a NUL byte",
        "remove it",
        id="nul-in-arg",
    ),
    pytest.param(
        _plan(_step(env={"A=B": "x"})),
        {},
        "$.steps[0].env.A=B",
        "a",
        "invalid environment variable name 'A=B'",
        None,
        id="env-name-with-equals",
    ),
    pytest.param(
        _plan(_step(), globals={"env": {"": "x"}}),
        {},
        "$.globals.env.",
        None,
        "invalid environment variable name ''",
        None,
        id="globals-env-empty-name",
    ),
    pytest.param(
        _plan(_step(), variables={"1X": "v"}),
        {},
        "$.variables.1X",
        None,
        "invalid variable name '1X'",
        "not starting with a digit",
        id="declared-variable-bad-name",
    ),
    pytest.param(
        _plan(_step(), variables={"PLAN_DIR": "/x"}),
        {},
        "$.variables.PLAN_DIR",
        None,
        "invalid variable name 'PLAN_DIR'",
        "PLAN_DIR is built in",
        id="declared-variable-builtin",
    ),
    pytest.param(
        _plan(_step()),
        {"1x": "v"},
        "--var 1x",
        None,
        "invalid variable name '1x'",
        "not starting with a digit",
        id="given-var-bad-name",
    ),
    pytest.param(
        _plan(_step()),
        {"PLAN_DIR": "/x"},
        "--var PLAN_DIR",
        None,
        "'PLAN_DIR' is built in and cannot be set",
        None,
        id="given-var-builtin",
    ),
    # step references: only in a later step's args/env/cwd, naming an ancestor
    pytest.param(
        _plan(_step(), _step("b", command="${steps.a.exit_code}", depends_on=["a"])),
        {},
        "$.steps[1].command",
        "b",
        "'${steps.a.exit_code}': a step's results can be used only in the args, env and cwd",
        None,
        id="step-ref-in-command",
    ),
    pytest.param(
        _plan(_step(), globals={"env": {"RC": "${steps.a.exit_code}"}}),
        {},
        "$.globals.env.RC",
        None,
        "a step's results can be used only in the args, env and cwd of a later step",
        None,
        id="step-ref-in-globals-env",
    ),
    pytest.param(
        _plan(_step(), globals={"cwd": "${steps.a.outputs.DIR}"}),
        {},
        "$.globals.cwd",
        None,
        "'${steps.a.outputs.DIR}': a step's results can be used only",
        None,
        id="step-ref-in-globals-cwd",
    ),
    pytest.param(
        _plan(_step(), globals={"lock": "lock-${steps.a.outputs.K}"}),
        {},
        "$.globals.lock",
        None,
        "'${steps.a.outputs.K}': a step's results can be used only",
        None,
        id="step-ref-in-globals-lock",
    ),
    pytest.param(
        _plan(_step(), _step("b", depends_on=["a"], args=["${steps.zz.exit_code}"])),
        {},
        "$.steps[1].args[0]",
        "b",
        "'${steps.zz.exit_code}' names an unknown step 'zz'",
        "check the step ids",
        id="step-ref-unknown-step",
    ),
    pytest.param(
        _plan(_step("build"), _step("b", depends_on=["build"], args=["${steps.biuld.exit_code}"])),
        {},
        "$.steps[1].args[0]",
        "b",
        "names an unknown step 'biuld'",
        "did you mean 'build'?",
        id="step-ref-unknown-step-close-match",
    ),
    pytest.param(
        _plan(_step(env={"RC": "${steps.a.exit_code}"})),
        {},
        "$.steps[0].env.RC",
        "a",
        "'${steps.a.exit_code}' refers to the step itself",
        None,
        id="step-ref-self",
    ),
    pytest.param(
        _plan(_step(), _step("b", cwd="${steps.a.outputs.DIR}")),
        {},
        "$.steps[1].cwd",
        "b",
        "'${steps.a.outputs.DIR}': step 'a' is not an ancestor of 'b'",
        "add 'a' to depends_on, so it finishes first",
        id="step-ref-not-ancestor",
    ),
    pytest.param(
        _plan(
            _step(),
            _step("b", depends_on=["a"]),
            _step("c", depends_on=["a"], args=["${steps.b.outputs.K}"]),
        ),
        {},
        "$.steps[2].args[0]",
        "c",
        "step 'b' is not an ancestor of 'c'",
        "add 'b' to depends_on",
        id="step-ref-sibling",
    ),
    pytest.param(
        _plan(_step(), _step("b", depends_on=["a"], args=["--rc=${steps.a}"])),
        {},
        "$.steps[1].args[0]",
        "b",
        "invalid step reference '${steps.a}': use '${steps.ID.outputs.KEY}' or "
        "'${steps.ID.exit_code}'",
        None,
        id="step-ref-malformed",
    ),
    # secrets
    pytest.param(
        _plan(_step(), secrets=["TOKEN"], variables={"TOKEN": "x"}),
        {},
        "$.secrets[0]",
        None,
        "'TOKEN' is both a secret and a variable",
        "rename one of them",
        id="secret-is-a-variable",
    ),
    pytest.param(
        _plan(_step(), secrets=["A", "TOKEN"]),
        {"TOKEN": "x"},
        "$.secrets[1]",
        None,
        "'TOKEN' is both a secret and a variable",
        "a secret's value never comes from --var",
        id="secret-is-a-given-var",
    ),
    pytest.param(
        _plan(_step(), secrets=["PLAN_DIR"]),
        {},
        "$.secrets[0]",
        None,
        "'PLAN_DIR' is both a secret and a variable",
        "rename one of them",
        id="secret-is-a-builtin",
    ),
    pytest.param(
        _plan(_step(), secrets=["BAD-NAME"]),
        {},
        "$.secrets[0]",
        None,
        "expected `str` matching regex",
        None,
        id="secret-bad-name",
    ),
    pytest.param(
        _plan(_step(), secrets=["TOKEN"], globals={"lock": "deploy-${TOKEN}"}),
        {},
        "$.globals.lock",
        None,
        "the lock name uses secret 'TOKEN'",
        "lock names are stored and shown in clear: use a variable",
        id="lock-uses-secret",
    ),
    # Limits (README "Limits"): finite numbers with documented maxima, ids in full.
    pytest.param(
        _plan(_step(timeout_sec=float("inf"))),
        {},
        "$.steps[0].timeout_sec",
        "a",
        "<= 2592000",
        None,
        id="timeout-infinite",
    ),
    pytest.param(
        _plan(_step(retry_delay_sec=30 * 24 * 3600 + 1)),
        {},
        "$.steps[0].retry_delay_sec",
        "a",
        "<= 2592000",
        None,
        id="retry-delay-over-30-days",
    ),
    pytest.param(
        _plan(_step(retry_max_delay_sec=float("nan"))),
        {},
        "$.steps[0].retry_max_delay_sec",
        "a",
        "expected `float`",
        None,
        id="retry-max-delay-nan",
    ),
    pytest.param(
        _plan(_step(retries=1001)),
        {},
        "$.steps[0].retries",
        "a",
        "<= 1000",
        None,
        id="retries-over-1000",
    ),
    pytest.param(
        _plan(_step(retry_backoff=101)),
        {},
        "$.steps[0].retry_backoff",
        "a",
        "<= 100",
        None,
        id="backoff-over-100",
    ),
    pytest.param(
        _plan(_step(success_exit_codes=[0, 256])),
        {},
        "$.steps[0].success_exit_codes[1]",
        "a",
        "<= 255",
        None,
        id="exit-code-over-255",
    ),
    pytest.param(
        _plan(_step(retry_on_exit_codes=[-1])),
        {},
        "$.steps[0].retry_on_exit_codes[0]",
        "a",
        ">= 0",
        None,
        id="exit-code-negative",
    ),
    pytest.param(
        _plan(_step(), globals={"max_concurrency": 10_001}),
        {},
        "$.globals.max_concurrency",
        None,
        "<= 10000",
        None,
        id="concurrency-over-10000",
    ),
    pytest.param(
        _plan(_step(), globals={"lock_timeout_sec": 1e999}),
        {},
        "$.globals.lock_timeout_sec",
        None,
        "<= 2592000",
        None,
        id="lock-timeout-infinite",
    ),
    pytest.param(
        _plan(_step(), globals={"kill_grace_sec": 1e7}),
        {},
        "$.globals.kill_grace_sec",
        None,
        "<= 2592000",
        None,
        id="kill-grace-over-30-days",
    ),
    pytest.param(
        _plan(_step(), globals={"timeout_sec": 2592000.5}),
        {},
        "$.globals.timeout_sec",
        None,
        "<= 2592000",
        None,
        id="deadline-over-30-days",
    ),
    pytest.param(
        _plan(_step("abc\n")),
        {},
        "$.steps[0].id",
        "abc\\n",
        "matching regex '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'",
        "starting with a letter or digit",
        id="id-trailing-newline",
    ),
    pytest.param(
        _plan(_step(), variables={"X\n": "1"}),
        {},
        "$.variables.X\\n",
        None,
        "invalid variable name 'X\\n'",
        "use letters, digits and '_'",
        id="variable-name-trailing-newline",
    ),
    pytest.param(
        _plan(_step(), secrets=["TOKEN\n"]),
        {},
        "$.secrets[0]",
        None,
        "matching regex",
        None,
        id="secret-name-trailing-newline",
    ),
    pytest.param(
        _plan(_step()),
        {"X\n": "1"},
        "--var X\\n",
        None,
        "invalid variable name 'X\\n'",
        "use letters, digits and '_'",
        id="var-name-trailing-newline",
    ),
    pytest.param(
        _plan(_step(env={"K": "\ud800"})),
        {},
        "$.steps[0].env.K",
        None,
        "lone surrogate",
        "remove it",
        id="surrogate-env-value",
    ),
    pytest.param(
        _plan(_step(), metadata={"\udcff": 1}),
        {},
        "$.metadata.\\udcff",
        None,
        "the key contains a lone surrogate",
        "remove it",
        id="surrogate-metadata-key",
    ),
    pytest.param(
        _plan(_step(), variables={"X": None}),
        {"X": "a\udcffb"},
        "--var X",
        None,
        "is not valid UTF-8",
        "remove it",
        id="var-value-not-utf8",
    ),
    pytest.param(
        _plan(_step(), metadata={"n": 10**4300}),
        {},
        "$.metadata.n",
        None,
        "more than 4300 digits",
        "quote it",
        id="huge-int-in-data",
    ),
]


@pytest.mark.parametrize(("doc", "given", "path", "step_id", "message", "hint"), CORPUS)
def test_invalid_plan_reports_exact_problem(
    doc: Any,
    given: dict[str, str],
    path: str,
    step_id: str | None,
    message: str,
    hint: str | None,
) -> None:
    """Each invalid plan yields exactly one error, at the expected path, step and cause."""
    result = validate(doc, given)
    assert not result.ok
    assert len(result.errors) == 1, result.problems
    problem = _only_error_at(result, path)
    assert problem.step_id == step_id
    assert message in problem.message
    if hint is None:
        assert problem.hint is None
    else:
        assert problem.hint is not None
        assert hint in problem.hint


def test_corpus_is_large_enough() -> None:
    """The corpus holds at least 30 distinct invalid plans."""
    assert len(CORPUS) >= 30
    assert len({p.id for p in CORPUS}) == len(CORPUS)


# --- files: syntax errors ----------------------------------------------------------

SYNTAX = [
    pytest.param(
        "plan.json",
        '{"plan_id": "p",\n "steps": [\n  {"id": "a" "command": "echo"}\n ]}',
        "3:14",
        "Expecting ',' delimiter",
        "fix the JSON syntax (is a comma missing?)",
        id="json-missing-comma",
    ),
    pytest.param(
        "plan.json",
        '{"plan_id": "p", "steps": [],}',
        "1:30",
        "Expecting property name",
        "fix the JSON syntax",
        id="json-trailing-comma",
    ),
    pytest.param("plan.json", "", "1:1", "the file is empty", "write a plan", id="json-empty"),
    pytest.param(
        "plan.yaml",
        "plan_id: p\nsteps:\n  - id: a\n   command: echo\n",
        "4:4",
        "expected <block end>",
        "fix the YAML syntax",
        id="yaml-bad-indent",
    ),
    pytest.param(
        "plan.yml",
        "plan_id: p\nsteps:\n  - id: a\n    command: [echo\n",
        "5:1",
        "expected ',' or ']'",
        "fix the YAML syntax",
        id="yml-unclosed-flow",
    ),
    pytest.param(
        "plan.toml",
        'plan_id = "p"\n[[steps]]\nid = "a"\ncommand = \n',
        "4:11",
        "Invalid value",
        "fix the TOML syntax",
        id="toml-missing-value",
    ),
]


@pytest.mark.parametrize(("name", "text", "path", "message", "hint"), SYNTAX)
def test_syntax_error_is_located_by_line_and_column(
    tmp_path: Path, name: str, text: str, path: str, message: str, hint: str
) -> None:
    """A syntax error raises PlanError with one problem located as ``line:col``."""
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as info:
        validate(file)
    assert info.value.source == str(file)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.path == path
    assert problem.message.startswith("syntax error: ")
    assert message in problem.message
    assert problem.hint is not None
    assert hint in problem.hint
    assert info.value.exit_code == 2


def test_missing_file_raises_plan_error(tmp_path: Path) -> None:
    """A plan path that does not exist raises PlanError naming the file."""
    missing = tmp_path / "nope.json"
    with pytest.raises(PlanError) as info:
        validate(missing)
    (problem,) = info.value.problems
    assert problem.path == "$"
    assert problem.message == f"plan file not found: {missing}"
    assert problem.hint == "check the path"


def test_duplicate_json_keys_are_reported(tmp_path: Path) -> None:
    """A key repeated in a JSON object is an error located at that key."""
    file = tmp_path / "dup.json"
    file.write_text(
        '{"plan_id": "p", "plan_id": "q", "steps": [{"id": "a", "command": "echo"}]}',
        encoding="utf-8",
    )
    result = validate(file)
    assert not result.ok
    (problem,) = result.errors
    assert problem.path == "$.plan_id"
    assert problem.message == "key 'plan_id' appears more than once"
    assert problem.hint == "keep one of them"


def test_duplicate_json_key_inside_step_is_located(tmp_path: Path) -> None:
    """A key repeated inside a step is reported at that step's field."""
    file = tmp_path / "dup.json"
    file.write_text(
        '{"plan_id": "p", "steps": [{"id": "a", "command": "echo", "command": "true"}]}',
        encoding="utf-8",
    )
    (problem,) = validate(file).errors
    assert problem.path == "$.steps[0].command"
    assert problem.message == "key 'command' appears more than once"


def test_duplicate_json_key_inside_step_names_the_step(tmp_path: Path) -> None:
    """A key repeated inside a step names that step's id."""
    file = tmp_path / "dup.json"
    file.write_text(
        '{"plan_id": "p", "steps": [{"id": "a", "command": "echo", "command": "true"}]}',
        encoding="utf-8",
    )
    (problem,) = validate(file).errors
    assert problem.step_id == "a"


def test_duplicate_yaml_keys_are_reported(tmp_path: Path) -> None:
    """A key repeated in a YAML mapping is reported like a repeated JSON key."""
    file = tmp_path / "dup.yaml"
    file.write_text(
        "plan_id: p\nplan_id: q\nsteps:\n  - id: a\n    command: echo\n", encoding="utf-8"
    )
    result = validate(file)
    assert [p.path for p in result.errors] == ["$.plan_id"]


def test_missing_steps_message_matches_other_missing_fields() -> None:
    """A missing 'steps' reads like every other missing field."""
    (problem,) = validate({"plan_id": "p"}).errors
    assert problem.message == "missing required field 'steps'"


def test_bad_env_value_is_located_at_its_key() -> None:
    """A non-string env value is reported at ``env.NAME``."""
    (problem,) = validate(_plan(_step(env={"LEVEL": 3}))).errors
    assert problem.path == "$.steps[0].env.LEVEL"


# --- all at once -------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    """A plan with seven different mistakes reports all seven in one pass."""
    doc = _plan(
        _step("build", comand="make"),
        _step("test", retries="x", depends_on=["buidl"]),
        _step("build"),
        _step("deploy", when="sometimes", args=["${TARGET}"]),
        stepz=[],
    )
    result = validate(doc)
    assert not result.ok
    located = sorted((p.path, p.step_id) for p in result.errors)
    assert located == [
        ("$.steps[0].comand", "build"),
        ("$.steps[1].depends_on[0]", "test"),
        ("$.steps[1].retries", "test"),
        ("$.steps[2].id", "build"),
        ("$.steps[3].args[0]", "deploy"),
        ("$.steps[3].when", "deploy"),
        ("$.stepz", None),
    ]
    assert result.warnings == ()


def test_missing_plan_id_does_not_hide_other_problems() -> None:
    """A missing plan_id is reported together with an empty command and an undefined variable."""
    doc = {"steps": [_step(command="", args=["${X}"])]}
    paths = sorted(p.path for p in validate(doc).errors)
    assert paths == ["$", "$.steps[0].args[0]", "$.steps[0].command"]


def test_plan_error_lists_every_problem() -> None:
    """raise_for_errors raises a PlanError whose text counts and lists every problem."""
    result = validate(_plan(_step(retries=-1), _step("b", depends_on=["zz"])))
    with pytest.raises(PlanError) as info:
        result.raise_for_errors()
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("invalid plan (2 problems)")
    assert "$.steps[1].depends_on[0] (step 'b'): unknown dependency 'zz'" in str(info.value)


# --- warnings ----------------------------------------------------------------------


def test_variable_spliced_into_shell_script_is_a_warning() -> None:
    """``sh -c "... ${X}"`` warns (but the plan is still ok) and suggests ``"$X"``."""
    result = validate(
        _plan(_step(command="sh", args=["-c", "echo ${X}"]), variables={"X": "hello"})
    )
    assert result.ok
    assert result.errors == ()
    (warning,) = result.warnings
    assert warning.path == "$.steps[0].args[1]"
    assert warning.step_id == "a"
    assert "'${X}' is spliced into a shell script" in warning.message
    assert warning.hint is not None
    assert 'use "$X" instead' in warning.hint


def test_combined_shell_flags_are_recognised() -> None:
    """``/bin/bash -ec SCRIPT`` is recognised as a shell script too."""
    result = validate(
        _plan(_step(command="/bin/bash", args=["-ec", "echo ${X}"]), variables={"X": "1"})
    )
    assert result.ok
    assert [w.path for w in result.warnings] == ["$.steps[0].args[1]"]


def test_literal_dollar_brace_in_shell_script_is_not_a_warning() -> None:
    """``$${X}`` in a shell script is a literal, so nothing is spliced and nothing warns."""
    result = validate(_plan(_step(command="sh", args=["-c", "echo $${X}"])))
    assert result.ok
    assert result.problems == ()


def test_variable_in_plain_argument_is_not_a_warning() -> None:
    """A variable in an ordinary argument (not a shell script) draws no warning."""
    result = validate(_plan(_step(command="sh", args=["script.sh", "${X}"]), variables={"X": "1"}))
    assert result.ok
    assert result.problems == ()


def test_shell_option_with_value_before_c_still_warns() -> None:
    """``bash -o pipefail -c "echo ${X}"`` warns about the spliced variable."""
    result = validate(
        _plan(
            _step(command="bash", args=["-o", "pipefail", "-c", "echo ${X}"]),
            variables={"X": "1"},
        )
    )
    assert [w.path for w in result.warnings] == ["$.steps[0].args[3]"]


def test_command_with_space_is_a_warning() -> None:
    """A command containing a space warns that no shell runs it, and the plan is still ok."""
    result = validate(_plan(_step(command="echo hello")))
    assert result.ok
    (warning,) = result.warnings
    assert warning.path == "$.steps[0].command"
    assert warning.step_id == "a"
    assert "contains a space; planrun runs no shell" in warning.message
    assert warning.hint == "put the program in 'command' ('echo') and the rest in 'args'"


def test_dependency_listed_twice_is_a_warning() -> None:
    """A dependency listed twice warns at the second occurrence, and the plan is still ok."""
    result = validate(_plan(_step("a"), _step("b", depends_on=["a", "a"])))
    assert result.ok
    (warning,) = result.warnings
    assert warning.path == "$.steps[1].depends_on[1]"
    assert warning.step_id == "b"
    assert warning.message == "'a' is listed twice"
    assert warning.hint == "remove one"


# --- valid plans -------------------------------------------------------------------


def test_original_design_example_validates() -> None:
    """The example plan of the original design is valid and decodes as expected."""
    doc = {
        "plan_id": "TEST-001",
        "globals": {"max_concurrency": 1},
        "steps": [{"id": "echo", "command": "echo", "args": ["hello"], "depends_on": []}],
    }
    result = validate(doc)
    assert result.ok
    assert result.problems == ()
    assert result.plan == Plan(
        plan_id="TEST-001",
        globals=Globals(max_concurrency=1),
        steps=[Step(id="echo", command="echo", args=["hello"])],
    )


def test_given_variable_satisfies_null_default() -> None:
    """A variable with a null default is fine once given with ``--var``."""
    result = validate(_plan(_step(args=["${T}"]), variables={"T": None}), {"T": "x"})
    assert result.ok


def test_validate_accepts_a_plan_object() -> None:
    """validate() on a Plan round-trips to an equal Plan."""
    plan = Plan(plan_id="p", steps=[Step(id="a", command="echo", retries=2)])
    result = validate(plan)
    assert result.ok
    assert result.plan == plan


_JSON = """{
  "plan_id": "multi",
  "variables": {"WHO": "world", "N": 3},
  "globals": {"max_concurrency": 2, "env": {"MODE": "test"}},
  "steps": [
    {"id": "hello", "command": "echo", "args": ["hello", "${WHO}"], "timeout_sec": 1.5},
    {"id": "after", "command": "true", "depends_on": ["hello"], "retries": 2,
     "when": "all_done", "on_failure": "continue", "env": {"K": "v"}}
  ]
}
"""

_YAML = """
plan_id: multi
variables:
  WHO: world
  N: 3
globals:
  max_concurrency: 2
  env:
    MODE: test
steps:
  - id: hello
    command: echo
    args: [hello, "${WHO}"]
    timeout_sec: 1.5
  - id: after
    command: "true"
    depends_on: [hello]
    retries: 2
    when: all_done
    on_failure: continue
    env: {K: v}
"""

_TOML = """
plan_id = "multi"

[variables]
WHO = "world"
N = 3

[globals]
max_concurrency = 2
env = { MODE = "test" }

[[steps]]
id = "hello"
command = "echo"
args = ["hello", "${WHO}"]
timeout_sec = 1.5

[[steps]]
id = "after"
command = "true"
depends_on = ["hello"]
retries = 2
when = "all_done"
on_failure = "continue"
env = { K = "v" }
"""


def test_yaml_and_toml_decode_to_the_same_plan_as_json(tmp_path: Path) -> None:
    """The same plan written in JSON, YAML and TOML decodes to equal Plan objects."""
    plans = []
    for name, text in (("p.json", _JSON), ("p.yaml", _YAML), ("p.toml", _TOML)):
        file = tmp_path / name
        file.write_text(text, encoding="utf-8")
        result = validate(file)
        assert result.ok, result.problems
        assert result.source == str(file)
        assert result.base_dir == tmp_path.resolve()
        plans.append(result.plan)
    assert plans[0] is not None
    assert plans[0].steps[1].retries == 2
    assert plans[0].variables == {"WHO": "world", "N": 3}
    assert plans[0] == plans[1] == plans[2]


# --- step references and secrets ------------------------------------------------------


def test_step_refs_to_ancestors_are_valid() -> None:
    """A step may use the results of any ancestor, direct or transitive, in args/env/cwd."""
    doc = _plan(
        _step("my.step-1"),
        _step("b", depends_on=["my.step-1"], args=["${steps.my.step-1.outputs.sha}"]),
        _step(
            "c",
            depends_on=["b"],
            args=["--rc=${steps.b.exit_code}"],
            env={"SHA": "${steps.my.step-1.outputs.sha}"},
            cwd="${steps.my.step-1.outputs.DIR}",
        ),
    )
    result = validate(doc)
    assert result.ok
    assert result.problems == ()


def test_escaped_step_ref_is_a_literal_anywhere() -> None:
    """``$${steps...}`` is a literal, so it is fine in a command or globals too."""
    result = validate(
        _plan(_step(command="$${steps.a.exit_code}"), globals={"env": {"X": "$${steps.a}"}})
    )
    assert result.errors == ()


def test_every_bad_step_ref_in_one_template_is_reported() -> None:
    """Several bad step refs in one argument are each reported (a repeat only once)."""
    doc = _plan(
        _step(),
        _step("b", args=["${steps.a.exit_code}${steps.zz.exit_code}${steps.a.exit_code}"]),
    )
    messages = [p.message for p in validate(doc).errors]
    assert messages == [
        "'${steps.a.exit_code}': step 'a' is not an ancestor of 'b'",
        "'${steps.zz.exit_code}' names an unknown step 'zz'",
    ]


def test_step_ref_is_not_an_undefined_variable() -> None:
    """A step ref is never reported as an undefined variable."""
    result = validate(_plan(_step(), _step("b", depends_on=["a"], args=["${steps.a.exit_code}"])))
    assert not any("not defined" in p.message for p in result.problems)


def test_secret_references_count_as_defined() -> None:
    """``${SECRET}`` is defined by the plan's secrets list: no error."""
    doc = _plan(
        _step(env={"AUTH": "Bearer ${TOKEN}"}, cwd="${TOKEN}"),
        secrets=["TOKEN"],
        globals={"env": {"T": "${TOKEN}"}},
    )
    result = validate(doc)
    assert result.ok
    assert result.problems == ()


def test_given_secret_references_count_as_defined() -> None:
    """A secret named with ``--secret`` (validate's secrets) defines its name too."""
    doc = _plan(_step(env={"AUTH": "${TOKEN}"}))
    assert not validate(doc).ok
    assert validate(doc, secrets=["TOKEN"]).ok


def test_secret_on_a_command_line_is_only_a_warning() -> None:
    """A secret in args is valid but warns that the command line is readable."""
    result = validate(_plan(_step(args=["${TOKEN}"]), secrets=["TOKEN"]))
    assert result.ok
    (warning,) = result.warnings
    assert warning.path == "$.steps[0].args[0]"
    assert "secret 'TOKEN' is put on a command line" in warning.message


def test_given_secret_that_is_a_variable_is_an_error() -> None:
    """A ``--secret`` name that is also a ``--var`` is located at ``--secret NAME``."""
    result = validate(_plan(_step()), {"TOKEN": "x"}, secrets=["TOKEN"])
    (problem,) = result.errors
    assert problem.path == "--secret TOKEN"
    assert problem.message == "'TOKEN' is both a secret and a variable"


def test_given_secret_already_in_plan_is_reported_once() -> None:
    """A secret both in the plan and given is checked once, at the plan's entry."""
    result = validate(_plan(_step(), secrets=["T"], variables={"T": "v"}), secrets=["T"])
    assert [p.path for p in result.errors] == ["$.secrets[0]"]


def test_given_secret_bad_name_is_an_error() -> None:
    """A ``--secret`` name that is not a variable name is an error."""
    (problem,) = validate(_plan(_step()), secrets=["1T"]).errors
    assert problem.path == "--secret 1T"
    assert problem.message == "invalid secret name '1T'"


def test_lock_may_not_use_a_given_secret() -> None:
    """The lock name may not use a ``--secret`` either."""
    (problem,) = validate(_plan(_step(), globals={"lock": "${T}"}), secrets=["T"]).errors
    assert problem.path == "$.globals.lock"
    assert problem.message == "the lock name uses secret 'T'"


def test_lock_may_use_a_variable() -> None:
    """A lock name built from a variable is fine."""
    assert validate(_plan(_step(), variables={"ENV": "prod"}, globals={"lock": "d-${ENV}"})).ok


def test_lock_using_a_secret_twice_is_one_problem() -> None:
    """A secret repeated in the lock name is reported once, like other references."""
    result = validate(_plan(_step(), secrets=["T"], globals={"lock": "${T}-${T}"}))
    assert len(result.errors) == 1


def test_env_entry_shadowed_by_a_variable_is_a_warning() -> None:
    """A step env entry named like a variable has no effect (variables come last in the
    environment): a warning says so, located at the entry."""
    result = validate(
        _plan(
            _step("a"),
            _step("b", depends_on=["a"], env={"K": "${steps.a.outputs.v}"}),
            variables={"K": "default"},
        )
    )
    assert result.ok
    (warning,) = result.warnings
    assert warning.path == "$.steps[1].env.K"
    assert warning.step_id == "b"
    assert "has no effect" in warning.message


def test_env_entry_shadowed_by_a_secret_is_a_warning_unless_it_is_the_secret() -> None:
    """``"TOKEN": "${TOKEN}"`` is redundant but harmless; any other value warns."""
    same = validate(_plan(_step(env={"TOKEN": "${TOKEN}"}), secrets=["TOKEN"]))
    assert same.warnings == ()
    other = validate(_plan(_step(env={"TOKEN": "x"}), secrets=["TOKEN"]))
    assert [w.path for w in other.warnings] == ["$.steps[0].env.TOKEN"]
