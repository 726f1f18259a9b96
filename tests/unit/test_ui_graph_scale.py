"""The graph at scale: long edges routed around the nodes in between, a big graph
collapsed by level, a level's steps drawn alone."""

from __future__ import annotations

import re

from planrun.ui.graph_levels import COLLAPSE_ABOVE, render_dag, render_level, render_levels
from planrun.ui.graph_svg import NODE_H, NODE_W, render_graph


def _rects(svg: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r'data-step="([^"]+)".*?<rect x="(\d+)" y="(\d+)"', svg)
    return {step: (int(x), int(y)) for step, x, y in found}


def _points(d: str) -> list[tuple[float, float]]:
    """Every coordinate pair of a path (end and control points)."""
    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def test_a_long_edge_does_not_pass_behind_the_nodes_in_between() -> None:
    # a -> b -> c -> d, and a -> d: the a->d edge spans two columns holding b and c,
    # all on row 0, so a straight curve would run behind b and c.
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": ["c", "a"], "x": ["a"]}
    svg = render_graph(deps, {})
    rects = _rects(svg)
    edge = re.search(r'data-from="a" data-to="d" data-long="1" d="([^"]+)"', svg)
    assert edge is not None, svg
    points = _points(edge.group(1))
    for step in ("b", "c", "x"):
        x, y = rects[step]
        inside = [p for p in points if x <= p[0] <= x + NODE_W and y <= p[1] <= y + NODE_H]
        assert not inside, (step, inside)
    # its horizontal run is straight (an L segment), in the lane above d's row
    horizontal = re.search(r"L(-?[\d.]+),(-?[\d.]+)", edge.group(1))
    assert horizontal is not None
    assert float(horizontal.group(2)) < rects["d"][1]
    # neighbouring columns keep their one curve
    assert re.search(r'data-from="a" data-to="b" d="M', svg)


def _big(levels: int, width: int) -> dict[str, list[str]]:
    return {
        f"s{lv}-{i}": ([] if lv == 0 else [f"s{lv - 1}-{i}"])
        for lv in range(levels)
        for i in range(width)
    }


def test_a_big_graph_is_collapsed_by_level_with_counts_and_failed_steps_named() -> None:
    deps = _big(5, 80)
    assert len(deps) > COLLAPSE_ABOVE
    states = {s: "succeeded" for s in deps}
    states["s2-7"] = "failed"
    states["s3-7"] = states["s4-7"] = "skipped"
    svg = render_dag(deps, states)
    assert 'class="dag levels"' in svg
    assert 'id="level-detail"' in svg
    assert 'class="node' not in svg  # no node per step
    assert re.findall(r'<g class="level[^"]*" data-level="(\d+)"', svg) == list("01234")
    level2 = re.search(r'data-level="2".*?</g>', svg)
    assert level2 is not None
    assert "has-failed" in svg.split('data-level="2"')[0].rsplit("<g", 1)[1]
    assert "failed: s2-7" in level2.group(0)
    assert "<title>79 succeeded</title>" in level2.group(0)
    assert "<title>1 failed</title>" in level2.group(0)
    # a small graph is still drawn whole
    assert 'class="node' in render_dag(_big(2, 3), {})


def test_many_failed_steps_in_a_level_are_counted_not_all_named() -> None:
    deps = _big(1, 400)
    svg = render_levels(deps, {s: "failed" for s in deps})
    assert "failed: s0-0, s0-1, s0-2, s0-3 +396 more" in svg


def test_a_level_alone_has_its_steps_as_nodes_and_escapes_ids() -> None:
    deps = {"<a>": [], "b": ["<a>"], "c": ["<a>"]}
    svg = render_level(deps, {"b": "running"}, 1)
    assert set(_rects(svg)) == {"b", "c"}
    assert 'class="node state-running" data-step="b"' in svg
    assert "after &lt;a&gt;" in svg
    assert "<a>" not in svg
    assert render_level(deps, {}, 2) == ""
    assert render_level(deps, {}, -1) == ""
