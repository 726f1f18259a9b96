"""``plan.checks.check_graph`` looks for cycles only when a step depends on one after
it: whatever the order, it reports every cycle the graph holds (and only those)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planrun.graph import find_cycles
from planrun.model import Step
from planrun.plan.checks import check_graph

_IDS = st.sampled_from(["a", "b", "c", "d", "e"])


_DEPS = st.lists(_IDS, max_size=3)
#: A plan with no problem but maybe a cycle (the case the shortcut is for): each id
#: once, no step on itself, no dependency listed twice.
_CLEAN = st.lists(_IDS, min_size=1, unique=True).flatmap(
    lambda ids: st.tuples(
        *(st.tuples(st.just(i), st.lists(_IDS.filter(i.__ne__), unique=True)) for i in ids)
    ).map(list)
)
#: Anything: repeated ids, self and repeated dependencies too.
_ANY = st.lists(st.tuples(_IDS, _DEPS), min_size=1, max_size=6)


@given(st.one_of(_CLEAN, _ANY))
def test_every_cycle_is_reported_whatever_the_order(spec: list[tuple[str, list[str]]]) -> None:
    steps = [Step(id=sid, command="true", depends_on=deps) for sid, deps in spec]
    problems = check_graph([s.id for s in steps], steps)
    reported = [p.message for p in problems if p.message.startswith("dependency cycle")]
    first: dict[str, list[str]] = {}
    for sid, deps in spec:  # the graph of the first step of each id, as check_graph has it
        first.setdefault(sid, [d for d in deps if d != sid])
    expected = [c for c in find_cycles(first) if len(c) > 2 or c[0] != c[-1]]
    assert reported == ["dependency cycle: " + " -> ".join(c) for c in expected]
