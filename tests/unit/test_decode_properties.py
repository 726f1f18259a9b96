"""Property tests: no document and no ``--var`` makes decoding or validation fail with
anything but planrun's own errors (whose messages can always be printed).

Random documents (JSON, YAML and TOML text, and parsed data), random types in every
field of steps and globals, deep nesting, odd unicode (lone surrogates, NUL, control
characters), huge integers and non-finite floats. ``PLANRUN_FUZZ_EXAMPLES`` sets the
number of examples per test (default 200, bounded for CI; run it with 5000 locally to
hunt). No example database is written: a failure prints its reproducing example.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planrun.api import prepare
from planrun.errors import PlanrunError
from planrun.model import Globals, Step
from planrun.plan import parse_document

FUZZ = settings(
    max_examples=int(os.environ.get("PLANRUN_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ----------------------------------------------------------------------

#: Any code point, lone surrogates (category Cs) included.
ANY_CHAR = st.characters(exclude_categories=())
NASTY = [
    "\ud800",
    "\udcff",
    "a\udfffb",
    "\0",
    "a\0b",
    "abc\n",
    "a\r",
    "\x1b[31m",
    "\u202e",
    "\ufeff",
    "${X}",
    "${steps.a.outputs.x}",
    "${steps.a.exit_code}",
    "$${X}",
    "${",
    "${ \ud800}",
    "",
    " ",
    "a",
    "b",
    "sh",
    "-c",
    "[/]",
]
TEXT = st.text(ANY_CHAR, max_size=12) | st.sampled_from(NASTY)
IDS = st.sampled_from(["a", "b", "c", "a\n", "-a", "a b", "x" * 129]) | TEXT
#: Integers of more than 4300 digits (built by ``map``: Python cannot even repr them).
HUGE = st.sampled_from([4300, -4300, 5000]).map(lambda d: 10 ** abs(d) * (1 if d > 0 else -1))
EDGES = [0, 1, -1, 0.5, 255, 256, 1000, 1001, 2592000, 2592000.5, 2**63, -(2**63) - 1, 2**64]
NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(EDGES)
    | HUGE
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)


def _nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of alternating lists and objects, built without recursion."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


#: Around the depth limit (64): deeper data is in DEEPER, which json.dumps cannot write.
DEEP = st.integers(min_value=60, max_value=200).map(_nested)
DEEPER = st.integers(min_value=200, max_value=5000).map(_nested)
ANY_VALUE = JSONISH | DEEP

#: Values of the right shape, so that validation gets past the type checks.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "id": IDS,
    "command": TEXT,
    "name": TEXT,
    "args": st.lists(TEXT, max_size=4),
    "depends_on": st.lists(IDS, max_size=3),
    "env": st.dictionaries(TEXT, TEXT, max_size=3),
    "cwd": TEXT,
    "lock": TEXT,
    "retry_on_exit_codes": st.lists(NUMBERS, max_size=3),
    "success_exit_codes": st.lists(NUMBERS, max_size=3),
    "on_failure": st.sampled_from(["abort", "skip_dependents", "continue", "ABORT"]),
    "when": st.sampled_from(["all_success", "all_done", "one_failed", "none_failed", "x"]),
    "on_lock_conflict": st.sampled_from(["fail", "wait", "\ud800"]),
}


def _fields(struct: type[msgspec.Struct]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with any of ``struct``'s fields (plus, sometimes, unknown ones), each
    holding a plausible or an arbitrary value."""
    names = [f.encode_name for f in msgspec.structs.fields(struct)]
    optional = {n: PLAUSIBLE.get(n, NUMBERS) | ANY_VALUE for n in names}
    known = st.fixed_dictionaries({}, optional=optional)
    extra = st.dictionaries(TEXT, ANY_VALUE, max_size=2)
    return st.tuples(known, extra).map(lambda pair: {**pair[1], **pair[0]})


STEPS = st.tuples(IDS, TEXT, _fields(Step)).map(lambda t: {"id": t[0], "command": t[1], **t[2]})
PLANS = st.fixed_dictionaries(
    {"plan_id": TEXT | ANY_VALUE, "steps": st.lists(STEPS | ANY_VALUE, max_size=4)},
    optional={
        "variables": st.dictionaries(TEXT | st.sampled_from(["X", "Y"]), SCALARS, max_size=3)
        | ANY_VALUE,
        "globals": _fields(Globals) | ANY_VALUE,
        "secrets": st.lists(TEXT | st.sampled_from(["TOKEN"]), max_size=2) | ANY_VALUE,
        "metadata": ANY_VALUE,
        "version": TEXT | ANY_VALUE,
        "$schema": TEXT,
    },
)
DOCS = PLANS | ANY_VALUE
VARS = st.dictionaries(TEXT | st.sampled_from(["X", "Y", "PLAN_DIR"]), TEXT, max_size=3)


def _toml_value(value: Any) -> str:
    """``value`` as a TOML literal (None, unrepresentable in TOML, becomes ``""``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "9" * 5000 if abs(value) >= 10**4300 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return '""'


def _toml(doc: Any) -> str:
    """A TOML document for ``doc`` (top-level keys, then ``[[steps]]`` tables)."""
    if not isinstance(doc, dict):
        return f"x = {_toml_value(doc)}\n"
    lines = [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in doc.items() if k != "steps"]
    steps = doc.get("steps")
    for step in steps if isinstance(steps, list) else []:
        lines.append("[[steps]]")
        items = step.items() if isinstance(step, dict) else [("x", step)]
        lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in items]
    return "\n".join(lines) + "\n"


_HUGE_MARK = "\x00huge\x00"


def _no_huge(node: Any) -> Any:
    """``node`` with integers beyond 4300 digits (which json.dumps refuses) marked."""
    if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= 10**4300:
        return _HUGE_MARK
    if isinstance(node, list):
        return [_no_huge(v) for v in node]
    if isinstance(node, dict):
        return {k: _no_huge(v) for k, v in node.items()}
    return node


def _json(doc: Any) -> str:
    """``doc`` as JSON text (lone surrogates as ``\\ud800`` escapes, huge integers as
    5,000 digits)."""
    return json.dumps(_no_huge(doc)).replace(json.dumps(_HUGE_MARK), "9" * 5000)


YAML_SCALARS = [
    ".inf",
    "-.inf",
    ".nan",
    "2001-02-30",
    "2001-12-14t21:59:43.10-05:00",
    "!!binary aGk=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!python/object:os.system",
    "&x [*x]",
    "*nowhere",
    "0x" + "f" * 20000,
    "9" * 5000,
    "1_000",
    "190:20:30",
    "0b101",
    "~",
    "{? [a]: b}",
    '"\\ud800"',
    '"\\0"',
    "!!int abc",
    "!!float x",
    "[" * 3000 + "]" * 3000,
    "{<<: [1]}",
]
YAML_DOCS = st.tuples(
    st.sampled_from(YAML_SCALARS) | TEXT.map(json.dumps),
    st.sampled_from(["plan_id", "command", "timeout_sec", "retries", "env", "args", "id"]),
).map(
    lambda t: (
        f"plan_id: {t[0] if t[1] == 'plan_id' else 'p'}\n"
        "steps:\n"
        f"  - id: {t[0] if t[1] == 'id' else 'a'}\n"
        f"    command: {t[0] if t[1] == 'command' else 'echo'}\n"
        + (f"    {t[1]}: {t[0]}\n" if t[1] not in ("plan_id", "id", "command") else "")
    )
)
BRACKETS = st.tuples(st.integers(min_value=0, max_value=20000), st.sampled_from("[{")).map(
    lambda t: t[1] * t[0] + ("]" if t[1] == "[" else "}") * t[0]
)

# --- the properties ------------------------------------------------------------------


def _check(doc: Any, variables: dict[str, str] | None = None) -> None:
    """Validate and resolve ``doc``: only PlanrunError may come out, every message must
    encode as UTF-8 (it is printed), and a plan that passes must encode as JSON (it is
    stored)."""
    if isinstance(doc, str):  # prepare() reads a str as a path: test the path, too
        doc = {"plan_id": "p", "steps": [{"id": "a", "command": "true"}], "x": doc}
    try:
        prepared = prepare(doc, variables or {}, environ={})
    except PlanrunError as exc:
        str(exc).encode("utf-8")
        return
    msgspec.json.encode(prepared.plan)
    msgspec.json.encode(prepared.variables)
    for step in prepared.steps:
        msgspec.json.encode([step.argv, step.env, step.cwd])
    for problem in prepared.warnings:
        problem.render().encode("utf-8")


def _check_text(text: str, suffix: str) -> None:
    try:
        doc = parse_document(text, suffix, "plan" + suffix)
    except PlanrunError as exc:
        str(exc).encode("utf-8")
        return
    _check(doc)


@FUZZ
@given(DOCS, VARS)
def test_parsed_documents_give_only_planrun_errors(doc: Any, variables: dict[str, str]) -> None:
    _check(doc, variables)


@FUZZ
@given(DEEPER, st.sampled_from(["metadata", "variables", "globals", "steps", "plan_id"]))
def test_very_deep_data_gives_only_planrun_errors(deep: Any, field: str) -> None:
    _check({"plan_id": "p", "steps": [{"id": "a", "command": "true"}], field: deep})


@FUZZ
@given(DOCS, st.sampled_from([".json", ".yaml"]))
def test_json_and_yaml_text_gives_only_planrun_errors(doc: Any, suffix: str) -> None:
    _check_text(_json(doc), suffix)


@FUZZ
@given(DOCS)
def test_toml_text_gives_only_planrun_errors(doc: Any) -> None:
    _check_text(_toml(doc), ".toml")


@FUZZ
@given(YAML_DOCS)
def test_yaml_tags_and_odd_scalars_give_only_planrun_errors(text: str) -> None:
    _check_text(text, ".yaml")


@FUZZ
@given(
    DOCS.map(_json) | st.text(ANY_CHAR, max_size=200),
    st.integers(min_value=0, max_value=10**6),
    st.text(ANY_CHAR, max_size=8) | BRACKETS | st.sampled_from(['"', "\\", "\\ud800", "1e999"]),
    st.sampled_from([".json", ".yaml", ".yml", ".toml"]),
)
def test_mangled_text_gives_only_planrun_errors(
    text: str, at: int, insert: str, suffix: str
) -> None:
    """Any text with anything spliced in anywhere, read as any format."""
    at %= len(text) + 1
    _check_text(text[:at] + insert + text[at:], suffix)
