"""How fast a big run's page loads in headless Chromium (issue 14: ≤ 2 s at 10,000 steps).

Builds a run of N steps with :class:`planrun.testing.ScriptedExecutor` (no processes:
``LEVELS`` levels, each step depending on two of the level before; a few non-critical
steps fail and skip their dependents), serves it with a real ``planrun ui``, and times
the run page in Chromium (``/usr/bin/chromium``, Playwright): server time of the HTML,
its size, ``DOMContentLoaded`` and ``load``; the pieces the page fetches later
(the collapsed graph, a level, a page of table rows). Then, live: a second N-step run
whose steps each take ``--delay`` seconds, its page opened mid-run: the load, how many
times the progress bar moved, and how long after the run's end the page showed 100%.
Run: ``python bench/bench_ui_page.py [--steps 10000] [--levels 100]``. Prints a table;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

from planrun import run_plan
from planrun.testing import Fail, ScriptedExecutor, Succeed

CHROMIUM = os.environ.get("PLANRUN_CHROMIUM", "/usr/bin/chromium")


def big_plan(steps: int, levels: int) -> dict[str, Any]:
    """``steps`` steps in ``levels`` levels; step ``L.i`` depends on two steps of level
    ``L-1``; every failing step is non-critical with ``skip_dependents``."""
    width = max(1, steps // levels)
    out: list[dict[str, Any]] = []
    for n in range(steps):
        level, i = divmod(n, width)
        deps = (
            []
            if level == 0
            else sorted({f"s{level - 1}-{i}", f"s{level - 1}-{(i * 7 + 3) % width}"})
        )
        out.append(
            {
                "id": f"s{level}-{i}",
                "command": "true",
                "depends_on": deps,
                "critical": False,
                "on_failure": "skip_dependents",
            }
        )
    return {"plan_id": "big", "globals": {"max_concurrency": 64}, "steps": out}


def failing(plan: dict[str, Any]) -> list[str]:
    """The steps the bench makes fail: one every 997 steps (skip their dependents)."""
    return [s["id"] for n, s in enumerate(plan["steps"]) if n % 997 == 500]


async def build(state_dir: Path, steps: int, levels: int, run_id: str, delay: float = 0.0) -> float:
    """Run the big plan (each step taking ``delay`` s); the time it ended (perf_counter)."""
    plan = big_plan(steps, levels)
    path = state_dir.parent / f"{run_id}.json"
    path.write_text(json.dumps(plan))
    executor = ScriptedExecutor({s: Fail(1) for s in failing(plan)}, Succeed(delay=delay))
    await run_plan(path, state_dir=state_dir, run_id=run_id, executor=executor)
    return time.perf_counter()


def serve(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    err = tmp / "ui-err.txt"
    with err.open("wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planrun",
                "ui",
                "--port",
                "0",
                "--state-dir",
                str(tmp / "state"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    for _ in range(300):
        if found := re.search(r"at (http://\S+/)", err.read_text()):
            return proc, found.group(1)
        time.sleep(0.1)
    raise SystemExit(f"the server did not start: {err.read_text()}")


def measure(url: str, tries: int) -> list[tuple[str, float]]:
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for n in range(tries):
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            t0 = time.perf_counter()
            page.goto(url, wait_until="load")
            page.wait_for_selector("svg.dag")
            shown = time.perf_counter() - t0
            timing = page.evaluate(
                "(() => { const t = performance.getEntriesByType('navigation')[0];"
                " return [t.responseStart - t.requestStart, t.responseEnd - t.requestStart,"
                " t.domContentLoadedEventEnd, t.loadEventEnd, t.transferSize]; })()"
            )
            rows += [
                (f"try {n + 1}: first byte (ms)", timing[0]),
                (f"try {n + 1}: HTML received (ms)", timing[1]),
                (f"try {n + 1}: DOMContentLoaded (ms)", timing[2]),
                (f"try {n + 1}: load (ms)", timing[3]),
                (f"try {n + 1}: graph shown, wall (ms)", shown * 1000),
            ]
            if n == 0:
                rows.append(("HTML size (KB)", timing[4] / 1024))
                rows.append(
                    ("DOM elements", page.evaluate("document.getElementsByTagName('*').length"))
                )
                page.screenshot(path=str(Path(tempfile.gettempdir()) / "bench-ui-page.png"))
            page.close()
        browser.close()
    return rows


def pieces(url: str) -> list[tuple[str, float]]:
    """Server time of what the page fetches after it loads."""
    rows = []
    with httpx.Client(timeout=60) as client:
        for label, path in (
            ("graph.svg, collapsed (ms)", "/graph.svg"),
            ("graph.svg?level=50 (ms)", "/graph.svg?level=50"),
            ("steps?offset=200, 500 rows (ms)", "/steps?offset=200"),
            ("events?before=1000 (ms)", "/events?before=1000"),
        ):
            t0 = time.perf_counter()
            client.get(url + path).raise_for_status()
            rows.append((label, (time.perf_counter() - t0) * 1000))
    return rows


def live(tmp: Path, url: str, steps: int, levels: int, delay: float) -> list[tuple[str, float]]:
    """A run going on while its page is open: load time, bar moves, lag at the end."""
    from playwright.sync_api import sync_playwright

    ended: list[float] = []
    state = tmp / "state"
    builder = threading.Thread(
        target=lambda: ended.append(anyio.run(build, state, steps, levels, "bench-live", delay))
    )
    builder.start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        while (response := page.goto(url + "runs/bench-live")) is None or response.status != 200:
            time.sleep(0.2)  # (the run is not in the store yet)
        loaded = page.evaluate(
            "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
        )
        start = page.locator("#run-progress .bar").get_attribute("aria-valuenow")
        seen = [start]
        while not ended or seen[-1] != "100":
            value = page.locator("#run-progress .bar").get_attribute("aria-valuenow")
            if value != seen[-1]:
                seen.append(value)
            time.sleep(0.05)
            if ended and time.perf_counter() - ended[0] > 30:
                break
        lag = time.perf_counter() - ended[0]
        browser.close()
    builder.join()
    return [
        ("live: DOMContentLoaded mid-run (ms)", loaded),
        ("live: % when the page opened", float(start or 0)),
        ("live: times the bar moved", float(len(seen) - 1)),
        ("live: 100% shown after the end (ms)", lag * 1000),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--levels", type=int, default=100)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.2, help="each live step's seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        t0 = time.perf_counter()
        anyio.run(build, tmp / "state", args.steps, args.levels, "bench-big")
        built = time.perf_counter() - t0
        proc, url = serve(tmp)
        try:
            rows = [("steps", float(args.steps)), ("build the run (s)", built)]
            rows += measure(url + "runs/bench-big", args.tries)
            rows += pieces(url + "runs/bench-big")
            rows += live(tmp, url, args.steps, args.levels, args.delay)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    print(f"{'run page of a ' + str(args.steps) + '-step run':<40} {'value':>10}")
    for label, value in rows:
        print(f"{label:<40} {value:>10.1f}")


if __name__ == "__main__":
    main()
