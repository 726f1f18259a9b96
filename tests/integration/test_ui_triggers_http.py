"""The dashboard's triggers view over HTTP (httpx's ASGI transport): fed by
``planrun serve``'s :class:`~planrun.serve.board.Board` over a REAL store (a real
``trigger_state`` row), as ``serve --ui`` feeds it; and without one (``planrun ui``
alone), where it only says where triggers are shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from planrun import triggers as arith
from planrun.serve.board import Board
from planrun.serve.loader import load_plan_file
from planrun.serve.runner import PlanRunner
from planrun.store.sqlite import SqliteStore
from planrun.store.trigger_state import save_trigger_state
from planrun.ui.app import Guarded, create_app

from .helpers import make_plan, sh_step

pytestmark = pytest.mark.anyio

BASE = "http://127.0.0.1:8765"
HOSTILE = "<script>alert(1)</script>.py"


def _plan_file(tmp_path: Path) -> Path:
    plan = make_plan([sh_step("ok", "true")], plan_id="nightly")
    plan["triggers"] = [
        {"schedule": "30 3 * * *", "timezone": "Europe/Berlin"},
        {"every_sec": 900},
        {"watch": [HOSTILE]},
    ]
    plan["on_overlap"] = "queue"
    path = tmp_path / "nightly.json"
    path.write_text(json.dumps(plan))
    return path


async def _get(app: Guarded, *paths: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        return [await c.get(p) for p in paths]


async def test_serve_board_shows_each_trigger_its_next_fire_and_last_slot(
    tmp_path: Path,
) -> None:
    loaded = load_plan_file(_plan_file(tmp_path))
    state_dir = tmp_path / "state"
    every = loaded.prepared.plan.triggers[1]
    every_key = arith.trigger_key(1, every)
    fired = arith.prev_fire(every, datetime.now(UTC))
    assert fired is not None
    board = Board()
    async with SqliteStore.open(state_dir) as store, anyio.create_task_group() as tg:
        runner = PlanRunner(loaded, store, state_dir, tg, lambda _: None, [])
        await save_trigger_state(store, "nightly", every_key, arith.format_slot(fired), "skipped")
        board.attach(lambda: [(loaded, runner)], store)
        app = create_app(state_dir, triggers=board.snapshot)
        page, api, runs = await _get(app, "/triggers", "/api/triggers", "/")
        board.detach()
        (empty,) = await _get(app, "/api/triggers")
    assert page.status_code == api.status_code == runs.status_code == 200
    doc = api.json()
    assert doc["served"] is True
    (plan,) = doc["plans"]
    assert (plan["plan_id"], plan["on_overlap"], plan["running"]) == ("nightly", "queue", [])
    cron, interval, watch = plan["triggers"]
    assert cron["summary"] == "schedule 30 3 * * * (Europe/Berlin)"
    assert cron["timezone"] == "Europe/Berlin"
    upcoming = arith.parse_slot(cron["next_fire"])
    assert upcoming is not None
    assert upcoming > datetime.now(UTC)
    assert cron["next_fire_local"].split()[1] == "03:30"  # in Berlin's wall clock
    assert (cron["last_slot"], cron["last_state"]) == (None, None)
    assert interval["summary"] == "every 900s"
    assert (interval["last_slot"], interval["last_state"]) == (arith.format_slot(fired), "skipped")
    assert interval["next_fire"] == arith.format_slot(arith.next_fire(every, fired) or fired)
    assert (watch["kind"], watch["next_fire"]) == ("watch", None)
    html = page.text
    for shown in (cron["next_fire"], cron["next_fire_local"], "Europe/Berlin", "skipped", "queue"):
        assert shown in html, shown
    assert "never fired" in html
    assert "on changes" in html
    assert HOSTILE not in html  # escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py" in html
    assert 'id="served"' in runs.text
    assert 'href="/triggers"' in runs.text
    assert empty.json() == {"served": True, "plans": []}  # serve stopped


async def test_planrun_ui_alone_shows_no_triggers_but_says_where(tmp_path: Path) -> None:
    app = create_app(tmp_path / "state")
    page, api, runs = await _get(app, "/triggers", "/api/triggers", "/")
    assert page.status_code == 200
    assert "planrun serve --ui" in page.text
    assert api.json() == {"served": False, "plans": []}
    assert 'id="served"' not in runs.text
