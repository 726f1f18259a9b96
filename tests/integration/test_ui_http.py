"""The dashboard's endpoints over HTTP (httpx's ASGI transport), on a REAL store made
by real runs (``run_plan`` with real processes into a temp state dir)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from planrun import monitor, run_plan
from planrun.model import RunState
from planrun.options import RunOptions
from planrun.ui.app import create_app

from .helpers import make_plan, sh_step, unique_run_id

pytestmark = pytest.mark.anyio

SECRET = "s3cret-value-for-the-ui"  # noqa: S105 - a test secret
TOKEN = "a-token-of-at-least-16-chars"  # noqa: S105 - a test token
BASE = "http://127.0.0.1:8765"


@dataclass(frozen=True)
class Store:
    """A state dir with a failed run (``failed_id``) then a succeeded one (``ok_id``)."""

    state_dir: Path
    plan_path: Path
    failed_id: str
    ok_id: str


def _failing_plan() -> dict[str, Any]:
    return make_plan(
        [
            sh_step("fetch", 'echo "fetched $1"; echo see https://example.com/x', SECRET),
            sh_step("build", 'echo "KEY=$1" >> "$PLANRUN_OUTPUT"', SECRET, depends_on=["fetch"]),
            sh_step(
                "test",
                "for i in $(seq 1 50); do echo line $i; done; exit 3",
                depends_on=["fetch"],
                retries=1,
            ),
            sh_step("deploy", "true", depends_on=["build", "test"]),
        ],
        plan_id="webapp",
    )


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    state_dir = tmp_path / "state"
    plan_path = tmp_path / "webapp.json"
    plan_path.write_text(json.dumps(_failing_plan()))
    failed_id, ok_id = unique_run_id("ui-failed"), unique_run_id("ui-ok")
    failed = await run_plan(
        plan_path, state_dir=state_dir, run_id=failed_id, secrets={"TOKEN": SECRET}
    )
    assert failed.state is RunState.FAILED
    ok_plan = tmp_path / "other.json"
    ok_plan.write_text(json.dumps(make_plan([sh_step("only", "echo fine")], plan_id="other")))
    ok = await run_plan(ok_plan, state_dir=state_dir, run_id=ok_id)
    assert ok.ok
    return Store(state_dir, plan_path, failed_id, ok_id)


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(store.state_dir) as c:
        yield c


class _client:
    """An httpx client on the dashboard app, its lifespan running."""

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        self.app = create_app(state_dir, **kwargs)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._life = self.app.lifespan()
        await self._life.__aenter__()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        return self._client

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._life.__aexit__(None, None, None)


def _csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found is not None
    return found.group(1)


async def test_runs_page_lists_runs_newest_first_with_progress(
    client: httpx.AsyncClient, store: Store
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    html = page.text
    assert html.index(store.ok_id) < html.index(store.failed_id)
    assert 'class="state state-failed"' in html
    assert 'aria-valuenow="100"' in html
    assert "4/4" in html
    assert "Traceback" not in html
    for asset in ("/static/dashboard.css", "/static/dashboard.js"):  # shipped, no CDN
        assert f'"{asset}"' in html
        assert (await client.get(asset)).status_code == 200
    assert "https://" not in html.replace("https://example.com/x", "")


async def test_runs_filter_by_state_and_plan(client: httpx.AsyncClient, store: Store) -> None:
    failed = (await client.get("/", params={"state": "failed"})).text
    assert store.failed_id in failed
    assert store.ok_id not in failed
    other = (await client.get("/api/runs", params={"plan": "other"})).json()
    assert [r["run_id"] for r in other["runs"]] == [store.ok_id]
    assert (await client.get("/api/runs", params={"state": "nonsense"})).status_code == 400


async def test_api_runs_and_run_match_the_monitor(client: httpx.AsyncClient, store: Store) -> None:
    listed = (await client.get("/api/runs")).json()
    assert [r["run_id"] for r in listed["runs"]] == [store.ok_id, store.failed_id]
    detail = (await client.get(f"/api/runs/{store.failed_id}")).json()
    progress = await monitor.progress(store.failed_id, state_dir=store.state_dir)
    assert progress is not None
    assert detail["run"]["progress_pct"] == progress.progress_pct == 100
    assert detail["deps"] == {
        "fetch": [],
        "build": ["fetch"],
        "test": ["fetch"],
        "deploy": ["build", "test"],
    }
    steps = {s["step_id"]: s for s in detail["steps"]}
    assert [a["exit_code"] for a in steps["test"]["attempts"]] == [3, 3]
    assert steps["deploy"]["state"] in ("cancelled", "skipped")
    assert steps["build"]["outputs"] == {"KEY": "***"}
    assert [e["seq"] for e in detail["timeline"]] == sorted(e["seq"] for e in detail["timeline"])


async def test_run_page_header_names_the_executor(client: httpx.AsyncClient, store: Store) -> None:
    """The header says which executor ran the run (the local one, here), and the run's
    JSON carries it too."""
    html = (await client.get(f"/runs/{store.ok_id}")).text
    head = html[html.index('<section class="run-head">') :]
    head = head[: head.index("</section>")]
    assert ' · executor <code id="run-executor">local</code>' in head
    run = (await client.get(f"/api/runs/{store.ok_id}")).json()
    assert run["run"]["executor"] == "local"


async def test_run_page_has_the_graph_steps_and_no_secret(
    client: httpx.AsyncClient, store: Store
) -> None:
    html = (await client.get(f"/runs/{store.failed_id}")).text
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="dag"' in html
    assert '<g class="node state-failed" data-step="test"' in html
    assert '<g class="node state-succeeded" data-step="fetch"' in html
    # the failing path: into the failed step, and from it to what it kept from running
    assert re.search(r'class="edge fail-path" data-from="fetch" data-to="test"', html)
    assert re.search(r'class="edge fail-path" data-from="test" data-to="deploy"', html)
    assert re.search(r'class="edge" data-from="fetch" data-to="build"', html)
    assert "#2 failed exit 3" in html
    # the timeline: a bar per attempt (the retry is the second bar of its row)
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="gantt"' in html
    bars = re.findall(r'<rect class="span state-(\w+)" data-step="test" data-attempt="(\d)"', html)
    assert bars == [("failed", "1"), ("failed", "2")]
    assert 'data-step="deploy" data-attempt' not in html  # it never started
    gantt = await client.get(f"/runs/{store.failed_id}/gantt.svg")
    assert gantt.headers["content-type"].startswith("image/svg+xml")
    assert gantt.text.startswith("<svg")
    assert 'data-step="test" data-attempt="2"' in gantt.text
    assert (await client.get("/runs/nope/gantt.svg")).status_code == 404
    assert 'action="/runs/' + store.failed_id + '/resume"' in html
    for path in ("/", f"/runs/{store.failed_id}", f"/api/runs/{store.failed_id}"):
        assert SECRET not in (await client.get(path)).text, path
    log = await client.get(f"/api/runs/{store.failed_id}/steps/fetch/log")
    assert SECRET not in log.text
    assert "fetched ***" in log.json()["lines"]


async def test_log_tail(client: httpx.AsyncClient, store: Store) -> None:
    url = f"/api/runs/{store.failed_id}/steps/test/log"
    tail = (await client.get(url, params={"tail": 3})).json()
    assert tail["attempt"] == 2
    assert tail["lines"] == ["line 48", "line 49", "line 50"]
    assert tail["truncated"] is True
    first = (await client.get(url, params={"tail": 1000, "attempt": 1})).json()
    assert first["attempt"] == 1
    assert len(first["lines"]) == 50
    assert first["truncated"] is False
    assert (await client.get(url, params={"tail": "x"})).status_code == 400
    assert (await client.get(url, params={"attempt": 9})).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/runs/no-such-run",
        "/api/runs/no-such-run",
        "/runs/no-such-run/live",
        "/api/runs/no-such-run/steps/x/log",
        "/api/runs/%2E%2E%2F%2E%2E/steps/x/log",
    ],
)
async def test_bad_run_ids_are_404_not_tracebacks(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "Traceback" not in response.text
    if path.startswith("/api/"):
        assert response.json()["status"] == 404  # JSON for the API, even unrouted
    if "no-such-run" in path:
        assert "no run" in response.text
        assert "no-such-run" in response.text


async def test_unknown_step_log_is_404(client: httpx.AsyncClient, store: Store) -> None:
    response = await client.get(f"/api/runs/{store.failed_id}/steps/nope/log")
    assert response.status_code == 404
    assert "no step 'nope'" in response.json()["error"]


async def test_a_state_dir_without_a_store_is_an_empty_runs_page(tmp_path: Path) -> None:
    missing = tmp_path / "never-created"
    async with _client(missing) as c:
        page = await c.get("/")
        assert page.status_code == 200
        assert "No runs yet in" in page.text
        assert (await c.get("/api/runs")).json() == {"runs": []}
        assert (await c.get("/runs/anything")).status_code == 404
    assert not missing.exists()  # reading never creates a store


async def test_the_token_is_required_on_every_request(store: Store) -> None:
    async with _client(store.state_dir, token=TOKEN, loopback_only=False) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/api/runs")).status_code == 401
        assert (await c.get("/", headers={"authorization": "Bearer wrong"})).status_code == 401
        ok = await c.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        # ?token= once: an HttpOnly cookie, and the token leaves the URL
        first = await c.get("/", params={"token": TOKEN, "state": "failed"})
        assert first.status_code == 303
        assert first.headers["location"] == "/?state=failed"
        assert "httponly" in first.headers["set-cookie"].lower()
        assert (await c.get("/")).status_code == 200  # the cookie now
        assert (await c.get("/static/dashboard.css")).status_code == 200


async def test_loopback_only_refuses_other_host_names(client: httpx.AsyncClient) -> None:
    """A DNS-rebinding page (Host: evil.example) cannot read a loopback dashboard."""
    assert (await client.get("/", headers={"host": "evil.example:8765"})).status_code == 421
    assert (await client.get("/", headers={"host": "localhost:8765"})).status_code == 200


async def _history_len(store: Store, run_id: str) -> int:
    run = await monitor.get_run(run_id, state_dir=store.state_dir)
    assert run is not None
    return run.resumes


async def test_cross_site_posts_are_refused(client: httpx.AsyncClient, store: Store) -> None:
    csrf = _csrf((await client.get("/")).text)
    url = f"/runs/{store.failed_id}/resume"
    refused = [
        await client.post(url, data={"csrf": csrf}, headers={"origin": "http://evil.example"}),
        await client.post(url, data={"csrf": csrf}, headers={"sec-fetch-site": "cross-site"}),
        await client.post(url, data={"csrf": csrf}, headers={"origin": "null"}),
        await client.post(url, data={"csrf": "forged"}),
        await client.post(url, data={}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert await _history_len(store, store.failed_id) == 0  # nothing was resumed
    assert (await client.get(url)).status_code == 405  # actions are POSTs only


async def test_resume_from_the_page_runs_it_again(
    client: httpx.AsyncClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    csrf = _csrf((await client.get(f"/runs/{store.failed_id}")).text)
    url = f"/runs/{store.failed_id}/resume"
    # The run's secret is read from the server's environment again, as for the CLI.
    refused = await client.post(url, data={"csrf": csrf}, headers={"origin": BASE})
    assert refused.status_code == 409
    assert "secret &#x27;TOKEN&#x27; of run" in refused.text
    monkeypatch.setenv("TOKEN", SECRET)
    response = await client.post(
        f"/runs/{store.failed_id}/resume", data={"csrf": csrf}, headers={"origin": BASE}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/runs/{store.failed_id}"
    with anyio.fail_after(30):
        while True:
            run = await monitor.get_run(store.failed_id, state_dir=store.state_dir)
            assert run is not None
            if run.state is not RunState.RUNNING:
                break
            await anyio.sleep(0.05)
    assert run.resumes == 1
    assert run.owner_kind == "ui"
    assert run.state is RunState.FAILED  # the step fails again: it is the same plan
    steps = {s.step_id: s for s in await monitor.get_steps(run.run_id, state_dir=store.state_dir)}
    assert [a.attempt for a in steps["test"].attempts] == [1, 2, 3, 4]


async def test_resume_of_a_succeeded_run_has_nothing_to_rerun(
    client: httpx.AsyncClient, store: Store
) -> None:
    csrf = _csrf((await client.get("/")).text)
    response = await client.post(
        f"/api/runs/{store.ok_id}/resume", headers={"x-csrf-token": csrf, "origin": BASE}
    )
    assert response.status_code == 200, response.text
    assert "nothing to rerun" in response.json()["message"]


async def test_cancel_of_a_finished_run_says_why(client: httpx.AsyncClient, store: Store) -> None:
    csrf = _csrf((await client.get("/")).text)
    response = await client.post(f"/api/runs/{store.ok_id}/cancel", headers={"x-csrf-token": csrf})
    assert response.status_code == 409
    assert response.json()["message"] == f"run {store.ok_id} is not running (state: succeeded)"
    missing = await client.post("/api/runs/nope/cancel", headers={"x-csrf-token": csrf})
    assert missing.status_code == 404


async def test_an_unreadable_store_is_a_clear_page(tmp_path: Path) -> None:
    """A state dir whose runs.db is not a database: a page saying so, not a traceback."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "runs.db").write_bytes(b"this is not a SQLite database" * 100)
    async with _client(state_dir) as c:
        for path in ("/", "/api/runs", "/runs/x"):
            response = await c.get(path)
            assert response.status_code == 500, path
            assert "Traceback" not in response.text
            assert "runs.db" in response.text or "run store" in response.text, response.text


async def test_the_runs_list_says_what_triggered_a_run(tmp_path: Path) -> None:
    """A run ``planrun serve`` started shows its trigger in the runs list (page and
    ``/api/runs``, which the live list redraws from); one started by hand shows none."""
    state_dir = tmp_path / "state"
    plan = tmp_path / "synced.json"
    plan.write_text(json.dumps(make_plan([sh_step("only", "true")], plan_id="synced")))
    fired = {"kind": "git", "branch": "main", "sha": "5d6e7f8" + "0" * 33, "old_sha": "1a2b3c4"}
    by_trigger = await run_plan(plan, state_dir=state_dir, options=RunOptions(trigger=fired))
    by_hand = await run_plan(plan, state_dir=state_dir)
    async with _client(state_dir) as c:
        html = (await c.get("/")).text
        listed = {r["run_id"]: r for r in (await c.get("/api/runs")).json()["runs"]}
    assert '<td class="trigger">git main 1a2b3c4..5d6e7f8</td>' in html
    started = listed[by_hand.run_id]["started_at"]
    assert f'<time datetime="{started}"' in html  # shown as "YYYY-MM-DD HH:MM:SS UTC"
    assert started[:19].replace("T", " ") + " UTC</time>" in html
    assert listed[by_trigger.run_id]["trigger_summary"] == "git main 1a2b3c4..5d6e7f8"
    assert listed[by_hand.run_id]["trigger_summary"] == ""
