"""The dashboard at scale, against a real ``planrun ui`` and real ``planrun run``s: the
runs list's server-sent events (``/live/runs``) deliver a run started after the stream
opened and its state changes, to every open stream; and, in headless Chromium, the runs
page shows a new run without a reload or a poll, and a 10,000-step run page loads with
its graph collapsed by level, a level opening on a click, the step table loading on
scroll. Screenshots at 20, 200 and 10,000 steps (``PLANRUN_SCREENSHOTS`` keeps them).
Timing is measured by bench/bench_ui_page.py, not asserted here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx

from planrun import run_plan
from planrun.testing import Fail, ScriptedExecutor

from ._cli import kill_pids, live_pids_with_env, sh, wait_until
from ._ui import ui_server
from .test_ui_browser import _start_run, shots

__all__ = ["shots"]  # (the fixture, shared with test_ui_browser; browser: conftest)


def _gated(gate: Path) -> dict[str, Any]:
    hold = f"while [ ! -f '{gate}' ]; do sleep 0.05; done"
    return {
        "plan_id": "gated",
        "steps": [sh("hold", hold), sh("after", "true", depends_on=["hold"])],
    }


def _runs_events(response: httpx.Response) -> Iterator[list[dict[str, Any]]]:
    """The runs list of each ``runs`` event of a ``/live/runs`` stream."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == "runs":
            yield json.loads(line[len("data: ") :])["runs"]


class _Reader(threading.Thread):
    """Reads one stream in the background, keeping every runs list it received."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url = client, url
        self.lists: list[list[dict[str, Any]]] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with self.client.stream("GET", self.url) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for runs in _runs_events(response):
                    self.lists.append(runs)
        except Exception as exc:  # (reported by the test)
            self.error = exc

    def saw(self, run_id: str, state: str) -> bool:
        return any(r["run_id"] == run_id and r["state"] == state for rs in self.lists for r in rs)


def test_the_runs_stream_delivers_a_new_run_and_its_end_to_every_client(tmp_path: Path) -> None:
    gate, run_id = tmp_path / "gate", "live-list-1"
    with httpx.Client(timeout=60) as client:
        with ui_server(tmp_path) as server:
            readers = [
                _Reader(client, server.url + "live/runs"),
                _Reader(client, server.url + "live/runs?state=succeeded"),
            ]
            for reader in readers:
                reader.start()
            assert wait_until(lambda: all(r.lists for r in readers), 30)
            assert readers[0].lists[0] == []  # no store yet: no runs, no error
            proc = _start_run(tmp_path, _gated(gate), run_id)
            try:
                assert wait_until(lambda: readers[0].saw(run_id, "running"), 30), readers[0].lists
                assert not readers[1].saw(run_id, "running")  # filtered by state
                gate.touch()
                assert wait_until(lambda: all(r.saw(run_id, "succeeded") for r in readers), 30)
                assert proc.wait(timeout=30) == 0
                last = readers[0].lists[-1][0]
                assert (last["progress_pct"], last["steps_done"], last["step_count"]) == (100, 2, 2)
            finally:
                gate.touch()
                if proc.poll() is None:
                    proc.kill()
                kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
        # the server stopped (ui_server checked: no traceback): it ended the open streams
        for reader in readers:
            reader.join(timeout=30)
            assert not reader.is_alive()
            assert reader.error is None, reader.error


def test_the_runs_page_shows_a_new_run_without_a_reload_or_a_poll(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    gate, run_id = tmp_path / "gate", "live-list-page"
    with ui_server(tmp_path) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        polled: list[str] = []
        page.on("request", lambda r: polled.append(r.url) if "/api/runs" in r.url else None)
        page.goto(server.url)
        page.wait_for_function("Number(document.body.dataset.runsSeen || 0) >= 1", timeout=30_000)
        page.evaluate("window.__not_reloaded = true")
        proc = _start_run(tmp_path, _gated(gate), run_id)
        try:
            row = f'tr[data-run="{run_id}"]'
            page.wait_for_selector(f"{row} .state-running", timeout=30_000)
            gate.touch()
            page.wait_for_selector(f"{row} .state.state-succeeded", timeout=30_000)
            assert page.locator(f"{row} .bar").get_attribute("aria-valuenow") == "100"
            assert page.evaluate("window.__not_reloaded") is True
            assert polled == []  # fed by the stream, not by polling /api/runs
            page.screenshot(path=str(shots / "runs-live.png"), full_page=True)
            assert proc.wait(timeout=30) == 0
        finally:
            gate.touch()
            if proc.poll() is None:
                proc.kill()
            kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def _layered(steps: int, levels: int) -> dict[str, Any]:
    """``steps`` steps in ``levels`` levels; each depends on two of the level before
    (one of them far off, so edges cross), and on level 0 for long edges."""
    width = max(1, steps // levels)
    out = []
    for n in range(steps):
        level, i = divmod(n, width)
        deps = set() if level == 0 else {f"s{level - 1}-{i}", f"s{level - 1}-{(i * 7 + 3) % width}"}
        if level >= 2 and i % 5 == 0:
            deps.add(f"s0-{i}")
        out.append(
            {
                "id": f"s{level}-{i}",
                "command": "true",
                "depends_on": sorted(deps),
                "critical": False,
                "on_failure": "skip_dependents",
            }
        )
    return {"plan_id": f"layered-{steps}", "steps": out}


def _build(tmp_path: Path, steps: int, levels: int, run_id: str, failing: list[str]) -> None:
    plan = tmp_path / f"{run_id}.json"
    plan.write_text(json.dumps(_layered(steps, levels)))
    executor = ScriptedExecutor({s: Fail(1) for s in failing})

    async def main() -> None:
        await run_plan(plan, state_dir=tmp_path / "state", run_id=run_id, executor=executor)

    # (in a thread of its own: Playwright's sync API runs an event loop in this one)
    builder = threading.Thread(target=anyio.run, args=(main,))
    builder.start()
    builder.join(timeout=300)
    assert not builder.is_alive()


def test_a_10000_step_run_page_shows_its_graph_by_level(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    _build(tmp_path, 20, 4, "steps-20", ["s2-1"])
    _build(tmp_path, 200, 8, "steps-200", ["s3-4"])
    _build(tmp_path, 10_000, 100, "steps-10000", ["s5-0", "s40-17", "s40-18"])
    with ui_server(tmp_path) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for n in (20, 200):
            page.goto(f"{server.url}runs/steps-{n}")
            assert page.locator("svg.dag g.node").count() == n
            page.locator(".graph").screenshot(path=str(shots / f"graph-{n}.png"))
        page.goto(f"{server.url}runs/steps-10000")
        assert page.locator("svg.dag.levels g.level").count() == 100
        assert page.locator("svg.dag g.node").count() == 0
        failed = page.locator('svg.levels g.level[data-level="40"] text.failed').text_content()
        assert failed == "failed: s40-17, s40-18"
        page.locator(".graph").screenshot(path=str(shots / "graph-10000.png"))
        page.click('svg.levels g.level[data-level="40"]')
        page.wait_for_selector('#level-detail svg.dag g.node[data-step="s40-17"]')
        assert page.locator("#level-detail svg.dag g.node").count() == 100
        node = page.locator('#level-detail g.node[data-step="s40-17"]')
        assert node.get_attribute("class") == "node state-failed"
        page.screenshot(path=str(shots / "run-10000-level.png"), full_page=False)
        rows = page.locator("#steps tr.step")
        before = rows.count()
        assert before < 300  # the first rows and the failed ones
        page.locator("#steps-more").scroll_into_view_if_needed()
        page.wait_for_function(f"document.querySelectorAll('#steps tr.step').length > {before}")
        page.locator("#steps tr.step").last.scroll_into_view_if_needed()
        page.wait_for_function("document.querySelectorAll('#steps tr.step').length > 1000")
        ids = page.eval_on_selector_all("#steps tr.step", "rs => rs.map(r => r.dataset.step)")
        assert len(ids) == len(set(ids))  # a pinned row is not listed twice
        # the event list: the newest 200, older ones on request
        page.click("details:has(ol.events) > summary")
        assert page.locator("ol.events li").count() == 200
        page.click("#events-more")
        page.wait_for_function("document.querySelectorAll('ol.events li').length === 400")
