"""``planrun serve --ui`` in a real headless Chromium: the runs page says which plans
serve fires, and its triggers page lists each trigger with its next fire time (UTC
and the schedule's zone), the last slot fired with what was decided, and the plan's
``on_overlap``. Skipped without Playwright or Chromium unless
``PLANRUN_REQUIRE_BROWSER=1`` (then a failure), like tests/acceptance/test_ui_browser.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ._cli import sh, wait_until, write_json
from .test_cli_serve import SERVE_WAIT, finished, serving


def test_serve_ui_shows_each_plans_triggers_and_next_fire(tmp_path: Path, browser: Any) -> None:
    shots = Path(os.environ.get("PLANRUN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    path = write_json(
        tmp_path / "nightly.json",
        {
            "plan_id": "nightly",
            "steps": [sh("ok", "true")],
            "triggers": [
                {"schedule": "30 2 1 1 *", "timezone": "Europe/Berlin"},
                {"every_sec": 60},
            ],
            "on_overlap": "queue",
        },
    )
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state, extra=("--ui", "--port", "0")) as (_proc, log):
        # every_sec 60: the current slot is at most 60 s old, due at start: one run
        assert wait_until(lambda: len(finished(state)) >= 1, SERVE_WAIT), log.read_text()
        found = re.search(r"serving .* at (http://\S+/)", log.read_text())
        assert found is not None, log.read_text()
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(found[1])
        panel = page.locator("#served")
        assert "nightly: 2 trigger(s)" in panel.inner_text()
        page.screenshot(path=str(shots / "serve-runs.png"), full_page=True)
        page.click('#served a[href="/triggers"]')
        page.wait_for_url(re.compile(r"/triggers$"))
        rows = page.locator('section[data-plan="nightly"] table.triggers tbody tr')
        assert rows.count() == 2
        cron, every = rows.nth(0).inner_text(), rows.nth(1).inner_text()
        assert "schedule 30 2 1 1 * (Europe/Berlin)" in cron
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", cron), cron
        assert re.search(r"02:30 CET \(Europe/Berlin\)", cron), cron
        assert "never fired" in cron
        assert "every 60s" in every
        assert "started" in every  # the slot it fired at start, and what was decided
        head = page.locator('section[data-plan="nightly"] p').inner_text()
        assert "on_overlap queue" in head
        page.screenshot(path=str(shots / "serve-triggers.png"), full_page=True)
