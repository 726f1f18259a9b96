"""The plans a ``planrun serve --ui`` serves: each trigger, its next fire time, the
last slot fired and what was decided for it, the plan's ``on_overlap``.

The data comes from a :data:`TriggerSource` given to ``create_app`` (``serve``
passes its board's ``snapshot``: this package imports nothing from ``planrun.serve``);
without one (``planrun ui`` alone) ``/triggers`` says where triggers are shown and
the runs page shows nothing new. ``/triggers`` is the page, ``/api/triggers`` its
JSON twin (``{"served": bool, "plans": [...]}``). Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import pages

__all__ = ["ROUTES", "TriggerSource", "runs_panel", "triggers_html"]

#: Returns the served plans as JSON builtins (see ``planrun.serve.board``).
TriggerSource = Callable[[], Awaitable[list[dict[str, Any]]]]

NOT_SERVED = (
    "Triggers are shown when the dashboard is served by <code>planrun serve --ui</code>"
    " (this one is <code>planrun ui</code>: it only reads the runs)."
)


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _next(trigger: dict[str, Any]) -> str:
    if trigger["next_fire"] is None:
        return (
            '<span class="empty">on changes</span>'
            if trigger["kind"]
            in (
                "watch",
                "git",
            )
            else '<span class="empty">never</span>'
        )
    local = trigger.get("next_fire_local")
    zone = f"<br><small>{_e(local)} ({_e(trigger['timezone'])})</small>" if local else ""
    return f"<code>{_e(trigger['next_fire'])}</code>{zone}"


def _last(trigger: dict[str, Any]) -> str:
    if trigger["last_slot"] is None and trigger["last_state"] is None:
        return '<span class="empty">never fired</span>'
    slot = str(trigger["last_slot"] or "")
    shown = slot[:12] if trigger["kind"] == "git" else slot  # a git trigger stores a sha
    return f"<code>{_e(shown)}</code> {_e(trigger['last_state'])}"


def _plan_section(plan: dict[str, Any]) -> str:
    pid = plan["plan_id"]
    running = (
        ", ".join(f'<a href="/runs/{quote(r)}">{_e(r)}</a>' for r in plan["running"])
        or '<span class="empty">none</span>'
    )
    queued = f" · queued: <code>{_e(plan['queued'])}</code>" if plan["queued"] else ""
    rows = "".join(
        f'<tr data-trigger="{_e(t["key"])}"><td><code>{_e(t["key"])}</code></td>'
        f"<td>{_e(t['kind'])}</td><td><code>{_e(t['summary'])}</code></td>"
        f"<td>{_next(t)}</td><td>{_last(t)}</td></tr>"
        for t in plan["triggers"]
    )
    return (
        f'<section class="served-plan" data-plan="{_e(pid)}"><h2>plan '
        f'<a href="/plans/{quote(pid)}">{_e(pid)}</a></h2>'
        f"<p>from <code>{_e(plan['path'])}</code> · on_overlap "
        f"<b>{_e(plan['on_overlap'])}</b> · running: {running}{queued}</p>"
        '<table class="triggers"><thead><tr><th>trigger</th><th>kind</th><th>spec</th>'
        "<th>next fire (UTC, and its zone)</th><th>last fired slot, decided</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def triggers_html(plans: list[dict[str, Any]] | None, csrf: str) -> str:
    """The ``/triggers`` page (``plans`` None: not served by ``planrun serve``)."""
    if plans is None:
        body = f'<p class="empty" id="no-triggers">{NOT_SERVED}</p>'
    elif not plans:
        body = '<p class="empty">planrun serve is serving no plan right now.</p>'
    else:
        body = "".join(_plan_section(p) for p in plans)
    return pages.layout("triggers", "<h1>triggers</h1>" + body, csrf)


def runs_panel(plans: list[dict[str, Any]]) -> str:
    """One line per served plan above the runs list: its soonest next fire time."""
    if not plans:
        return ""
    items = []
    for plan in plans:
        times = sorted(t["next_fire"] for t in plan["triggers"] if t["next_fire"])
        soon = f"next fire <code>{_e(times[0])}</code>" if times else "fires on changes"
        items.append(
            f'<li data-plan="{_e(plan["plan_id"])}"><a href="/plans/{quote(plan["plan_id"])}">'
            f"{_e(plan['plan_id'])}</a>: {len(plan['triggers'])} trigger(s), {soon},"
            f" on_overlap {_e(plan['on_overlap'])}</li>"
        )
    return (
        '<section class="served" id="served"><b>planrun serve</b> fires '
        f'{len(plans)} plan(s) (<a href="/triggers">triggers</a>):<ul>{"".join(items)}</ul>'
        "</section>"
    )


async def served_plans(request: Request) -> list[dict[str, Any]] | None:
    """The app's served plans now, or None when no ``serve`` gave a source."""
    source: TriggerSource | None = request.app.state.triggers
    return None if source is None else await source()


async def triggers_page(request: Request) -> Response:
    plans = await served_plans(request)
    return HTMLResponse(triggers_html(plans, request.app.state.ctx.guard.csrf))


async def api_triggers(request: Request) -> Response:
    plans = await served_plans(request)
    return JSONResponse({"served": plans is not None, "plans": plans or []})


ROUTES = [Route("/triggers", triggers_page), Route("/api/triggers", api_triggers)]
