"""The dashboard shows a run's handlers as handlers: marked in the step table, left out
of the graph (they run after it), listed by ``/api/runs/ID`` with their list."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from planrun import run_plan
from planrun.model import RunState
from planrun.ui.app import create_app

from .helpers import make_plan, sh_step, unique_run_id

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8765"


async def test_the_run_page_marks_handlers(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    run_id = unique_run_id("ui-handlers")
    plan = make_plan([sh_step("build", "exit 2")], plan_id="handled")
    plan["handlers"] = {"on_failure": [sh_step("notify-team", "exit 0")]}
    result = await run_plan(plan, state_dir=state_dir, run_id=run_id)
    assert result.state is RunState.FAILED
    assert {k: s.handler for k, s in result.steps.items()} == {
        "build": None,
        "notify-team": "on_failure",
    }
    app = create_app(state_dir)
    life = app.lifespan()
    await life.__aenter__()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            html = (await client.get(f"/runs/{run_id}")).text
            api = (await client.get(f"/api/runs/{run_id}")).json()
    finally:
        await life.__aexit__(None, None, None)
    row = html[html.index('<tr data-step="notify-team"') :]
    row = row[: row.index("</tr>")]
    assert '<small class="handler">on_failure handler</small>' in row
    graph = html[html.index('<div class="graph">') :]
    graph = graph[: graph.index("</section>")]
    assert "build" in graph
    assert "notify-team" not in graph
    assert {s["step_id"]: s["handler"] for s in api["steps"]} == {
        "build": None,
        "notify-team": "on_failure",
    }
