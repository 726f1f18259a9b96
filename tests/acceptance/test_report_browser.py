"""The ``planrun report`` file opened from disk (a ``file://`` URL, no server) in a real
headless Chromium: it shows the graph with the failed step, the timeline, and the
failed step's log tail, and the browser requests nothing but the file itself. The
screenshot is saved under the test's temp dir (``PLANRUN_SCREENSHOTS`` to keep it).

Skipped when Playwright or Chromium is missing, unless ``PLANRUN_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .test_cli_graph_report import write_report


def test_the_report_opens_from_disk_and_shows_the_failure(tmp_path: Path, browser: Any) -> None:
    report = write_report(tmp_path)
    shots = Path(os.environ.get("PLANRUN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    url = report.as_uri()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        node = page.locator('svg.dag g.node[data-step="flaky.step"]')
        assert node.get_attribute("class") == "node state-failed"
        assert node.bounding_box() is not None  # drawn, not just present
        assert page.locator("svg.dag g.node").count() == 3
        assert page.locator('svg.gantt rect[data-step="flaky.step"]').count() == 3
        tail = page.locator('#failures .fail-block[data-step="flaky.step"] details[open] pre')
        assert tail.count() == 1
        assert tail.inner_text() == "attempt boom <script>alert(1)</script> ***"
        assert tail.is_visible()
        # Dashboard styles applied inline: a failed node is drawn red-filled.
        fill = node.locator("rect").evaluate("e => getComputedStyle(e).fill")
        assert fill == "rgb(254, 228, 226)"
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        assert requests == [url]  # nothing fetched but the file itself
    finally:
        page.close()
