"""The dashboard's ASGI application: routes, the access guard, the server's task group.

``create_app(state_dir, token=...)`` returns a Starlette app. Pages: ``/`` (runs),
``/runs/{id}`` (a run), ``/runs/{id}/live`` (its server-sent events), POST
``/runs/{id}/cancel`` and ``/runs/{id}/resume``. Pieces of a big run's page:
``/runs/{id}/graph.svg[?level=N]``, ``/runs/{id}/steps?offset=N`` (table rows),
``/runs/{id}/events?before=SEQ``; the runs list's events: ``/live/runs``. JSON: ``/api/runs``,
``/api/runs/{id}``, ``/api/runs/{id}/steps/{step}/log?tail=N``. A missing run is a
404 page (or JSON), a missing store an empty runs list, any planrun error a page with
its message: never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ..errors import PlanrunError
from . import data, log_view, pages, paging, plan_page, triggers_view
from .actions import Runner, ui_words
from .graph_levels import render_dag, render_level
from .live import RunFeed, RunsFeed, RunsHub, Stopping
from .security import COOKIE, Guard

__all__ = ["STATIC_DIR", "Guarded", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
#: Largest action form body read (it holds a CSRF token and a flag).
MAX_FORM_BYTES = 4096
DEFAULT_TAIL = 200


class _Ctx:
    """What the endpoints share: the state dir, the guard, the runner (once started)."""

    def __init__(self, state_dir: Path, guard: Guard) -> None:
        self.state_dir = state_dir
        self.guard = guard
        self.runner: Runner | None = None
        self.runs_hub = RunsHub(state_dir)
        self.stopping = Stopping()


def _ctx(request: Request) -> _Ctx:
    ctx: _Ctx = request.app.state.ctx
    return ctx


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": message, "status": status}, status_code=status)
    return HTMLResponse(
        pages.error_page(status, message, csrf=_ctx(request).guard.csrf), status_code=status
    )


def _filters(request: Request) -> tuple[str | None, str | None]:
    state = request.query_params.get("state") or None
    plan_id = request.query_params.get("plan") or None
    return state, plan_id


async def runs_page(request: Request) -> Response:
    ctx = _ctx(request)
    state, plan_id = _filters(request)
    if not data.is_state(state):
        return _error(request, 400, f"unknown state '{state}'")
    runs = await data.list_runs(ctx.state_dir, state=state, plan_id=plan_id)
    every = await data.list_runs(ctx.state_dir)
    plans = sorted({r["plan_id"] for r in every})
    served = await triggers_view.served_plans(request)  # None: not under planrun serve
    html = pages.runs_page(
        runs,
        state_dir=str(ctx.state_dir),
        state=state,
        plan_id=plan_id,
        plans=plans,
        csrf=ctx.guard.csrf,
        panel=triggers_view.runs_panel(served or []),
    )
    return HTMLResponse(html)


async def api_runs(request: Request) -> Response:
    state, plan_id = _filters(request)
    if not data.is_state(state):
        return _error(request, 400, f"unknown state '{state}'")
    runs = await data.list_runs(_ctx(request).state_dir, state=state, plan_id=plan_id)
    return JSONResponse({"runs": runs})


async def _detail(request: Request) -> tuple[dict[str, Any] | None, Response | None]:
    run_id = request.path_params["run_id"]
    detail = await data.run_detail(_ctx(request).state_dir, run_id)
    if detail is None:
        return None, _error(request, 404, f"no run '{run_id}' in {_ctx(request).state_dir}")
    return detail.to_builtins(), None


async def run_page(request: Request) -> Response:
    detail, error = await _detail(request)
    if error is not None:
        return error
    assert detail is not None
    ctx = _ctx(request)
    owned = ctx.runner is not None and detail["run"]["run_id"] in ctx.runner.owned
    return HTMLResponse(pages.run_page(detail, csrf=ctx.guard.csrf, owned=owned))


async def run_gantt(request: Request) -> Response:
    """The run's Gantt chart alone (SVG), for the page to redraw it live."""
    detail, error = await _detail(request)
    if error is not None:
        return error
    assert detail is not None
    return Response(pages.gantt_fragment(detail), media_type="image/svg+xml")


async def api_run(request: Request) -> Response:
    detail, error = await _detail(request)
    return error if error is not None else JSONResponse(detail)


async def run_live(request: Request) -> Any:
    """The run's server-sent events (404 if there is no such run)."""
    ctx, run_id = _ctx(request), request.path_params["run_id"]
    if not await data.run_exists(ctx.state_dir, run_id):
        return _error(request, 404, f"no run '{run_id}' in {ctx.state_dir}")
    return RunFeed(ctx.state_dir, run_id, ctx.stopping)


async def runs_live(request: Request) -> Any:
    """The runs list's server-sent events (one shared poller: live.RunsHub)."""
    state, plan_id = _filters(request)
    if not data.is_state(state):
        return _error(request, 400, f"unknown state '{state}'")
    ctx = _ctx(request)
    return RunsFeed(ctx.runs_hub, state, plan_id, ctx.stopping)


def _int_param(request: Request, name: str) -> int | None:
    """Query parameter ``name`` as a whole number (None if absent); ValueError if not."""
    value = request.query_params.get(name)
    return None if value in (None, "") else int(value)


async def run_graph(request: Request) -> Response:
    """The run's graph (collapsed by level when big), or ``?level=N``: that level's steps."""
    run_id, state_dir = request.path_params["run_id"], _ctx(request).state_dir
    try:
        level = _int_param(request, "level")
    except ValueError:
        return _error(request, 400, "level must be a whole number")
    found = await paging.graph_inputs(state_dir, run_id)
    if found is None:
        return _error(request, 404, f"no run '{run_id}' in {state_dir}")
    svg = render_dag(*found) if level is None else render_level(*found, level)
    if level is not None and not svg:
        return _error(request, 404, f"no level {level} in run '{run_id}'")
    return Response(svg, media_type="image/svg+xml")


async def run_steps(request: Request) -> Response:
    """Rows of the run's step table from ``?offset=N`` (HTML, for the page's script)."""
    run_id, state_dir = request.path_params["run_id"], _ctx(request).state_dir
    try:
        offset = _int_param(request, "offset") or 0
    except ValueError:
        return _error(request, 400, "offset must be a whole number")
    steps = await paging.step_rows(state_dir, run_id)
    if steps is None:
        return _error(request, 404, f"no run '{run_id}' in {state_dir}")
    return HTMLResponse(
        paging.rows_page(steps, offset, functools.partial(pages.step_row, run_id=run_id))
    )


async def run_events(request: Request) -> Response:
    """``<li>`` items of the events before ``?before=SEQ`` (a run page's "show more")."""
    run_id, state_dir = request.path_params["run_id"], _ctx(request).state_dir
    try:
        before = _int_param(request, "before") or 0
    except ValueError:
        return _error(request, 400, "before must be a whole number")
    events = await paging.events_before(state_dir, run_id, before)
    if events is None:
        return _error(request, 404, f"no run '{run_id}' in {state_dir}")
    return HTMLResponse(paging.event_items(events))


async def api_log(request: Request) -> Response:
    params = request.query_params
    try:
        tail = int(params.get("tail", DEFAULT_TAIL))
        attempt = int(params["attempt"]) if params.get("attempt") else None
    except ValueError:
        return _error(request, 400, "tail and attempt must be whole numbers")
    run_id, step_id = request.path_params["run_id"], request.path_params["step_id"]
    state_dir = _ctx(request).state_dir
    if not await data.run_exists(state_dir, run_id):
        return _error(request, 404, f"no run '{run_id}' in {state_dir}")
    found = await data.log_tail(state_dir, run_id, step_id, tail, attempt)
    if found is None:
        return _error(request, 404, f"no step '{step_id}' (or no such attempt) in run '{run_id}'")
    return JSONResponse(found)


async def _form(request: Request) -> dict[str, str] | None:
    """The POSTed urlencoded form (None if too large)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    pairs = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in pairs.items()}


async def _action(request: Request, name: str) -> Response:
    ctx = _ctx(request)
    form = await _form(request)
    if form is None:
        return _error(request, 413, "form too large")
    refusal = ctx.guard.cross_site_refusal(request, form.get("csrf"))
    if refusal is not None:
        return _error(request, 403, refusal)
    run_id = request.path_params["run_id"]
    assert ctx.runner is not None  # the lifespan has started
    if name == "cancel":
        result = await ctx.runner.cancel(run_id)
    else:
        result = await ctx.runner.resume(run_id, allow_changed=form.get("allow_changed") == "1")
    if _wants_json(request):
        return JSONResponse({"ok": result.ok, "message": result.message}, status_code=result.status)
    if result.ok:
        return RedirectResponse(f"/runs/{quote(run_id)}", status_code=303)
    title = f"cannot {name} run {run_id}"
    html = pages.message_page(title, result.message, csrf=ctx.guard.csrf, back=f"/runs/{run_id}")
    return HTMLResponse(html, status_code=result.status)


async def cancel(request: Request) -> Response:
    return await _action(request, "cancel")


async def resume(request: Request) -> Response:
    return await _action(request, "resume")


class Guarded:
    """ASGI middleware: the Host check, then the token (static assets need neither
    the token nor a store). ``?token=T`` sets the cookie and redirects without it."""

    def __init__(
        self,
        app: Starlette,
        guard: Guard,
        lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]],
    ) -> None:
        self.app = app
        self.guard = guard
        self._lifespan = lifespan

    def stop_streams(self) -> None:
        """End every open live stream (the server is stopping)."""
        ctx: _Ctx = self.app.state.ctx
        ctx.stopping.set()

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The app's lifespan (its task group), for servers that do not run it (tests
        over an ASGI transport)."""
        return self._lifespan(self.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self._refusal(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        guard = self.guard
        if (why := guard.host_refusal(request)) is not None:
            return JSONResponse({"error": why, "status": 421}, status_code=421)
        if request.url.path.startswith("/static/"):
            return None
        if not guard.authorized(request):
            return JSONResponse(
                {"error": "a token is needed: open the dashboard at /?token=...", "status": 401},
                status_code=401,
            )
        if guard.token is not None and "token" in request.query_params:
            # Move the token from the URL (history, logs) into an HttpOnly cookie.
            query = "&".join(
                f"{quote(k)}={quote(v)}" for k, v in request.query_params.items() if k != "token"
            )
            target = request.url.path + (f"?{query}" if query else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(COOKIE, guard.token, httponly=True, samesite="strict", path="/")
            return redirect
        return None


def create_app(
    state_dir: str | Path,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    triggers: triggers_view.TriggerSource | None = None,
) -> Guarded:
    """The dashboard over ``state_dir``'s run store. ``token``: required on every
    request when set. ``loopback_only``: answer only requests for a loopback Host.
    ``triggers``: the served plans (``planrun serve --ui``), shown at ``/triggers``."""
    ctx = _Ctx(Path(state_dir), Guard(token=token, loopback_only=loopback_only))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            ctx.runner = Runner(tg, ctx.state_dir)
            tg.start_soon(ctx.runs_hub.run)
            yield
            tg.cancel_scope.cancel()  # the server stops: runs it owns are cancelled

    routes = [
        Route("/", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/live", run_live),
        Route("/runs/{run_id}/gantt.svg", run_gantt),
        Route("/runs/{run_id}/graph.svg", run_graph),
        Route("/runs/{run_id}/steps", run_steps),
        Route("/runs/{run_id}/events", run_events),
        Route("/live/runs", runs_live),
        Route("/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/runs/{run_id}/resume", resume, methods=["POST"]),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/resume", resume, methods=["POST"]),
        Route("/api/runs/{run_id}/steps/{step_id}/log", api_log),
        *plan_page.ROUTES,  # /plans/{id}, /api/plans/{id}
        *log_view.ROUTES,  # /runs/{id}/steps/{step}/log, .../log/window, .../log/search
        *triggers_view.ROUTES,  # /triggers, /api/triggers
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]

    async def planrun_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PlanrunError)
        return _error(request, 500 if exc.exit_code == 1 else 400, ui_words(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, exc.detail)

    handlers = {PlanrunError: planrun_error, HTTPException: http_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.ctx = ctx
    app.state.triggers = triggers
    return Guarded(app, ctx.guard, lifespan)
