"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by
Playwright with the system browser): a live run page rises to 100% without a reload,
a failed step's log tail opens on a click, a run is cancelled from its page. The
screenshots are saved under the test's temp dir (``PLANRUN_SCREENSHOTS`` to keep them).

Skipped when Playwright or Chromium is missing, unless ``PLANRUN_REQUIRE_BROWSER=1``
(the nox ``tests`` session sets it, and installs both): then that is a failure.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._cli import PLANRUN, clean_env, kill_pids, live_pids_with_env, sh, wait_until, write_json
from ._ui import ui_server


#: Set by the nox tests session: a missing Playwright or Chromium fails, not skips.
@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$PLANRUN_SCREENSHOTS`` if set, else the test's temp dir."""
    path = Path(os.environ.get("PLANRUN_SCREENSHOTS") or tmp_path / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_run(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.Popen[bytes]:
    plan_file = write_json(tmp_path / f"{run_id}.json", plan)
    state = str(tmp_path / "state")
    return subprocess.Popen(
        [*PLANRUN, "run", str(plan_file), "--run-id", run_id, "--state-dir", state],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _pipeline(gate: Path) -> dict[str, Any]:
    """Eight steps in four levels; ``wait`` holds the run until ``gate`` exists."""
    hold = f"while [ ! -f '{gate}' ]; do sleep 0.05; done"
    return {
        "plan_id": "pipeline",
        "globals": {"kill_grace_sec": 0.5, "max_concurrency": 4},
        "steps": [
            sh("checkout", "echo checked out"),
            sh("lint", "echo lint ok", depends_on=["checkout"]),
            sh("wait", hold, depends_on=["checkout"]),
            sh("unit", "for i in $(seq 1 30); do echo unit $i; done", depends_on=["wait"]),
            sh("integration", "sleep 0.2; echo ok", depends_on=["wait"]),
            sh("package", "echo pkg", depends_on=["lint", "unit", "integration"]),
            sh("docs", "echo docs", depends_on=["lint"]),
            sh("publish", "echo done", depends_on=["package", "docs"]),
        ],
    }


def _failing() -> dict[str, Any]:
    return {
        "plan_id": "nightly",
        "steps": [
            sh("fetch", "echo fetched"),
            sh("build", "echo built", depends_on=["fetch"]),
            sh(
                "test",
                "for i in $(seq 1 40); do echo test line $i; done; echo 'FAIL: 1 test'; exit 1",
                depends_on=["build"],
                retries=1,
            ),
            sh("lint", "echo lint", depends_on=["fetch"]),
            sh("deploy", "echo deploy", depends_on=["test", "lint"]),
        ],
    }


def test_a_live_run_page_rises_to_100_without_a_reload(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = "browser-live"
    failed = _start_run(tmp_path, _failing(), "browser-failed")
    assert failed.wait(timeout=60) == 1
    proc = _start_run(tmp_path, _pipeline(gate), run_id)
    try:
        with ui_server(tmp_path) as server:
            assert wait_until(lambda: live_pids_with_env("PLANRUN_STEP_ID", "wait") != [], 30)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_selector(f'tr[data-run="{run_id}"]')
            page.screenshot(path=str(shots / "runs.png"), full_page=True)
            page.goto(f"{server.url}runs/{run_id}")
            page.evaluate("window.__not_reloaded = true")
            bar = page.locator("#run-progress .bar")
            before = int(bar.get_attribute("aria-valuenow") or "-1")
            assert 0 < before < 100
            gate.touch()
            page.wait_for_function(
                "document.querySelector('#run-progress .bar')"
                ".getAttribute('aria-valuenow') === '100'",
                timeout=30_000,
            )
            page.wait_for_function("document.body.dataset.live === 'ended'", timeout=30_000)
            assert page.evaluate("window.__not_reloaded") is True
            fill = page.locator("#run-progress .bar .fill").evaluate("e => e.style.width")
            assert fill == "100%"
            assert page.locator("#cancel-form").is_hidden()  # the run ended: nothing to cancel
            # the timeline was redrawn live: publish had not started when the page loaded
            assert page.locator('svg.gantt rect[data-step="publish"]').count() == 1
            # drawn at the width the server computed (no page CSS may resize the bars)
            wait_bar = page.locator('svg.gantt rect[data-step="wait"]')
            drawn = wait_bar.evaluate("e => e.getBoundingClientRect().width")
            assert abs(drawn - float(wait_bar.get_attribute("width") or 0)) < 1
            assert page.locator("#run-state .state").inner_text() == "succeeded"
            assert page.locator('svg.dag g.node[data-step="publish"]').get_attribute("class") == (
                "node state-succeeded"
            )
            page.screenshot(path=str(shots / "run-succeeded.png"), full_page=True)
        assert proc.wait(timeout=30) == 0
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_clicking_a_failed_step_shows_its_log_tail(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    assert _start_run(tmp_path, _failing(), "browser-fail").wait(timeout=60) == 1
    with ui_server(tmp_path) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{server.url}runs/browser-fail")
        assert page.locator('svg.dag g.node[data-step="test"]').get_attribute("class") == (
            "node state-failed"
        )
        assert page.locator("svg.dag path.fail-path").count() >= 2
        page.click('button.log-toggle[data-step="test"]')
        log = page.locator('pre.log[data-step="test"]')
        log.wait_for()
        page.wait_for_function(
            "document.querySelector('pre.log').textContent.includes('FAIL: 1 test')",
            timeout=10_000,
        )
        assert "attempt 2" in log.inner_text()
        # a tail: scrolled to its newest line
        assert log.evaluate("e => e.scrollTop + e.clientHeight >= e.scrollHeight - 1")
        # the step has ended: its tail is loaded once, nothing polls
        assert page.evaluate("tails.get('test').timer") is None
        page.screenshot(path=str(shots / "run-failed.png"), full_page=True)


def test_cancelling_from_the_page_ends_the_run_cancelled(tmp_path: Path, browser: Any) -> None:
    run_id = "browser-cancel"
    proc = _start_run(tmp_path, _pipeline(tmp_path / "never"), run_id)
    try:
        with ui_server(tmp_path) as server:
            assert wait_until(lambda: live_pids_with_env("PLANRUN_STEP_ID", "wait") != [], 30)
            page = browser.new_page()
            page.goto(f"{server.url}runs/{run_id}")
            page.click("#cancel")
            page.wait_for_url(f"{server.url}runs/{run_id}", timeout=60_000)
            assert page.locator("#run-state .state").inner_text() == "cancelled"
        assert proc.wait(timeout=30) == 130
        assert wait_until(lambda: live_pids_with_env("PLANRUN_RUN_ID", run_id) == [], 10)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def test_new_runs_appear_and_a_failure_turns_the_path_red_live(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    """The runs page of an empty store shows a run started after it was opened; the
    run's page shows its step failing, and the failing path, without a reload."""
    gate = tmp_path / "gate"
    run_id = "browser-fails-live"
    plan = _failing()
    plan["steps"][1] = sh(
        "build", f"while [ ! -f '{gate}' ]; do sleep 0.05; done", depends_on=["fetch"]
    )
    with ui_server(tmp_path) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url)
        assert page.locator("p.empty").is_visible()
        page.evaluate("window.__not_reloaded = true")
        proc = _start_run(tmp_path, plan, run_id)
        try:
            page.wait_for_selector(f'tr[data-run="{run_id}"]', timeout=30_000)
            assert page.locator("p.empty").is_hidden()
            assert page.evaluate("window.__not_reloaded") is True
            page.click(f'tr[data-run="{run_id}"] a')
            page.wait_for_selector('svg.dag g.node.state-running[data-step="build"]')
            assert page.locator("svg.dag path.fail-path").count() == 0
            page.evaluate("window.__not_reloaded = true")
            gate.touch()
            # (a straight edge has no height: Playwright calls it hidden, so: attached)
            for edge in (
                '[data-from="build"][data-to="test"]',
                '[data-from="test"][data-to="deploy"]',
            ):
                page.wait_for_selector(
                    f"svg.dag path.fail-path{edge}", state="attached", timeout=30_000
                )
            page.wait_for_function("document.body.dataset.live === 'ended'", timeout=30_000)
            assert page.evaluate("window.__not_reloaded") is True
            assert page.locator("#resume-form").is_visible()
            assert page.locator("#run-reason").inner_text() == "step 'test' failed"
            page.screenshot(path=str(shots / "run-failed-live.png"), full_page=True)
            assert proc.wait(timeout=30) == 1
        finally:
            gate.touch()
            if proc.poll() is None:
                proc.kill()
            kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))


def _gated(gates: list[Path]) -> dict[str, Any]:
    """One step: attempt 1 prints 60 lines, then "first line", waits for gate 0, prints
    "second line", waits for gate 1 and fails; attempt 2 prints 60 lines, waits for
    gate 2, prints "retry last" and succeeds."""

    def hold(gate: Path) -> str:
        return f"while [ ! -f '{gate}' ]; do sleep 0.05; done"

    script = (
        'if [ "$PLANRUN_ATTEMPT" = 1 ]; then'
        " for i in $(seq 1 60); do echo early $i; done; echo first line;"
        f" {hold(gates[0])}; echo second line; {hold(gates[1])}; exit 1; fi;"
        f" for i in $(seq 1 60); do echo retry $i; done; {hold(gates[2])}; echo retry last"
    )
    return {
        "plan_id": "gated",
        "globals": {"kill_grace_sec": 0.5},
        "steps": [sh("live", script, retries=1)],
    }


def test_an_open_log_tail_follows_its_running_step_and_its_retry(
    tmp_path: Path, browser: Any, shots: Path
) -> None:
    gates = [tmp_path / f"gate{i}" for i in range(3)]
    run_id = "browser-livelog"
    proc = _start_run(tmp_path, _gated(gates), run_id)
    text = "document.querySelector('pre.log[data-step=\"live\"]').textContent"
    try:
        with ui_server(tmp_path) as server:
            assert wait_until(lambda: live_pids_with_env("PLANRUN_STEP_ID", "live") != [], 30)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{server.url}runs/{run_id}")
            page.wait_for_selector('#steps tr.step[data-step="live"] td.st .state-running')
            page.evaluate("window.__not_reloaded = true")
            page.click('button.log-toggle[data-step="live"]')
            log = page.locator('pre.log[data-step="live"]')
            page.wait_for_function(f"{text}.includes('first line')", timeout=10_000)
            assert "second line" not in log.inner_text()
            gates[0].touch()
            page.wait_for_function(f"{text}.includes('second line')", timeout=10_000)
            assert log.inner_text().startswith("attempt 1")
            # pinned to the bottom: the new line is in view
            assert log.evaluate("e => e.scrollTop + e.clientHeight >= e.scrollHeight - 1")
            page.screenshot(path=str(shots / "live-log.png"), full_page=True)
            gates[1].touch()  # attempt 1 fails: the retry's log replaces it
            page.wait_for_function(f"{text}.includes('retry 60')", timeout=10_000)
            assert log.inner_text().startswith("attempt 2")
            assert "first line" not in log.inner_text()
            assert log.evaluate("e => e.scrollTop + e.clientHeight >= e.scrollHeight - 1")
            log.evaluate("e => { e.scrollTop = 0; }")  # the reader scrolls up: it stays
            gates[2].touch()
            page.wait_for_function(f"{text}.includes('retry last')", timeout=10_000)
            assert log.evaluate("e => e.scrollTop") == 0
            page.wait_for_function("document.body.dataset.live === 'ended'", timeout=30_000)
            # the step ended: the tail's timer stopped (and the last lines are in)
            page.wait_for_function(
                "tails.get('live').timer === null && !tails.get('live').busy"
                " && document.querySelector('pre.log').dataset.live === 'off'",
                timeout=10_000,
            )
            assert "retry last" in log.inner_text()
            assert page.evaluate("window.__not_reloaded") is True
            page.screenshot(path=str(shots / "live-log-retried.png"), full_page=True)
            page.click('button.log-toggle[data-step="live"]')  # closed: forgotten
            assert page.evaluate("tails.has('live')") is False
        assert proc.wait(timeout=30) == 0
    finally:
        for gate in gates:
            gate.touch()
        if proc.poll() is None:
            proc.kill()
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
