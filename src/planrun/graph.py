"""The step graph: dependents, topological levels and cycle paths. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["ancestors", "dependents", "downstream", "find_cycles", "levels"]


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
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in deps:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = [d for d in deps[node] if d in deps]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    order = {node: i for i, node in enumerate(deps)}
    cycles = []
    for component in components:
        members = set(component)
        if len(component) == 1 and component[0] not in deps[component[0]]:
            continue
        cycles.append(_cycle_in(min(members, key=order.__getitem__), members, deps))
    cycles.sort(key=lambda path: order[path[0]])
    return cycles


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


def levels(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Steps grouped by depth: level 0 has no dependencies, level n depends on < n.

    Requires known ids (validate first); raises ``ValueError`` on a cycle. Plan order
    is kept within a level. Linear in steps + edges (Kahn's algorithm).
    """
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
