"""The plan page and the paged log view in a real headless Chromium (Debian's
``chromium``, driven by Playwright with the system browser), over runs made by the real
CLI: a 50,000-line log opens at its tail, scrolling up loads older lines, a search
finds a line and opens it. Screenshots go under the test's temp dir
(``PLANRUN_SCREENSHOTS`` to keep them).

Skipped when Playwright or Chromium is missing, unless ``PLANRUN_REQUIRE_BROWSER=1``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._cli import PLANRUN, clean_env, sh, write_json
from ._ui import ui_server

BIG_LINES = 50_000


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    path = Path(os.environ.get("PLANRUN_SCREENSHOTS") or tmp_path / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plan(fail: bool) -> dict[str, Any]:
    big = (
        f"seq 1 {BIG_LINES} | awk '{{printf \"log line %06d see https://example.com/b/%d "
        'and a long tail of text that wraps: %s\\n", $1, $1, '
        '(($1 % 500) == 0 ? sprintf("%0300d", 0) : "")}\''
    )
    return {
        "plan_id": "nightly",
        "steps": [
            sh("build", big),
            sh("test", "echo FAIL; exit 1" if fail else "echo ok", depends_on=["build"]),
        ],
    }


def _run(tmp_path: Path, run_id: str, fail: bool) -> None:
    plan = write_json(tmp_path / f"{run_id}.json", _plan(fail))
    done = subprocess.run(
        [*PLANRUN, "run", str(plan), "--run-id", run_id, "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == (1 if fail else 0), done.stderr


def test_plan_page_and_a_big_log_in_the_browser(tmp_path: Path, browser: Any, shots: Path) -> None:
    for i, fail in enumerate([False, True, False, True]):
        _run(tmp_path, f"nightly-{i}", fail)
    with ui_server(tmp_path) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url[:-1])
        page = context.new_page()
        page.goto(server.url)
        page.click('a[href="/plans/nightly"]')
        page.wait_for_selector("svg.plan-chart")
        assert page.locator("#success-rate").inner_text() == "50%"
        assert page.locator("svg.plan-chart .pt.bad").count() == 2
        assert page.locator('#plan-steps tr[data-step="test"] td.failures').inner_text() == "2"
        page.screenshot(path=str(shots / "plan.png"), full_page=True)

        page.goto(f"{server.url}runs/nightly-3")
        page.click('a[href="/runs/nightly-3/steps/build/log"]')
        page.wait_for_selector("#log .ln")
        last = page.locator("#log-lines .ln").last
        assert last.inner_text().startswith(f"log line {BIG_LINES:06d}")
        assert last.is_visible()  # the tail is in view
        first_count = page.locator("#log-lines .ln").count()
        assert first_count == 200
        link = last.locator("a")
        assert link.get_attribute("href") == f"https://example.com/b/{BIG_LINES}"
        page.screenshot(path=str(shots / "log-tail.png"))
        page.click("#log-copy")
        page.wait_for_function("document.getElementById('log-status').textContent !== ''")
        assert page.locator("#log-status").inner_text() == "copied 200 lines"
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.splitlines()[-1].startswith(f"log line {BIG_LINES:06d}")
        assert len(copied.splitlines()) == 200

        page.locator("#log").evaluate("e => { e.scrollTop = 0; }")
        page.wait_for_function(
            f"document.querySelectorAll('#log-lines .ln').length > {first_count}", timeout=15_000
        )
        older = page.locator("#log-lines .ln").first.inner_text()
        assert older.startswith(f"log line {BIG_LINES - 399:06d}")

        page.fill("#log-search input[name=q]", "log line 012345")
        page.click("#log-search button[type=submit]")
        page.wait_for_selector("#log-matches a.match")
        assert page.locator("#log-matches li").count() == 1
        assert "1 matching lines" in page.locator("#log-status").inner_text()
        page.click("#log-matches a.match")
        hit = page.locator("#log-lines .ln.hit")
        hit.wait_for(timeout=15_000)
        assert hit.inner_text().startswith("log line 012345")
        assert hit.is_visible()
        page.screenshot(path=str(shots / "log-search.png"))
        # below the match, newer lines load on scrolling down
        page.locator("#log").evaluate("e => { e.scrollTop = e.scrollHeight; }")
        page.wait_for_function(
            "Array.from(document.querySelectorAll('#log-lines .ln'))"
            ".some(n => n.textContent.startsWith('log line 012346'))",
            timeout=15_000,
        )
        context.close()
