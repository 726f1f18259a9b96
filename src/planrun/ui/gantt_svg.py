"""The run's attempts on a time axis (a Gantt chart), as an SVG drawn on the server.

One row per step (plan order), one bar per attempt from its start to its end (to
``now`` while it runs), coloured by the attempt's state: retries are the bars after the
first, their delays the gaps between them. Times are the stored UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any

from .graph_svg import short_label

__all__ = ["render_gantt"]

ROW_H = 22
BAR_H = 14
LABEL_W = 160
CHART_W = 800
PAD = 8
AXIS_H = 18
#: Tick spacings (seconds) tried in order: the first giving at most six ticks wins.
TICK_STEPS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
TICK_STEPS += (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: Shortest bar drawn (px): an attempt of a millisecond is still visible.
MIN_BAR = 2


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


def _ticks(span: float) -> list[float]:
    """About five round tick positions (seconds) over ``span`` seconds."""
    for step in TICK_STEPS:
        if span / step <= 6:
            return [round(i * step, 3) for i in range(int(span / step) + 1)]
    return [0.0]


def _label(sec: float) -> str:
    if sec and sec < 1:
        return f"{sec * 1000:.0f}ms"
    return f"{sec:g}s" if sec < 120 else f"{sec / 60:g}m"


def render_gantt(run: dict[str, Any], steps: Sequence[dict[str, Any]], now: str) -> str:
    """The SVG of ``steps``' attempts (``data`` shapes) against the run's start; ``now``
    (a UTC timestamp) ends the bars of running attempts. Empty if nothing started."""
    start = _ts(run["started_at"])
    attempts = [(s, a) for s in steps for a in s["attempts"] if a["started_at"]]
    if start is None or not attempts:
        return ""
    end_now = _ts(now) or start
    ends = [_ts(a["ended_at"]) or end_now for _, a in attempts]
    span = max(max(ends) - start, 0.001)
    scale = CHART_W / span
    height = AXIS_H + len(steps) * ROW_H + PAD
    width = LABEL_W + CHART_W + PAD * 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="attempts over time">'
    ]
    for tick in _ticks(span):
        x = LABEL_W + tick * scale
        parts.append(
            f'<line class="tick" x1="{x:.1f}" y1="{AXIS_H - 4}" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{x + 2:.1f}" y="{AXIS_H - 6}">{_label(tick)}</text>'
        )
    for row, step in enumerate(steps):
        y = AXIS_H + row * ROW_H
        label = escape(short_label(step["step_id"], 22))
        parts.append(f'<text class="step" x="{PAD}" y="{y + BAR_H}">{label}</text>')
        for a in step["attempts"]:
            begun = _ts(a["started_at"])
            if begun is None:
                continue
            x = LABEL_W + (begun - start) * scale
            w = max(((_ts(a["ended_at"]) or end_now) - begun) * scale, MIN_BAR)
            tip = f"{step['step_id']} #{a['attempt']} {a['state']}"
            if a["exit_code"] is not None:
                tip += f" exit {a['exit_code']}"
            sid = escape(step["step_id"])
            parts.append(
                f'<rect class="span state-{escape(a["state"])}" data-step="{sid}"'
                f' data-attempt="{a["attempt"]}" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" '
                f'height="{BAR_H}" rx="2"><title>{escape(tip)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)
