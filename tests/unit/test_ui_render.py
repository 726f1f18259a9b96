"""The dashboard's server-side drawings: the step graph and the attempts' time axis."""

from __future__ import annotations

import re
from typing import Any

from planrun.ui import pages
from planrun.ui.gantt_svg import render_gantt
from planrun.ui.graph_svg import NODE_H, NODE_W, render_graph

DEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def _nodes(svg: str) -> dict[str, tuple[int, int, str]]:
    """step id -> (x, y, state) of each node."""
    found = re.findall(
        r'<g class="node state-(\w+)" data-step="([^"]+)".*?<rect x="(\d+)" y="(\d+)"', svg
    )
    return {step: (int(x), int(y), state) for state, step, x, y in found}


def test_nodes_are_laid_out_by_level_in_plan_order() -> None:
    nodes = _nodes(render_graph(DEPS, {}))
    assert nodes["a"][0] < nodes["b"][0] == nodes["c"][0] < nodes["d"][0]
    assert nodes["b"][1] < nodes["c"][1]  # plan order within a level
    assert {state for _, _, state in nodes.values()} == {"pending"}
    width = int(re.search(r'width="(\d+)"', render_graph(DEPS, {})).group(1))  # type: ignore[union-attr]
    assert width >= nodes["d"][0] + NODE_W
    assert nodes["b"][1] + NODE_H <= nodes["c"][1]  # no overlap


def test_the_failing_path_is_marked() -> None:
    states = {"a": "succeeded", "b": "failed", "c": "succeeded", "d": "skipped"}
    svg = render_graph(DEPS, states)
    bad = set(re.findall(r'class="edge fail-path" data-from="(\w)" data-to="(\w)"', svg))
    assert bad == {("a", "b"), ("b", "d")}
    assert 'class="edge" data-from="c" data-to="d"' in svg


def test_labels_are_escaped_and_cut() -> None:
    svg = render_graph({"x" * 40: []}, {"x" * 40: "<script>"})
    assert "<script>" not in svg
    assert "x" * 19 + "…" in svg
    assert f"<title>{'x' * 40} (&lt;script&gt;)</title>" in svg
    assert render_graph({}, {}) == ""


def _attempt(n: int, state: str, start: str | None, end: str | None) -> dict[str, Any]:
    return {"attempt": n, "state": state, "exit_code": None, "started_at": start, "ended_at": end}


def test_the_time_axis_has_a_bar_per_attempt_and_running_ones_end_now() -> None:
    run = {"started_at": "2026-01-01T00:00:00.000000Z"}
    steps: list[dict[str, Any]] = [
        {
            "step_id": "flaky",
            "attempts": [
                _attempt(1, "failed", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"),
                _attempt(2, "running", "2026-01-01T00:00:05Z", None),
            ],
        },
        {"step_id": "later", "attempts": []},
    ]
    svg = render_gantt(run, steps, now="2026-01-01T00:00:10Z")
    bars = re.findall(
        r'class="span state-(\w+)" data-step="flaky" data-attempt="(\d)" x="([\d.]+)" '
        r'y="\d+" width="([\d.]+)"',
        svg,
    )
    assert [(s, n) for s, n, _, _ in bars] == [("failed", "1"), ("running", "2")]
    (_, _, x1, w1), (_, _, x2, w2) = bars
    # 10 s over the chart: attempt 1 is 1 s wide, attempt 2 runs from 5 s to now (5 s)
    assert abs(float(w2) / float(w1) - 5) < 0.01
    assert float(x2) - float(x1) > float(w1)  # the retry delay is a gap
    assert 'data-step="later" data-attempt' not in svg
    assert render_gantt(run, [{"step_id": "x", "attempts": []}], now="2026-01-01T00:00:10Z") == ""


def test_big_runs_draw_the_time_axis_once() -> None:
    """Above GANTT_LIVE_MAX_STEPS steps the page does not redraw the chart live."""

    def live(n: int) -> str:
        detail = {"run": {"started_at": None}, "steps": [{"attempts": []}] * n, "timeline": []}
        found = re.search(r'id="gantt" data-live="(\w+)"', pages._timeline(detail))
        assert found is not None
        return found.group(1)

    assert live(pages.GANTT_LIVE_MAX_STEPS) == "on"
    assert live(pages.GANTT_LIVE_MAX_STEPS + 1) == "off"


def test_short_labels_keep_what_tells_instances_apart() -> None:
    """A cut instance id keeps its end (the cells differ there), any other id its start."""
    from planrun.ui.graph_svg import short_label

    assert short_label("test[suite=unit,python=3.11]", 19) == "test[…,python=3.11]"
    assert len(short_label("test[suite=unit,python=3.11]", 19)) == 19
    assert short_label("averyveryverylongstepname", 10) == "averyvery…"
    assert short_label("short", 19) == "short"


def test_when_shows_a_stored_time_as_people_read_it_and_keeps_the_exact_one() -> None:
    from planrun.ui.pages import when

    shown = when("2026-12-01T18:57:18.005653Z")
    assert shown == (
        '<time datetime="2026-12-01T18:57:18.005653Z" title="2026-12-01T18:57:18.005653Z">'
        "2026-12-01 18:57:18 UTC</time>"
    )
    assert when(None) == "-"
    assert "&lt;" in when("<b>")  # escaped, whatever a store holds
