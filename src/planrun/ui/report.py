"""One run as a single self-contained HTML file (``planrun report``): the header, the
graph and the Gantt chart (the dashboard's own SVGs), the step table, and for each
step that failed, timed out or crashed the tail of its attempts' logs.

It opens from disk with no server: the dashboard's stylesheet is inlined, there is no
script, and a Content-Security-Policy forbids any request. The run is read through
:mod:`planrun.monitor` (logs from each attempt's ``log_path``, as ``data`` reads them);
nothing here imports Starlette. Every value is escaped where it is put into the page;
the store holds variables, outputs and logs masked already.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from .. import __version__, monitor
from ..events import utc_now
from .data import plan_deps, read_tail, run_summary, step_summary
from .gantt_svg import render_gantt
from .graph_levels import COLLAPSE_ABOVE, render_levels
from .graph_svg import render_graph
from .pages import state_badge, when

__all__ = ["TAIL_LINES", "RunReport", "load_report", "render_report"]

#: Lines of each failed attempt's log shown.
TAIL_LINES = 100
#: Step states whose logs the report shows.
FAILED = frozenset({"failed", "timed_out", "crashed"})
_CSS = Path(__file__).parent / "static" / "dashboard.css"
#: Nothing may be fetched: no script, no image, no font, no frame; inline styles only.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_EXTRA_CSS = """
main { max-width: 1400px; }
.fail-block { background: var(--card); border: 1px solid var(--line); margin: .8em 0;
  padding: .4em .8em; }
.fail-block h3 { margin: .2em 0; font-size: 1em; }
.fail-block pre.log { background: #0c111d; padding: .6em; }
footer { color: var(--muted); font-size: .85em; padding: 1em 1.2em; }
"""


@dataclass(frozen=True)
class RunReport:
    """What the report shows: the run and steps (``data`` shapes), the plan's edges,
    and step id -> its failed attempts' log tails (attempt, lines, note)."""

    run: dict[str, Any]
    steps: list[dict[str, Any]]
    deps: dict[str, list[str]]
    tails: dict[str, list[tuple[int, str, str | None]]]


async def load_report(session: monitor.Session, run_id: str) -> RunReport | None:
    """The run's report data, or None if the session's store has no such run."""
    progress = await session.progress(run_id)
    if progress is None:
        return None
    plan = await session.get_plan(run_id)
    run = run_summary(progress.run)
    run["progress_pct"] = progress.progress_pct
    tails: dict[str, list[tuple[int, str, str | None]]] = {}
    for step in progress.steps:
        if step.state.value not in FAILED:
            continue
        tails[step.step_id] = [_tail(a.attempt, a.log_path) for a in step.attempts]
    steps = [step_summary(s) for s in progress.steps]
    return RunReport(run, steps, plan_deps(plan, progress.steps), tails)


def _tail(attempt: int, log_path: str | None) -> tuple[int, str, str | None]:
    """(attempt, the last lines of its log, why not or that older lines were cut)."""
    if log_path is None:
        return attempt, "", "no log"
    text, problem, cut = read_tail(log_path, TAIL_LINES)
    note = problem or (f"the last {TAIL_LINES} lines" if cut else None)
    return attempt, text, note


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _duration(sec: float | None) -> str:
    return "" if sec is None else f"{sec:.1f}s"


def _header(run: dict[str, Any]) -> str:
    pct = run["progress_pct"]
    variables = "".join(
        f"<li><code>{_e(k)}</code> = <code>{_e(v)}</code></li>" for k, v in run["variables"].items()
    )
    reason = f'<p class="reason">{_e(run["reason"])}</p>' if run.get("reason") else ""
    return (
        f'<section class="run-head"><h1>run {_e(run["run_id"])}</h1>'
        f"<p>plan <b>{_e(run['plan_id'])}</b> · {state_badge(run['state'])} · exit "
        f"{_e(run['exit_code'])} · started {when(run['started_at'])} · ended "
        f"{when(run['ended_at'])} · {_duration(run['duration_sec'])} · "
        f"{run['steps_done']}/{run['step_count']} steps · owner {_e(run['owner_kind'])} "
        f"pid {_e(run['owner_pid'])} on {_e(run['owner_host'])}</p>"
        f'<div id="run-progress"><div class="bar state-{_e(run["state"])}" '
        f'role="progressbar" aria-valuenow="{pct}" aria-valuemin="0" aria-valuemax="100">'
        f'<div class="fill" style="width:{pct}%"></div><span class="pct">{pct}%</span>'
        f"</div></div>{reason}<details><summary>variables ({len(run['variables'])})"
        f"</summary><ul>{variables}</ul></details></section>"
    )


def _step_row(step: dict[str, Any]) -> str:
    attempts = " ".join(
        f'<span class="attempt state-{_e(a["state"])}">#{a["attempt"]} {_e(a["state"])}'
        f"{'' if a['exit_code'] is None else ' exit ' + _e(a['exit_code'])}"
        f" {_duration(a['duration_sec'])}</span>"
        for a in step["attempts"]
    )
    outputs = "".join(
        f"<div><code>{_e(k)}</code>=<code>{_e(v)}</code></div>"
        for k, v in (step.get("outputs") or {}).items()
    )
    name = step["name"] if step["name"] != step["step_id"] else ""
    return (
        f'<tr data-step="{_e(step["step_id"])}"><td><code>{_e(step["step_id"])}</code>'
        f"{'<br>' + _e(name) if name else ''}</td><td>{state_badge(step['state'])}</td>"
        f"<td>{attempts}</td><td>{_e(step['exit_code'])}</td>"
        f"<td>{_duration(step['duration_sec'])}</td><td>{outputs}</td>"
        f"<td>{_e(step.get('reason') or '')}</td></tr>"
    )


def _failures(report: RunReport) -> str:
    """Each failed step's attempts with their log tails (the last attempt open)."""
    if not report.tails:
        return ""
    reasons = {s["step_id"]: s.get("reason") for s in report.steps}
    blocks = []
    for step_id, tails in report.tails.items():
        parts = [f"<h3><code>{_e(step_id)}</code> {_e(reasons.get(step_id) or '')}</h3>"]
        for i, (attempt, text, note) in enumerate(tails):
            opened = " open" if i == len(tails) - 1 else ""
            extra = f" ({_e(note)})" if note else ""
            parts.append(
                f"<details{opened}><summary>attempt #{attempt} log{extra}</summary>"
                f'<pre class="log">{_e(text)}</pre></details>'
            )
        blocks.append(f'<div class="fail-block" data-step="{_e(step_id)}">{"".join(parts)}</div>')
    return f'<section id="failures"><h2>failures</h2>{"".join(blocks)}</section>'


def render_report(report: RunReport) -> str:
    """The whole HTML document of ``report``."""
    run = report.run
    states = {s["step_id"]: s["state"] for s in report.steps}
    # A node per step is unreadable (and megabytes) above COLLAPSE_ABOVE: one row per
    # level, as on the run page (a file on disk cannot expand a level on click).
    draw = render_levels if len(report.deps) > COLLAPSE_ABOVE else render_graph
    graph = draw(report.deps, states) or '<p class="empty">No steps.</p>'
    gantt = render_gantt(run, report.steps, run["ended_at"] or utc_now())
    rows = "".join(_step_row(s) for s in report.steps)
    body = (
        _header(run)
        + f'<section><h2>graph</h2><div class="graph" id="graph">{graph}</div></section>'
        + '<section><h2>timeline</h2><div class="gantt-box" id="gantt">'
        + (gantt or '<p class="empty">No attempt started.</p>')
        + "</div></section>"
        + _failures(report)
        + '<section><h2>steps</h2><table class="steps" id="steps"><thead><tr><th>step</th>'
        "<th>state</th><th>attempts</th><th>exit</th><th>duration</th><th>outputs</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
    # A stylesheet cannot end the <style> element: "</" never appears in it.
    css = (_CSS.read_text(encoding="utf-8") + _EXTRA_CSS).replace("</", "<\\/")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>run {_e(run['run_id'])} · planrun report</title>"
        f"<style>{css}</style></head>"
        f'<body><header class="top"><span class="brand">planrun</span>'
        f"<span>report of run {_e(run['run_id'])}</span></header><main>{body}</main>"
        f"<footer>planrun {_e(__version__)} · written {_e(utc_now())}</footer></body></html>\n"
    )
