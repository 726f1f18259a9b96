"""A big run's DAG collapsed by level: one box per level, its steps on request.

Above :data:`COLLAPSE_ABOVE` steps a node per step is unreadable (and a 10,000-step
SVG is megabytes): the run page shows one row per level (from
:func:`planrun.graph.levels`) with the level's step count, a bar stacked by state and
its failed steps named. Clicking a level asks the server for that level alone
(``/runs/ID/graph.svg?level=N``, :func:`render_level`): its steps as nodes, coloured
like the full graph (``svg.dag g.node``, so the page's script recolours them live).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from html import escape

from ..graph import levels
from .graph_svg import LABEL_CHARS, NODE_H, NODE_W, render_graph, short_label

__all__ = ["COLLAPSE_ABOVE", "render_dag", "render_level", "render_levels"]

#: Most steps drawn one node each; a bigger run's graph is collapsed by level.
COLLAPSE_ABOVE = 300
ROW_H = 34
BAR_X = 200
BAR_W = 400
WIDTH = 1040
PAD = 8
#: Failed steps named in a level's row at most (the level's own graph lists them all).
NAMED_FAILED = 4
#: Columns of nodes in an expanded level.
LEVEL_COLS = 6
GAP = 10
#: The order of the states in a stacked bar (the rest, e.g. pending, last).
STATE_ORDER = ("succeeded", "failed", "timed_out", "crashed", "running", "cancelled", "skipped")
_FAILED = frozenset({"failed", "timed_out", "crashed"})


def render_dag(deps: Mapping[str, Sequence[str]], states: Mapping[str, str]) -> str:
    """The run page's graph: every step (small runs) or one row per level (above
    :data:`COLLAPSE_ABOVE` steps, with a place for the expanded level)."""
    if len(deps) <= COLLAPSE_ABOVE:
        return render_graph(deps, states)
    return render_levels(deps, states) + '<div class="level-detail" id="level-detail"></div>'


def _stack(counts: Counter[str], total: int, y: int) -> str:
    """The level's bar: one rect per state, widths proportional to its step counts."""
    out, x = [], float(BAR_X)
    order = [s for s in STATE_ORDER if counts[s]] + sorted(set(counts) - set(STATE_ORDER))
    for state in order:
        width = BAR_W * counts[state] / total
        out.append(
            f'<rect class="seg state-{escape(state)}" x="{x:.1f}" y="{y + 9}" '
            f'width="{width:.1f}" height="14"><title>{counts[state]} {escape(state)}</title></rect>'
        )
        x += width
    return "".join(out)


def _failed_names(failed: list[str]) -> str:
    if not failed:
        return ""
    named = ", ".join(failed[:NAMED_FAILED])
    more = f" +{len(failed) - NAMED_FAILED} more" if len(failed) > NAMED_FAILED else ""
    return f"failed: {named}{more}"


def render_levels(deps: Mapping[str, Sequence[str]], states: Mapping[str, str]) -> str:
    """One row per level: ``level N · K steps``, the bar stacked by state, the counts,
    and the level's failed steps named. Rows are ``g.level[data-level=N]``."""
    tiers = levels(deps)
    height = PAD * 2 + ROW_H * len(tiers)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag levels" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="step graph by level">'
    ]
    for n, tier in enumerate(tiers):
        y = PAD + n * ROW_H
        counts = Counter(states.get(s, "pending") for s in tier)
        failed = [s for s in tier if states.get(s) in _FAILED]
        done = sum(v for k, v in counts.items() if k not in ("pending", "running"))
        cls = "level has-failed" if failed else "level"
        parts.append(
            f'<g class="{cls}" data-level="{n}" tabindex="0" role="button">'
            f"<title>level {n}: {len(tier)} steps; click for its steps</title>"
            f'<rect class="box" x="{PAD}" y="{y + 2}" width="{WIDTH - 2 * PAD}" '
            f'height="{ROW_H - 6}" rx="5"/>'
            f'<text x="{PAD + 8}" y="{y + 21}">level {n} · {len(tier)} steps</text>'
            f"{_stack(counts, len(tier), y)}"
            f'<text class="count" x="{BAR_X + BAR_W + 10}" y="{y + 21}">{done}/{len(tier)} done'
            f'</text><text class="failed" x="{BAR_X + BAR_W + 120}" y="{y + 21}">'
            f"{escape(_failed_names(failed))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_level(deps: Mapping[str, Sequence[str]], states: Mapping[str, str], level: int) -> str:
    """The steps of level ``level`` as nodes in a grid (their dependencies in each
    node's tooltip); empty string if there is no such level."""
    tiers = levels(deps)
    if not 0 <= level < len(tiers):
        return ""
    tier = tiers[level]
    rows = (len(tier) + LEVEL_COLS - 1) // LEVEL_COLS
    width = PAD * 2 + LEVEL_COLS * (NODE_W + GAP)
    height = PAD * 2 + rows * (NODE_H + GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag level-steps" data-level="{level}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="the steps of level {level}">'
    ]
    for i, step_id in enumerate(tier):
        row, col = divmod(i, LEVEL_COLS)
        x, y = PAD + col * (NODE_W + GAP), PAD + row * (NODE_H + GAP)
        state = states.get(step_id, "pending")
        label = short_label(step_id, LABEL_CHARS)
        after = ", ".join(deps.get(step_id, ())) or "nothing"
        sid = escape(step_id)
        parts.append(
            f'<g class="node state-{escape(state)}" data-step="{sid}" tabindex="0">'
            f"<title>{sid} ({escape(state)}) after {escape(after)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="5"/>'
            f'<text x="{x + 8}" y="{y + NODE_H // 2 + 4}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
