"""The step graph: dependents, topological levels and cycle paths. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from .gcpause import paused_gc

__all__ = ["ancestors", "dependents", "downstream", "find_cycles", "level_count", "levels"]


def dependents(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Invert ``deps`` (step -> its dependencies) into step -> steps that depend on it.

    Lists keep plan order. Dependencies on unknown ids are ignored.
    """
    out: dict[str, list[str]] = {node: [] for node in deps}
    for node, node_deps in deps.items():
        for dep in dict.fromkeys(node_deps):
            if dep in out:
                out[dep].append(node)
    return out


def find_cycles(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected component, as a path ``[a, b, c, a]``.

    ``a -> b`` in the path means "a depends on b". Self-dependencies are reported as
    ``[a, a]``. Unknown dependency ids are ignored. Iterative (no recursion limit).
    """
    if _in_order(deps):
        return []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in deps:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        # Each node's dependencies are walked once, by one iterator kept on ``work``.
        work: list[tuple[str, Iterator[str]]] = [(root, iter(deps[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    if child not in deps:
                        continue
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(deps[child])))
                    break
                if child in on_stack and index[child] < low[node]:
                    low[node] = index[child]
            else:
                work.pop()
                if low[node] == index[node]:
                    component = _pop_component(stack, on_stack, node, deps)
                    if component:
                        components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
    if not components:
        return []
    order = {node: i for i, node in enumerate(deps)}
    cycles = []
    for component in components:
        members = set(component)
        cycles.append(_cycle_in(min(members, key=order.__getitem__), members, deps))
    cycles.sort(key=lambda path: order[path[0]])
    return cycles


def _in_order(deps: Mapping[str, Sequence[str]]) -> bool:
    """Whether every node comes after the (known) nodes it depends on: then the order
    is a topological one and there is no cycle. Most plans are written so; checking
    costs a set look-up per edge, where the search costs much more."""
    seen: set[str] = set()
    for node, node_deps in deps.items():
        if not seen.issuperset(node_deps) and any(d not in seen and d in deps for d in node_deps):
            return False
        seen.add(node)
    return True


def _pop_component(
    stack: list[str], on_stack: set[str], node: str, deps: Mapping[str, Sequence[str]]
) -> list[str]:
    """Pop the strongly connected component whose root is ``node``; an empty list when
    it holds no cycle (a single node that does not depend on itself)."""
    if stack[-1] == node:  # the common case, kept cheap: a single node
        stack.pop()
        on_stack.discard(node)
        return [node] if node in deps[node] else []
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
            return component


def _cycle_in(start: str, members: set[str], deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A shortest cycle through ``start`` inside one strongly connected component."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for dep in deps[node]:
                if dep not in members:
                    continue
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if dep not in parents:
                    parents[dep] = node
                    next_frontier.append(dep)
        frontier = next_frontier
    raise AssertionError("a strongly connected component always holds a cycle")


@paused_gc()  # a dict and a list per step: see planrun.gcpause
def levels(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Steps grouped by depth: level 0 has no dependencies, level n depends on < n.

    Requires known ids (validate first); raises ``ValueError`` on a cycle. Plan order
    is kept within a level. Linear in steps + edges (Kahn's algorithm).
    """
    in_order = _depths_in_order(deps)
    if in_order is not None:
        return _grouped(deps, in_order)
    waiting = {node: len(set(node_deps)) for node, node_deps in deps.items()}
    children = dependents(deps)
    depth: dict[str, int] = {}
    ready = [node for node, count in waiting.items() if count == 0]
    for node in ready:
        depth[node] = 0
    while ready:
        node = ready.pop()
        for child in children[node]:
            depth[child] = max(depth.get(child, 0), depth[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(depth) != len(deps) or any(waiting.values()):
        raise ValueError("graph has a cycle")
    return _grouped(deps, depth)


def level_count(deps: Mapping[str, Sequence[str]]) -> int:
    """``len(levels(deps))`` without grouping the steps (``validate`` prints only the
    count: grouping 100,000 steps was a few percent of its time)."""
    in_order = _depths_in_order(deps)
    if in_order is None:
        return len(levels(deps))
    return max(in_order.values(), default=-1) + 1


def _depths_in_order(deps: Mapping[str, Sequence[str]]) -> dict[str, int] | None:
    """Each node's depth, in one pass when every node comes after its dependencies
    (None when one does not: a dependency later in the plan, unknown, or a cycle)."""
    depth: dict[str, int] = {}
    get = depth.__getitem__
    try:
        for node, node_deps in deps.items():
            depth[node] = 1 + max(map(get, node_deps)) if node_deps else 0
    except KeyError:
        return None
    return depth


def _grouped(deps: Mapping[str, Sequence[str]], depth: Mapping[str, int]) -> list[list[str]]:
    """The nodes by depth, plan order kept within a level."""
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in deps:
        out[depth[node]].append(node)
    return out


def ancestors(deps: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Every node ``node`` depends on, directly or transitively (unknown ids ignored)."""
    return _reach(deps, deps.get(node, ()))


def downstream(deps: Mapping[str, Sequence[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` plus every node that depends on one of them, transitively."""
    return _reach(dependents(deps), roots)


def _reach(edges: Mapping[str, Sequence[str]], starts: Iterable[str]) -> set[str]:
    """``starts`` and every node reachable from them along ``edges``."""
    seen: set[str] = set()
    stack = list(starts)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(edges.get(current, ()))
    return seen
