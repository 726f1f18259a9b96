"""The fast JSON path of ``plan/read`` (msgspec) reads every document exactly as the
exact path (``json.loads`` with the duplicate-key hook) does: same data, same
duplicate keys found, same errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planrun.errors import PlanError
from planrun.plan.read import _NOT_FAST, _json_fast, _pairs_hook, duplicate_keys, parse_document

# Keys and strings full of what could confuse a count of ':' (and escapes of it).
_TEXT = st.text(
    alphabet=st.sampled_from(["a", ":", '"', "\\", " ", "é", "\n", "{", "]"]), max_size=4
)
_KEYS = st.sampled_from(["a", "b", "a:b", ":", ""])


def _scalar(value: Any) -> str:
    return json.dumps(value)


@st.composite
def _json(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON text whose objects may repeat a key (json.dumps cannot write that)."""
    if depth > 3 or draw(st.booleans()):
        leaf = draw(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)
        )
        text = _scalar(leaf)
        if isinstance(leaf, str) and draw(st.booleans()):
            text = json.dumps(leaf, ensure_ascii=True).replace(":", "\\u003a")
        return text
    if draw(st.booleans()):
        items = draw(st.lists(_json(depth + 1), max_size=3))
        return "[" + ", ".join(items) + "]"
    pairs = draw(st.lists(st.tuples(_KEYS, _json(depth + 1)), max_size=4))
    return "{" + ", ".join(f"{_scalar(k)}: {v}" for k, v in pairs) + "}"


@given(_json())
def test_the_fast_path_reads_what_the_exact_path_reads(text: str) -> None:
    exact = json.loads(text, object_pairs_hook=_pairs_hook)
    read = parse_document(text)
    assert read == exact
    assert list(duplicate_keys(read)) == list(duplicate_keys(exact))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"k": "x:y", "k": 1, "z": "::"}',
        '{"a": {"b": 1, "b": {"c": ":"}}}',
        # An escaped ':' would make up for the dropped key's: never taken fast.
        '{"a": 1, "a": 2, "b": "\\u003a"}',
    ],
)
def test_a_repeated_key_is_never_read_fast(text: str) -> None:
    assert _json_fast(text) is _NOT_FAST
    assert list(duplicate_keys(parse_document(text)))


@pytest.mark.parametrize("text", ["NaN", "[1e400]", "1" * 5000, '{"a": 1} x', "\ufeff{}"])
def test_what_msgspec_refuses_takes_the_exact_path(text: str) -> None:
    assert _json_fast(text) is _NOT_FAST
    try:
        exact: Any = json.loads(text, object_pairs_hook=_pairs_hook)
    except ValueError:
        with pytest.raises(PlanError):
            parse_document(text)
    else:
        assert repr(parse_document(text)) == repr(exact)  # NaN != NaN


def test_a_plain_plan_is_read_fast() -> None:
    text = '{"plan_id": "p", "steps": [{"id": "a", "command": "echo", "args": ["x:y"]}]}'
    assert _json_fast(text) == json.loads(text)
