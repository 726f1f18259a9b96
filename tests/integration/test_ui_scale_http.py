"""A big run over HTTP (httpx's ASGI transport, a real store): the run page's graph
collapsed by level, a level expanded on request, the step table paged. The run is
made by ``run_plan`` with :class:`planrun.testing.ScriptedExecutor` (no processes: a
400-step run takes a second)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planrun import run_plan
from planrun.testing import Fail, ScriptedExecutor
from planrun.ui import paging

from .helpers import unique_run_id
from .test_ui_http import _client

pytestmark = pytest.mark.anyio

LEVELS, WIDTH = 4, 100


async def _big_run(tmp_path: Path) -> tuple[Path, str]:
    """400 steps in 4 levels; ``s2-5`` (past the first 200 rows) fails, non-critical,
    and skips ``s3-5``."""
    steps = [
        {
            "id": f"s{lv}-{i}",
            "command": "true",
            "depends_on": [] if lv == 0 else [f"s{lv - 1}-{i}"],
            "critical": False,
            "on_failure": "skip_dependents",
        }
        for lv in range(LEVELS)
        for i in range(WIDTH)
    ]
    plan = tmp_path / "big.json"
    plan.write_text(json.dumps({"plan_id": "big", "steps": steps}))
    run_id = unique_run_id("ui-big")
    executor = ScriptedExecutor({"s2-5": Fail(2)})
    await run_plan(plan, state_dir=tmp_path / "state", run_id=run_id, executor=executor)
    return tmp_path / "state", run_id


async def test_a_big_run_page_has_its_graph_by_level_and_a_paged_table(tmp_path: Path) -> None:
    state_dir, run_id = await _big_run(tmp_path)
    async with _client(state_dir) as client:
        page = await client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    html = page.text
    assert 'class="dag levels"' in html
    assert re.findall(r'<g class="level[^"]*" data-level="(\d+)"', html) == ["0", "1", "2", "3"]
    assert 'class="node' not in html  # no node per step
    assert "failed: s2-5" in html
    # the table: the first rows, then the failed step pinned, then the "more" row
    rows = re.findall(r'<tr data-step="([^"]+)" class="step( pinned)?"', html)
    assert len(rows) == paging.FIRST_ROWS + 1
    assert rows[-1] == ("s2-5", " pinned")
    assert f'id="steps-more" data-next="{paging.FIRST_ROWS}" data-total="400"' in html


async def test_a_level_and_the_rest_of_the_table_come_on_request(tmp_path: Path) -> None:
    state_dir, run_id = await _big_run(tmp_path)
    async with _client(state_dir) as client:
        level = await client.get(f"/runs/{run_id}/graph.svg?level=2")
        whole = await client.get(f"/runs/{run_id}/graph.svg")
        more = await client.get(f"/runs/{run_id}/steps?offset={paging.FIRST_ROWS}")
        errors = [
            await client.get(f"/runs/{run_id}/graph.svg?level=4"),
            await client.get(f"/runs/{run_id}/graph.svg?level=x"),
            await client.get("/runs/no-such-run/graph.svg?level=0"),
            await client.get(f"/runs/{run_id}/steps?offset=x"),
            await client.get("/runs/no-such-run/steps"),
        ]
    assert level.status_code == 200
    assert level.headers["content-type"].startswith("image/svg")
    steps = re.findall(r'<g class="node state-(\w+)" data-step="([^"]+)"', level.text)
    assert len(steps) == WIDTH
    assert {s for _, s in steps} == {f"s2-{i}" for i in range(WIDTH)}
    assert ("failed", "s2-5") in steps
    assert ("succeeded", "s2-4") in steps
    assert 'class="dag levels"' in whole.text
    rows = re.findall(r'<tr data-step="([^"]+)" class="step"', more.text)
    assert rows == [f"s{lv}-{i}" for lv in (2, 3) for i in range(WIDTH)]
    assert "steps-more" not in more.text  # all 400 shown now
    assert [r.status_code for r in errors] == [404, 400, 404, 400, 404]
    assert all("Traceback" not in r.text for r in errors)


async def test_a_small_run_graph_svg_is_drawn_whole(tmp_path: Path) -> None:
    steps = [{"id": "a", "command": "true"}, {"id": "b", "command": "true", "depends_on": ["a"]}]
    plan = tmp_path / "small.json"
    plan.write_text(json.dumps({"plan_id": "small", "steps": steps}))
    await run_plan(plan, state_dir=tmp_path / "state", run_id="small-1")
    async with _client(tmp_path / "state") as client:
        svg = (await client.get("/runs/small-1/graph.svg")).text
        page = (await client.get("/runs/small-1")).text
    assert 'data-step="a"' in svg
    assert 'data-from="a" data-to="b"' in svg
    assert "steps-more" not in page
    assert 'class="step pinned"' not in page


async def test_older_events_come_on_request(tmp_path: Path) -> None:
    state_dir, run_id = await _big_run(tmp_path)
    async with _client(state_dir) as client:
        html = (await client.get(f"/runs/{run_id}")).text
        found = re.search(r'id="events-more" data-before="(\d+)"', html)
        assert found is not None
        before = int(found.group(1))
        older = await client.get(f"/runs/{run_id}/events?before={before}")
        first = await client.get(f"/runs/{run_id}/events?before=3")
        bad = await client.get(f"/runs/{run_id}/events?before=x")
        missing = await client.get("/runs/no-such-run/events?before=3")
    seqs = [int(s) for s in re.findall(r'<li data-seq="(\d+)">', older.text)]
    assert seqs == list(range(before - 200, before))
    assert re.findall(r'<li data-seq="(\d+)">', first.text) == ["1", "2"]
    assert "run_started" in first.text
    assert (bad.status_code, missing.status_code) == (400, 404)
