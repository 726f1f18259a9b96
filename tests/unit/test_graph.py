"""The step graph: dependents, topological levels and cycle paths."""

from __future__ import annotations

import itertools
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planrun.graph import dependents, find_cycles, level_count, levels

Deps = dict[str, list[str]]


def _chain(n: int) -> Deps:
    """``n0 <- n1 <- ... <- n{n-1}``: each node depends on the previous one."""
    return {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(n)}


# --- dependents ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        pytest.param({}, {}, id="empty"),
        pytest.param({"a": []}, {"a": []}, id="single"),
        pytest.param({"a": [], "b": ["a"]}, {"a": ["b"], "b": []}, id="edge"),
        pytest.param(
            {"a": [], "c": ["a"], "b": ["a"]}, {"a": ["c", "b"], "c": [], "b": []}, id="plan-order"
        ),
        pytest.param({"a": [], "b": ["a", "a"]}, {"a": ["b"], "b": []}, id="duplicate-dep"),
        pytest.param({"a": ["ghost"]}, {"a": []}, id="unknown-dep-ignored"),
        pytest.param(
            {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
            {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []},
            id="diamond",
        ),
    ],
)
def test_dependents_inverts_the_graph(deps: Deps, expected: Deps) -> None:
    """dependents() maps each step to the steps depending on it, in plan order, once each."""
    assert dependents(deps) == expected


# --- levels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        pytest.param({}, [], id="empty"),
        pytest.param({"a": []}, [["a"]], id="single"),
        pytest.param({"c": [], "a": [], "b": []}, [["c", "a", "b"]], id="independent-plan-order"),
        pytest.param(
            {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]},
            [["a"], ["b"], ["c"], ["d"]],
            id="linear-chain",
        ),
        pytest.param(
            {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
            [["a"], ["b", "c"], ["d"]],
            id="diamond",
        ),
        pytest.param(
            {"z": [], "y": ["z"], "x": [], "w": ["x"]},
            [["z", "x"], ["y", "w"]],
            id="two-chains-plan-order",
        ),
        pytest.param(
            {"a": [], "b": ["a"], "c": ["b"], "d": ["a", "c"]},
            [["a"], ["b"], ["c"], ["d"]],
            id="longest-path-wins",
        ),
        pytest.param({"a": [], "b": ["a", "a"]}, [["a"], ["b"]], id="duplicate-dep"),
        pytest.param(
            {"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []},
            [["a"], ["c", "b"], ["d"]],
            id="dependents-listed-first",
        ),
    ],
)
def test_levels_groups_by_depth(deps: Deps, expected: list[list[str]]) -> None:
    """levels() groups steps by dependency depth, keeping plan order within a level."""
    assert levels(deps) == expected
    assert level_count(deps) == len(expected)


@pytest.mark.parametrize(
    "deps",
    [
        pytest.param({"a": ["a"]}, id="self-loop"),
        pytest.param({"a": ["b"], "b": ["a"]}, id="two-cycle"),
        pytest.param({"r": [], "a": ["r", "c"], "b": ["a"], "c": ["b"]}, id="cycle-below-root"),
    ],
)
def test_levels_raises_on_cycle(deps: Deps) -> None:
    """levels() raises ValueError when the graph has a cycle."""
    with pytest.raises(ValueError, match="cycle"):
        levels(deps)


def test_levels_on_long_chain() -> None:
    """A 5,000-step chain gives 5,000 levels of one step each."""
    result = levels(_chain(5000))
    assert len(result) == 5000
    assert result[0] == ["n0"]
    assert result[-1] == ["n4999"]


# --- find_cycles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deps", "expected"),
    [
        pytest.param({}, [], id="empty"),
        pytest.param({"a": [], "b": ["a"], "c": ["a", "b"]}, [], id="no-cycle"),
        pytest.param({"a": ["ghost"]}, [], id="unknown-dep-ignored"),
        pytest.param({"a": ["a"]}, [["a", "a"]], id="self-loop"),
        pytest.param({"a": ["b"], "b": ["a"]}, [["a", "b", "a"]], id="two-cycle"),
        pytest.param(
            {"a": ["b"], "b": ["c"], "c": ["a"]}, [["a", "b", "c", "a"]], id="three-cycle"
        ),
        pytest.param(
            {"a": ["c"], "b": ["a"], "c": ["b"]}, [["a", "c", "b", "a"]], id="three-cycle-reversed"
        ),
        pytest.param(
            {"x": [], "c": ["b"], "b": ["c"]}, [["c", "b", "c"]], id="starts-at-first-in-plan"
        ),
        pytest.param(
            {"a": ["b"], "b": ["a"], "m": [], "c": ["d"], "d": ["c"]},
            [["a", "b", "a"], ["c", "d", "c"]],
            id="two-separate-cycles",
        ),
        pytest.param(
            {"a": ["a"], "b": ["c"], "c": ["b"], "d": ["ghost"]},
            [["a", "a"], ["b", "c", "b"]],
            id="self-loop-and-two-cycle",
        ),
        pytest.param(
            {"a": ["b"], "b": ["c", "a"], "c": ["a"]}, [["a", "b", "a"]], id="shortest-cycle"
        ),
        pytest.param(
            {"root": [], "a": ["root", "b"], "b": ["a"], "leaf": ["a"]},
            [["a", "b", "a"]],
            id="cycle-with-tails",
        ),
    ],
)
def test_find_cycles(deps: Deps, expected: list[list[str]]) -> None:
    """find_cycles() returns one shortest cycle path per cycle, ordered by plan order."""
    assert find_cycles(deps) == expected


def test_find_cycles_long_chain_without_recursion() -> None:
    """A 5,000-step chain (deeper than the recursion limit) has no cycle and no RecursionError."""
    deps = _chain(5000)
    assert len(deps) > sys.getrecursionlimit()
    assert find_cycles(deps) == []


def test_find_cycles_long_ring() -> None:
    """A 5,000-step ring is found as one cycle through every step."""
    n = 5000
    deps = {f"n{i}": [f"n{(i + 1) % n}"] for i in range(n)}
    (cycle,) = find_cycles(deps)
    assert len(cycle) == n + 1
    assert cycle[:3] == ["n0", "n1", "n2"]
    assert cycle[-2:] == ["n4999", "n0"]


def test_find_cycles_long_chain_into_a_cycle() -> None:
    """A cycle at the end of a 5,000-step chain is found without recursion."""
    deps = _chain(5000)
    deps["n0"] = ["n4999"]
    (cycle,) = find_cycles(deps)
    assert cycle[0] == "n0"
    assert cycle[1] == "n4999"
    assert len(cycle) == 5001


# --- issue 16: linear on 100,000 steps, answers unchanged -----------------------------


@st.composite
def _graphs(draw: st.DrawFn) -> dict[str, list[str]]:
    """Small graphs in any order, with unknown ids, repeats and self-loops."""
    n = draw(st.integers(1, 9))
    names = [f"n{i}" for i in range(n)]
    pool = [*names, "unknown"]
    return {name: draw(st.lists(st.sampled_from(pool), max_size=4)) for name in names}


def _reaches(deps: Deps, start: str, goal: str) -> bool:
    seen, stack = set(), list(deps.get(start, ()))
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node in deps and node not in seen:
            seen.add(node)
            stack.extend(deps[node])
    return False


@given(_graphs())
def test_find_cycles_finds_one_cycle_per_cyclic_component(deps: Deps) -> None:
    """Each cycle is a real path; together they cover every node on a cycle, one per
    strongly connected component (the order-based shortcut must not hide any)."""
    cyclic = {n for n in deps if _reaches(deps, n, n)}
    cycles = find_cycles(deps)
    for path in cycles:
        assert path[0] == path[-1]
        assert all(b in deps[a] for a, b in itertools.pairwise(path))
    heads = {path[0] for path in cycles}
    assert heads <= cyclic
    for node in cyclic:  # in the component of exactly one reported cycle's head
        same = [
            h for h in heads if h == node or (_reaches(deps, h, node) and _reaches(deps, node, h))
        ]
        assert len(same) == 1, (node, cycles)


@given(_graphs())
def test_levels_puts_each_node_after_its_dependencies(deps: Deps) -> None:
    """Acyclic graphs (unknown ids dropped) in any order: the one-pass and the general
    path agree with the definition of depth."""
    known = {n: [d for d in ds if d in deps] for n, ds in deps.items()}
    if find_cycles(known):
        with pytest.raises(ValueError, match="cycle"):
            levels(known)
        return
    depth = {n: i for i, level in enumerate(levels(known)) for n in level}
    for node, node_deps in known.items():
        assert depth[node] == (1 + max(depth[d] for d in node_deps) if node_deps else 0)


def test_find_cycles_of_a_wide_join_is_linear() -> None:
    """One step depending on 50,000 others (a full join): each edge is walked once
    (it used to rebuild the list of a node's dependencies at every one of them)."""
    deps: Deps = {f"a{i}": [] for i in range(50_000)}
    deps["join"] = list(deps)
    deps = {"join": deps.pop("join"), **deps}  # the join first: the search path
    assert find_cycles(deps) == []
