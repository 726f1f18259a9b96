"""A plan's page: its run history, a duration-over-time chart, its success rate and
per-step median/p95 durations with failure counts, so a slow or flaky step is a trend.

Data comes from :func:`planrun.monitor.plan_history` only (the last
:data:`planrun.monitor.PLAN_HISTORY_LIMIT` runs, newest first); the statistics here are
pure functions of those records. ``/plans/{plan_id}`` is the page,
``/api/plans/{plan_id}`` its JSON twin (both 404 for a plan that never ran).
"""

from __future__ import annotations

import math
import statistics
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import monitor
from ..model import RunState, StepState
from ..records import StepRecord
from . import pages

__all__ = ["ROUTES", "percentile", "plan_stats", "render_chart"]

#: Step states counted as a failure of that step.
_FAILED_STEP = frozenset({StepState.FAILED, StepState.TIMED_OUT, StepState.CRASHED})
#: Run states that count in the success rate (a running run has no outcome yet).
_FINISHED = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.CRASHED})


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank ``pct`` percentile (0 < pct <= 100) of ``values``: the smallest
    value with at least ``pct`` % of the values at or below it; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _step_stats(history: list[monitor.RunSteps]) -> list[dict[str, Any]]:
    """Per step id (in the newest run's plan order, then older ids): runs it ran in,
    failures, and the median/p95 of its finished durations (``duration_sec``)."""
    durations: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    ran: dict[str, int] = {}
    for entry in history:
        for step in entry.steps:
            durations.setdefault(step.step_id, [])
            failures.setdefault(step.step_id, 0)
            ran.setdefault(step.step_id, 0)
            if step.state in _FAILED_STEP:
                failures[step.step_id] += 1
            if step.attempts:
                ran[step.step_id] += 1
            if step.duration_sec is not None and _finished(step):
                durations[step.step_id].append(step.duration_sec)
    return [
        {
            "step_id": sid,
            "runs": ran[sid],
            "failures": failures[sid],
            "median_sec": statistics.median(d) if (d := durations[sid]) else None,
            "p95_sec": percentile(durations[sid], 95),
        }
        for sid in durations
    ]


def _finished(step: StepRecord) -> bool:
    return step.state in _FAILED_STEP or step.state is StepState.SUCCEEDED


def plan_stats(plan_id: str, history: list[monitor.RunSteps]) -> dict[str, Any]:
    """The plan page's data (the JSON twin): ``runs`` newest first, ``success_rate``
    (succeeded / finished runs, None if none finished) and ``steps``' statistics."""
    runs = [
        {
            "run_id": h.run.run_id,
            "state": str(h.run.state),
            "started_at": h.run.started_at,
            "duration_sec": h.run.duration_sec,
            "steps_done": h.run.steps_done,
            "step_count": h.run.step_count,
        }
        for h in history
    ]
    finished = [h for h in history if h.run.state in _FINISHED]
    ok = sum(h.run.state is RunState.SUCCEEDED for h in finished)
    return {
        "plan_id": plan_id,
        "limit": monitor.PLAN_HISTORY_LIMIT,
        "runs": runs,
        "finished": len(finished),
        "succeeded": ok,
        "success_rate": ok / len(finished) if finished else None,
        "steps": _step_stats(history),
    }


_W, _H, _PAD = 720, 200, 40


def render_chart(runs: list[dict[str, Any]]) -> str:
    """Run durations over time as an SVG: oldest left, one point per finished run,
    failed (or cancelled/crashed) runs drawn as red crosses; '' if none has a duration."""
    points = [r for r in reversed(runs) if r["duration_sec"] is not None]
    if not points:
        return ""
    top = max(r["duration_sec"] for r in points) or 1.0
    step = (_W - 2 * _PAD) / max(1, len(points) - 1)
    marks, line = [], []
    for i, r in enumerate(points):
        x = _PAD + i * step if len(points) > 1 else _W / 2
        y = _H - _PAD - (r["duration_sec"] / top) * (_H - 2 * _PAD)
        line.append(f"{x:.1f},{y:.1f}")
        tip = f"<title>{_e(r['run_id'])}: {_e(r['state'])} {r['duration_sec']:.2f}s</title>"
        if r["state"] == RunState.SUCCEEDED:
            marks.append(f'<circle class="pt ok" cx="{x:.1f}" cy="{y:.1f}" r="4">{tip}</circle>')
        else:
            d = f"M{x - 4:.1f},{y - 4:.1f}l8,8m0,-8l-8,8"
            marks.append(f'<path class="pt bad state-{_e(r["state"])}" d="{d}">{tip}</path>')
    axis = (
        f'<line class="axis" x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}"/>'
        f'<line class="axis" x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}"/>'
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{top:.1f}s</text>'
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end">0</text>'
        f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle">runs, oldest to newest</text>'
    )
    return (
        f'<svg class="plan-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" role="img" aria-label="run durations">{axis}'
        f'<polyline class="trend" fill="none" points="{" ".join(line)}"/>{"".join(marks)}</svg>'
    )


def _sec(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def _history_table(runs: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr data-run="{_e(r["run_id"])}"><td><a href="/runs/{quote(r["run_id"])}">'
        f"{_e(r['run_id'])}</a></td><td>{pages.state_badge(r['state'])}</td>"
        f"<td>{pages.when(r['started_at'])}</td><td>{_sec(r['duration_sec'])}</td>"
        f"<td>{r['steps_done']}/{r['step_count']}</td></tr>"
        for r in runs
    )
    return (
        '<section><h2>runs</h2><table class="runs" id="plan-runs"><thead><tr><th>run</th>'
        "<th>state</th><th>started</th><th>duration</th><th>steps</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _steps_table(steps: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr data-step="{_e(s["step_id"])}"><td><code>{_e(s["step_id"])}</code></td>'
        f'<td class="median">{_sec(s["median_sec"])}</td><td class="p95">{_sec(s["p95_sec"])}'
        f'</td><td class="failures{" bad" if s["failures"] else ""}">{s["failures"]}</td>'
        f"<td>{s['runs']}</td></tr>"
        for s in steps
    )
    return (
        '<section><h2>steps</h2><table class="steps" id="plan-steps"><thead><tr><th>step</th>'
        "<th>median</th><th>p95</th><th>failures</th><th>runs</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def plan_html(stats: dict[str, Any], csrf: str) -> str:
    """The plan page for :func:`plan_stats`' data."""
    rate = stats["success_rate"]
    shown = "n/a" if rate is None else f"{rate * 100:.0f}%"
    head = (
        f'<section class="run-head"><h1>plan {_e(stats["plan_id"])}</h1>'
        f'<p>success rate <b id="success-rate">{shown}</b> ({stats["succeeded"]} of '
        f"{stats['finished']} finished runs) · the last {len(stats['runs'])} runs (at most "
        f'{stats["limit"]}) · <a href="/?plan={quote(stats["plan_id"])}">in the runs list</a>'
        "</p></section>"
    )
    chart = render_chart(stats["runs"]) or '<p class="empty">No finished run yet.</p>'
    body = (
        head
        + f'<section><h2>duration over time</h2><div class="chart">{chart}</div></section>'
        + _steps_table(stats["steps"])
        + _history_table(stats["runs"])
        + '<link rel="stylesheet" href="/static/views.css">'
    )
    return pages.layout(f"plan {stats['plan_id']}", body, csrf)


async def _stats(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    plan_id = request.path_params["plan_id"]
    state_dir = request.app.state.ctx.state_dir
    history = await monitor.plan_history(plan_id, state_dir=state_dir)
    if not history:
        message = f"no runs of plan '{plan_id}' in {state_dir}"
        if request.url.path.startswith("/api/"):
            return None, JSONResponse({"error": message, "status": 404}, status_code=404)
        page = pages.error_page(404, message, csrf=request.app.state.ctx.guard.csrf)
        return None, HTMLResponse(page, status_code=404)
    return plan_stats(plan_id, history), None


async def plan_page(request: Request) -> Response:
    stats, error = await _stats(request)
    if error is not None:
        return error
    assert stats is not None
    return HTMLResponse(plan_html(stats, request.app.state.ctx.guard.csrf))


async def api_plan(request: Request) -> Response:
    stats, error = await _stats(request)
    return error if error is not None else JSONResponse(stats)


ROUTES = [Route("/plans/{plan_id}", plan_page), Route("/api/plans/{plan_id}", api_plan)]
