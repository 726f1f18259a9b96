"""The limits of a plan document (README "Limits"): what is refused, where, and that
what is within them still passes."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from planrun.api import run_plan
from planrun.errors import PlanError
from planrun.gcpause import paused_gc
from planrun.model import (
    MAX_BACKOFF,
    MAX_RETRIES,
    MAX_SECONDS,
    STEP_ID_PATTERN,
    VAR_NAME_PATTERN,
    Step,
    json_schema,
)
from planrun.plan import MAX_DEPTH, MAX_PLAN_BYTES, MAX_VALUES, parse_document, validate
from planrun.plan.read import check_limits, duplicate_keys, quick_scan
from planrun.policy import retry_delay

OK_STEPS = "steps: [{id: a, command: 'true'}]\n"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


def _plan(**fields: Any) -> dict[str, Any]:
    return {"plan_id": "p", "steps": [{"id": "a", "command": "true"}], **fields}


def test_depth_limit_counts_the_plan_object_as_level_one() -> None:
    """``metadata`` is level 2: it may hold objects down to level MAX_DEPTH, no deeper."""
    assert validate(_plan(metadata=_nested(MAX_DEPTH - 1))).ok
    result = validate(_plan(metadata=_nested(MAX_DEPTH)))
    assert [p.path for p in result.errors] == ["$.metadata" + ".x" * (MAX_DEPTH - 1)]
    assert "nested deeper than 64 levels" in result.errors[0].message


@pytest.mark.parametrize("value", ["&x [*x]", "&x {a: *x}", "&x [[*x]]"])
def test_self_referencing_yaml_alias_is_refused_not_endless(value: str) -> None:
    """An object that contains itself: refused by the YAML loader or, should one build
    it, by the depth bound (the walk would never end)."""
    with pytest.raises(PlanError):
        validate(parse_document("plan_id: p\n" + OK_STEPS + f"metadata: {value}\n", ".yaml"))
    looped: list[Any] = []
    looped.append(looped)
    result = validate(_plan(metadata=looped))
    assert len(result.errors) == 1
    assert "nested deeper than" in result.errors[0].message


def test_yaml_alias_bomb_stops_at_the_value_count() -> None:
    """Nine levels of ten aliases each would be 10**9 values: refused after MAX_VALUES."""
    lines = ["plan_id: p", OK_STEPS.rstrip(), "metadata:", '  l0: &l0 ["x"]']
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    doc = parse_document("\n".join(lines) + "\n", ".yaml")
    result = validate(doc)
    assert [p.message for p in result.errors] == [f"the plan holds more than {MAX_VALUES:,} values"]


def test_oversized_text_and_file_are_refused(tmp_path: Path) -> None:
    """Larger than MAX_PLAN_BYTES: refused, and a file is never read past the limit
    (/dev/zero would fill the memory)."""
    with pytest.raises(PlanError, match="larger than 16 MiB"):
        parse_document(" " * (MAX_PLAN_BYTES + 1), ".json")
    with pytest.raises(PlanError, match="larger than 16 MiB"):
        validate("/dev/zero")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("a\0b.json", "cannot read plan file"),
        (chr(0xD800) + ".json", "not valid UTF-8"),
        (chr(0xDCFF) + ".json", "not valid UTF-8"),  # from undecodable argv bytes
    ],
)
def test_unusable_plan_paths_are_plan_errors(path: str, message: str) -> None:
    """Paths an API caller (or undecodable argv bytes) can produce: a PlanError that
    can be printed."""
    with pytest.raises(PlanError, match=message) as caught:
        validate(path)
    str(caught.value).encode("utf-8")


@pytest.mark.parametrize(
    ("suffix", "text", "where"),
    [
        (".json", '{"plan_id": "p", "steps": [], "n": ' + "9" * 5000 + "}", "1:36"),
        (".yaml", "plan_id: p\nn: 0x" + "f" * 20000 + "\n" + OK_STEPS, None),
        (".yaml", "plan_id: 2001-02-30\n" + OK_STEPS, "1:10"),
        (".yaml", "plan_id: p\nx: {? [a]: b}\n" + OK_STEPS, None),
        (".toml", 'plan_id = "p"\nn = ' + "9" * 5000 + "\n", "2:5"),
    ],
)
def test_values_python_cannot_convert_are_located(
    suffix: str, text: str, where: str | None
) -> None:
    """Numbers beyond 4300 digits (or hex ones that make such a number), impossible
    dates and list keys: a PlanError, located when the parser knows where."""
    try:
        doc = parse_document(text, suffix)
    except PlanError as exc:
        problems = exc.problems
    else:
        problems = validate(doc).errors
    assert len(problems) == 1, problems
    if where is not None:
        assert problems[0].path == where


def test_patterns_match_ids_in_full() -> None:
    """``\\Z``: a trailing newline is not ignored, as ``$`` would ignore it."""
    for pattern, good in ((STEP_ID_PATTERN, "a.b-c_1"), (VAR_NAME_PATTERN, "A_1")):
        assert re.search(pattern, good)
        assert not re.search(pattern, good + "\n")


def test_schema_patterns_are_ecma_262() -> None:
    """The committed schema is read by editors (ECMA-262 regexes, where ``\\Z`` is not an
    anchor): its patterns end in ``$``."""
    patterns: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            patterns.extend(v for k, v in node.items() if k == "pattern" and isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json_schema())
    assert patterns
    assert all(p.endswith("$") and "\\Z" not in p for p in patterns)


def test_retry_delay_cannot_overflow_at_the_maxima() -> None:
    """``100.0 ** 999`` overflows a float: the delay is capped at MAX_SECONDS instead."""
    step = Step(
        id="a",
        command="true",
        retries=MAX_RETRIES,
        retry_delay_sec=1,
        retry_backoff=MAX_BACKOFF,
        retry_jitter=0,
    )
    assert retry_delay(step, MAX_RETRIES) == MAX_SECONDS
    assert retry_delay(step, 2) == MAX_BACKOFF
    idle = Step(id="a", command="true", retries=MAX_RETRIES, retry_backoff=MAX_BACKOFF)
    assert retry_delay(idle, MAX_RETRIES) == 0


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"X": "a\udcffb"}, "not valid UTF-8"),
        ({"X": "a\0b"}, "NUL"),
        ({"X\n": "1"}, "invalid variable name"),
    ],
)
def test_run_plan_refuses_unusable_variables(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    """``run_plan(variables=...)`` checks values as ``--var`` does: before the store."""
    state = tmp_path / "state"
    plan = _plan(variables={"X": "1"})
    with pytest.raises(PlanError, match=message):
        anyio.run(functools.partial(run_plan, plan, variables, state_dir=state))
    assert not state.exists()


# --- issue 16: the path-free scan agrees with check_limits ----------------------------


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(),
    st.sampled_from(["\ud800", "x\udfffy", "é", ""]),
    st.text(max_size=5),
)
_DOCS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.just("\ud800")), inner, max_size=4),
    ),
    max_leaves=30,
)


@given(_DOCS)
def test_quick_scan_never_passes_what_check_limits_refuses(doc: object) -> None:
    """ "Certainly within the limits" implies no problem; anything else is left to the
    full check, which locates each problem."""
    fits, _ = quick_scan(doc)
    if fits:
        assert check_limits(doc) == []


def test_quick_scan_sees_depth_and_duplicate_keys() -> None:
    deep: object = "x"
    for _ in range(70):
        deep = [deep]
    assert quick_scan(deep) == (False, True)
    assert check_limits(deep) != []
    doc = parse_document('{"a": 1, "b": {"c": 1, "c": 2}}')
    assert quick_scan(doc) == (True, True)
    assert list(duplicate_keys(doc)) == [("$.b.c", "c")]
    assert quick_scan(parse_document('{"a": [1, "x"], "b": {"c": 1}}')) == (True, False)
    # Integers beyond Python's str conversion limit (hypothesis cannot show them).
    for huge in ([10**4400], {"a": -(10**4400)}):
        assert quick_scan(huge)[0] is False
        assert check_limits(huge) != []


def test_paused_gc_leaves_the_processs_own_frozen_objects_frozen() -> None:
    """A service that called ``gc.freeze()`` (before forking workers, say) keeps its
    frozen objects frozen through planrun's pauses. In a process of its own: in the
    test process, something else froze objects during this check once (seen under
    pytest-xdist, not identified), and a pause of another thread ending at that
    instant could also thaw them."""
    import subprocess
    import sys

    script = (
        "import gc\n"
        "from planrun.gcpause import paused_gc\n"
        "gc.freeze()\n"
        "frozen = gc.get_freeze_count()\n"
        "with paused_gc():\n"
        "    pass\n"
        "print(frozen, gc.get_freeze_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert before > 0
    assert after == before


def test_paused_gc_restores_the_collector_as_it_was() -> None:
    """Resumed after the block when it was on; left off when it was off."""
    import gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_quick_scan_counts_and_bounds_the_lists_of_strings_it_does_not_stack() -> None:
    """A list of strings inside an object is checked where it is found: its values
    still count, and its level still counts toward the depth."""
    assert quick_scan({"a": ["x"] * (MAX_VALUES - 2)}) == (True, False)
    assert quick_scan({"a": ["x"] * (MAX_VALUES - 1)})[0] is False
    assert check_limits({"a": ["x"] * (MAX_VALUES - 1)}) != []
    for depth, fits in ((MAX_DEPTH, True), (MAX_DEPTH + 1, False)):
        doc: object = ["x"]
        for _ in range(depth - 1):
            doc = {"k": doc}
        assert quick_scan(doc)[0] is fits
        assert (check_limits(doc) == []) is fits
