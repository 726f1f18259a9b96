"""The dashboard's HTML, rendered on the server from :mod:`planrun.ui.data`'s shapes.

Every value is escaped (``html.escape``) where it is put into the page; the page's
script (``static/dashboard.js``) only updates what is already drawn. Nothing secret
reaches here: the store holds variables and outputs masked.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote

from ..events import utc_now
from ..model import RunState
from .gantt_svg import render_gantt
from .graph_levels import render_dag
from .paging import event_items, first_rows

__all__ = [
    "when",
    "error_page",
    "gantt_fragment",
    "layout",
    "message_page",
    "run_page",
    "runs_page",
    "state_badge",
    "step_row",
]


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def when(iso: str | None) -> str:
    """A stored UTC time as people read it, ``2026-12-01 18:57:18 UTC``, in a
    ``<time>`` whose ``datetime`` and tooltip keep the exact value ("-": none)."""
    if not iso:
        return "-"
    shown = iso[:19].replace("T", " ") + " UTC" if len(iso) >= 19 else iso
    return f'<time datetime="{_e(iso)}" title="{_e(iso)}">{_e(shown)}</time>'


def layout(title: str, body: str, csrf: str, live: str = "") -> str:
    """The page around ``body``; ``live`` is the URL of the page's live feed."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{_e(csrf)}">'
        f"<title>{_e(title)} · planrun</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script>'
        '<script src="/static/scale.js" defer></script></head>'
        f'<body data-live="{_e(live)}"><header class="top"><a href="/" class="brand">planrun</a>'
        f"<span>{_e(title)}</span></header><main>{body}</main></body></html>"
    )


def _bar(pct: int, state: str) -> str:
    return (
        f'<div class="bar state-{_e(state)}" role="progressbar" aria-valuenow="{pct}" '
        'aria-valuemin="0" '
        f'aria-valuemax="100"><div class="fill" style="width:{pct}%"></div>'
        f'<span class="pct">{pct}%</span></div>'
    )


def _duration(sec: float | None) -> str:
    if sec is None:
        return ""
    if sec < 60:
        return f"{sec:.1f}s"
    minutes, seconds = divmod(int(sec), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def state_badge(state: str) -> str:
    return f'<span class="state state-{_e(state)}">{_e(state)}</span>'


def run_row(run: dict[str, Any]) -> str:
    """One row of the runs table (also what the script rebuilds from ``/api/runs``)."""
    rid = _e(run["run_id"])
    return (
        f'<tr data-run="{rid}"><td><a href="/runs/{quote(run["run_id"])}">{rid}</a></td>'
        f'<td><a href="/plans/{quote(run["plan_id"])}">{_e(run["plan_id"])}</a></td>'
        f"<td>{state_badge(run['state'])}</td>"
        f"<td>{_bar(run['progress_pct'], run['state'])}</td><td>{when(run['started_at'])}</td>"
        f"<td>{_duration(run['duration_sec'])}</td>"
        f"<td>{run['steps_done']}/{run['step_count']}</td>"
        f'<td class="trigger">{_e(run.get("trigger_summary") or "")}</td></tr>'
    )


def _options(values: Iterable[str], chosen: str | None, blank: str) -> str:
    out = [f'<option value="">{_e(blank)}</option>']
    for value in values:
        sel = " selected" if value == chosen else ""
        out.append(f'<option value="{_e(value)}"{sel}>{_e(value)}</option>')
    return "".join(out)


def runs_page(
    runs: list[dict[str, Any]],
    *,
    state_dir: str,
    state: str | None,
    plan_id: str | None,
    plans: list[str],
    csrf: str,
    panel: str = "",
) -> str:
    """The runs list, newest first, with its filters (``panel``: HTML drawn above
    them, already escaped: the served plans under ``planrun serve --ui``)."""
    filters = (
        '<form class="filters" method="get" action="/">'
        f'<label>state <select name="state">{_options(RunState, state, "any")}</select></label>'
        f'<label>plan <select name="plan">{_options(plans, plan_id, "any")}</select></label>'
        '<button type="submit">filter</button></form>'
    )
    if not (runs or state or plan_id):
        note = f'<p class="empty">No runs yet in {_e(state_dir)}.</p>'
    elif not runs:
        note = '<p class="empty">No runs match.</p>'
    else:
        note = ""
    rows = "".join(run_row(r) for r in runs)
    table = (
        '<table class="runs"><thead><tr><th>run</th><th>plan</th><th>state</th>'
        "<th>progress</th><th>started</th><th>duration</th><th>steps</th>"
        "<th>trigger</th></tr></thead>"
        f'<tbody id="runs-body">{rows}</tbody></table>'
    )
    query = f"state={quote(state or '')}&plan={quote(plan_id or '')}"
    return layout("runs", panel + filters + note + table, csrf, live=f"/live/runs?{query}")


def _header(run: dict[str, Any], owned: bool) -> str:
    variables = "".join(
        f"<li><code>{_e(k)}</code> = <code>{_e(v)}</code></li>" for k, v in run["variables"].items()
    )
    owner = f"{run['owner_kind']} pid {run['owner_pid']} on {run['owner_host']}"
    reason = f'<p class="reason" id="run-reason">{_e(run.get("reason"))}</p>'
    # Runs recorded before the executor was have none: nothing is shown.
    name = run.get("executor")
    executor = f' · executor <code id="run-executor">{_e(name)}</code>' if name else ""
    parent = run.get("parent_run_id")  # a child run of a ``uses`` step: link back
    if parent:
        executor += (
            f' · child run of <a id="run-parent" href="/runs/{quote(parent)}">{_e(parent)}</a>'
            f" (step <code>{_e(run.get('parent_step_id'))}</code>)"
        )
    return (
        f'<section class="run-head"><h1>{_e(run["run_id"])}</h1>'
        f'<p>plan <a href="/plans/{quote(run["plan_id"])}"><b>{_e(run["plan_id"])}</b></a> · '
        f'<span id="run-state">{state_badge(run["state"])}'
        f'</span> · started {when(run["started_at"])} · <span id="run-duration">'
        f"{_duration(run['duration_sec'])}</span> · owner {_e(owner)}"
        f"{' (this dashboard)' if owned else ''}{executor}</p>"
        f'<div id="run-progress">{_bar(run["progress_pct"], run["state"])}</div>{reason}'
        f"<details><summary>variables ({len(run['variables'])})</summary><ul>{variables}"
        "</ul></details></section>"
    )


#: States a run can be resumed from (the same as ``planrun resume``).
_RESUMABLE = frozenset({RunState.FAILED, RunState.CANCELLED, RunState.CRASHED})


def _actions(run: dict[str, Any], csrf: str) -> str:
    """The cancel and resume forms; the one that does not apply is hidden (the page's
    script switches them when the run's state changes live)."""
    rid = quote(run["run_id"])
    hidden = f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
    cancel = "" if run["state"] == RunState.RUNNING else " hidden"
    resume = "" if run["state"] in _RESUMABLE else " hidden"
    return (
        f'<div class="actions"><form id="cancel-form" method="post" '
        f'action="/runs/{rid}/cancel"{cancel}>{hidden}'
        '<button type="submit" class="danger" id="cancel">cancel run</button></form>'
        f'<form id="resume-form" method="post" action="/runs/{rid}/resume"{resume}>{hidden}'
        '<button type="submit" id="resume">resume run</button></form></div>'
    )


def _child_link(child: str | None) -> str:
    """The link from an attempt of a ``uses`` step to its child run ("" if none)."""
    if not child:
        return ""
    return f' <a class="child-run" href="/runs/{quote(child)}">child run {_e(child)}</a>'


def step_row(step: dict[str, Any], run_id: str = "") -> str:
    """One row of a run's step table (with a link to its full log given ``run_id``)."""
    log = (
        f' <a class="full-log" href="/runs/{quote(run_id)}/steps/{quote(step["step_id"])}/log">'
        "full log</a>"
        if run_id and step["attempts"]
        else ""
    )
    sid = _e(step["step_id"])
    attempts = " ".join(
        f'<span class="attempt state-{_e(a["state"])}" title="{_e(a["error"] or "")}">'
        f"#{a['attempt']} {_e(a['state'])}"
        f"{'' if a['exit_code'] is None else ' exit ' + str(a['exit_code'])}"
        f" {_duration(a['duration_sec'])}</span>{_child_link(a.get('child_run_id'))}"
        for a in step["attempts"]
    )
    outputs = "".join(
        f"<div><code>{_e(k)}</code>=<code>{_e(v)}</code></div>"
        for k, v in (step.get("outputs") or {}).items()
    )
    code = "" if step["exit_code"] is None else str(step["exit_code"])
    handler = step.get("handler")
    mark = f' <small class="handler">{_e(handler)} handler</small>' if handler else ""
    return (
        f'<tr data-step="{sid}" class="step"><td><button type="button" class="log-toggle" '
        f'data-step="{sid}">{sid}</button>{mark}{log}</td>'
        f'<td class="st">{state_badge(step["state"])}</td>'
        f'<td class="attempts">{attempts}</td><td class="code">{_e(code)}</td>'
        f'<td class="dur">{_duration(step["duration_sec"])}</td><td>{outputs}</td>'
        f'<td class="why">{_e(step.get("reason") or "")}</td></tr>'
    )


def run_page(detail: dict[str, Any], *, csrf: str, owned: bool) -> str:
    """A run: header, actions, the graph, the step table (log tails on demand)."""
    run = detail["run"]
    states = {s["step_id"]: s["state"] for s in detail["steps"]}
    graph = render_dag(detail["deps"], states) or '<p class="empty">No steps.</p>'
    # A big run's table is paged (paging.py); each row links to the step's full log.
    rows = first_rows(detail["steps"], functools.partial(step_row, run_id=run["run_id"]))
    body = (
        _header(run, owned)
        + _actions(run, csrf)
        + f'<section><h2>graph</h2><div class="graph">{graph}</div></section>'
        + _timeline(detail)
        + '<section><h2>steps</h2><table class="steps" id="steps"><thead><tr><th>step</th>'
        "<th>state</th><th>attempts</th><th>exit</th><th>duration</th><th>outputs</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="hint">Click a step for the tail of its last attempt\'s log'
        " (live while it runs).</p></section>"
    )
    rid = quote(run["run_id"])
    return layout(f"run {run['run_id']}", body, csrf, live=f"/runs/{rid}/live")


#: Largest run whose time axis the page redraws live (a 10,000-step chart is ~2 MB and
#: ~0.8 s to draw on the server: it is drawn once, at load).
GANTT_LIVE_MAX_STEPS = 1000
#: Events listed on a run page at most (the newest; ``/api/runs/ID`` has them all).
TIMELINE_EVENTS = 200


def _timeline(detail: dict[str, Any]) -> str:
    """The attempts on a time axis (refreshed live by the script) and the events."""
    gantt = render_gantt(detail["run"], detail["steps"], utc_now())
    events = detail["timeline"][-TIMELINE_EVENTS:]
    items = event_items(events)
    older = events[0]["seq"] if events and events[0]["seq"] > 1 else 0
    more = (  # older events on request (scale.js, /runs/ID/events?before=SEQ)
        f'<button type="button" id="events-more" data-before="{older}">show older events</button>'
        if older
        else ""
    )
    return (
        '<section><h2>timeline</h2><div class="gantt-box" id="gantt" '
        f'data-live="{"on" if len(detail["steps"]) <= GANTT_LIVE_MAX_STEPS else "off"}">'
        f"{gantt or '<p class=empty>No attempt has started.</p>'}</div>"
        f"<details><summary>events ({len(detail['timeline'])}, the last "
        f'{len(events)} listed)</summary>{more}<ol class="events">{items}</ol></details></section>'
    )


def gantt_fragment(detail: dict[str, Any]) -> str:
    """Just the Gantt chart (what the page's script fetches to redraw it)."""
    return render_gantt(detail["run"], detail["steps"], utc_now())


def message_page(title: str, message: str, *, csrf: str, back: str = "/") -> str:
    """A sentence for a person (an action's outcome, a refusal), with a way back."""
    body = (
        f'<section class="message"><h1>{_e(title)}</h1><pre class="msg">{_e(message)}</pre>'
        f'<p><a href="{_e(back)}">back</a></p></section>'
    )
    return layout(title, body, csrf)


def error_page(status: int, message: str, *, csrf: str) -> str:
    return message_page(f"{status}", message, csrf=csrf)
