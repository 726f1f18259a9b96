"""The run's DAG as an SVG, laid out by level on the server (no JS layout library).

Level ``k`` (from :func:`planrun.graph.levels`) is column ``k``; a step's row is its
place in its level. An edge between neighbouring columns is one curve through the gap
between them; a longer edge never passes behind the nodes of the columns in between: it
drops into the gap after its source's column, runs along the empty lane between two
rows (the lane just above its target's row), and rises into the gap before its target.

Nodes carry ``data-step`` and a ``state-*`` class, so the page's
script recolours them live. The failing path is drawn in red: the edges into a failed
step and from it into the steps it kept from running (skipped or cancelled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from ..graph import levels

__all__ = ["edge_path", "render_graph", "short_label"]

NODE_W = 150
NODE_H = 30
COL_GAP = 60
ROW_GAP = 14
PAD = 10
#: Characters of a step id shown in a node (the full id is in its tooltip).
LABEL_CHARS = 20

_FAILED = frozenset({"failed", "timed_out", "crashed"})
_BLOCKED = frozenset({"skipped", "cancelled"})


def _positions(deps: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, int]]:
    """step id -> (x, y) of its node's top-left corner."""
    out: dict[str, tuple[int, int]] = {}
    for col, tier in enumerate(levels(deps)):
        for row, step_id in enumerate(tier):
            out[step_id] = (PAD + col * (NODE_W + COL_GAP), PAD + row * (NODE_H + ROW_GAP))
    return out


def _edge_class(source: str, target: str) -> str:
    """``edge`` plus ``fail-path`` when the edge is on the failing path."""
    if target in _FAILED or (source in _FAILED and target in _BLOCKED):
        return "edge fail-path"
    return "edge"


def edge_path(source: tuple[int, int], target: tuple[int, int]) -> tuple[str, bool]:
    """(the SVG path data of the edge from the node at ``source`` to the node at
    ``target`` (top-left corners), whether it is a long edge routed around columns)."""
    x1, y1 = source[0] + NODE_W, source[1] + NODE_H // 2
    x2, y2 = target[0], target[1] + NODE_H // 2
    if x2 - x1 <= COL_GAP:  # neighbouring columns: the gap is free
        mid = (x1 + x2) // 2
        return f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}", False
    lane = target[1] - ROW_GAP // 2  # the empty lane above the target's row
    g1, g2 = x1 + COL_GAP // 2, x2 - COL_GAP // 2
    q = COL_GAP // 4
    return (
        f"M{x1},{y1} C{x1 + q},{y1} {g1 - q},{lane} {g1},{lane} L{g2},{lane} "
        f"C{g2 + q},{lane} {x2 - q},{y2} {x2},{y2}"
    ), True


def short_label(step_id: str, chars: int) -> str:
    """``step_id`` in at most ``chars`` characters. An instance id keeps its end, which
    tells the instances apart (``test[…python=3.12]``), other ids their start."""
    if len(step_id) <= chars:
        return step_id
    base = step_id.partition("[")[0]
    if base != step_id and len(base) + 3 < chars:
        return f"{base}[…{step_id[len(base) + 2 - chars :]}"
    return step_id[: chars - 1] + "…"


def render_graph(
    deps: Mapping[str, Sequence[str]],
    states: Mapping[str, str],
    marks: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """The SVG of the graph ``deps`` (step id -> its dependencies) with each node
    coloured by ``states`` (step id -> state). ``marks`` gives some nodes extra
    classes and their own tooltip text: step id -> (classes, title), both unescaped.
    Empty string for an empty graph."""
    pos = _positions(deps)
    if not pos:
        return ""
    width = max(x for x, _ in pos.values()) + NODE_W + PAD
    height = max(y for _, y in pos.values()) + NODE_H + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="step graph">'
    ]
    for step_id, step_deps in deps.items():
        tx, ty = pos[step_id]
        for dep in step_deps:
            path, long = edge_path(pos[dep], (tx, ty))
            cls = _edge_class(states.get(dep, ""), states.get(step_id, ""))
            mark = ' data-long="1"' if long else ""  # (the script rewrites the class)
            parts.append(
                f'<path class="{cls}" data-from="{escape(dep)}" data-to="{escape(step_id)}"'
                f'{mark} d="{path}"/>'
            )
    for step_id, (x, y) in pos.items():
        state = states.get(step_id, "pending")
        label = short_label(step_id, LABEL_CHARS)
        sid = escape(step_id)
        classes, title = (marks or {}).get(step_id, ("", f"{step_id} ({state})"))
        parts.append(
            f'<g class="node state-{escape(state)}{escape(classes)}" data-step="{sid}" '
            f'tabindex="0"><title>{escape(title)}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5"/>'
            f'<text x="{x + 8}" y="{y + NODE_H // 2 + 4}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
