"""The dashboard shows the instances of a for_each step (ids with ``[``, ``:``, ``]``):
run page, step table, graph, the API and each instance's log, over HTTP on a real store
made by a real run."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from planrun import run_plan
from planrun.ui.app import create_app

from .helpers import make_plan, sh_step, unique_run_id

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8765"


async def test_instances_are_shown_and_their_logs_served(tmp_path: Path) -> None:
    """Every instance is in the run's API document and pages (escaped), the graph puts
    it between the producer and the for_each step, and its log URL works."""
    state_dir = tmp_path / "state"
    plan_path = tmp_path / "fan.json"
    steps = [
        sh_step("list", 'echo "ITEMS=$1" >> "$PLANRUN_OUTPUT"', json.dumps(["a<b", "c:d"])),
        sh_step(
            "process",
            'echo "got $1"',
            "${item}",
            depends_on=["list"],
            for_each="${steps.list.outputs.ITEMS}",
        ),
        sh_step("after", "true", depends_on=["process"]),
    ]
    plan_path.write_text(json.dumps(make_plan(steps, plan_id="fan")))
    run_id = unique_run_id("ui-fan")
    result = await run_plan(plan_path, state_dir=state_dir, run_id=run_id)
    assert result.ok
    ids = ["process[0:a-b]", "process[1:c-d]"]
    app = create_app(state_dir)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            doc = (await client.get(f"/api/runs/{run_id}")).json()
            assert [s["step_id"] for s in doc["steps"]] == ["list", "process", *ids, "after"]
            page = (await client.get(f"/runs/{run_id}")).text
            assert all(i in page for i in ids)
            assert "a<b" not in page
            svg = (await client.get(f"/runs/{run_id}/graph.svg")).text
            for iid in ids:
                assert f'data-from="list" data-to="{iid}"' in svg
                assert f'data-from="{iid}" data-to="process"' in svg
            for iid, item in zip(ids, ["a<b", "c:d"], strict=True):
                log = await client.get(f"/api/runs/{run_id}/steps/{quote(iid)}/log")
                assert log.status_code == 200, log.text
                assert f"got {item}" in log.text
                html = await client.get(f"/runs/{run_id}/steps/{quote(iid)}/log")
                assert html.status_code == 200


async def test_matrix_instances_have_their_edges_in_the_graph(tmp_path: Path) -> None:
    """The stored plan is the plan as written (a matrix step ``test``, not its
    instances): the graph still joins each instance to what the step depends on and to
    the steps that depend on the matrix."""
    state_dir = tmp_path / "state"
    plan_path = tmp_path / "matrix.json"
    steps = [
        sh_step("lint", "true"),
        {**sh_step("test", "true", depends_on=["lint"]), "matrix": {"py": ["3.11", "3.12"]}},
        sh_step("publish", "true", depends_on=["test"]),
    ]
    plan_path.write_text(json.dumps(make_plan(steps, plan_id="matrix")))
    run_id = unique_run_id("ui-matrix")
    assert (await run_plan(plan_path, state_dir=state_dir, run_id=run_id)).ok
    app = create_app(state_dir)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            svg = (await client.get(f"/runs/{run_id}/graph.svg")).text
    for iid in ("test[py=3.11]", "test[py=3.12]"):
        assert f'data-from="lint" data-to="{iid}"' in svg
        assert f'data-from="{iid}" data-to="publish"' in svg
