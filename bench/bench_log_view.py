"""How the log view copes with a big log: time and size of the first page, an older
window, a forward window and a search, over HTTP (httpx's ASGI transport) on a real
store whose one step wrote ``--lines`` lines (default 50,000) of ``--width`` bytes
(default 400: 20 MB).

Run: ``python bench/bench_log_view.py [--lines N] [--width B] [--repeat R]``. Prints
a table (best of ``R``); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx

from planrun import monitor, run_plan
from planrun.ui.app import create_app

WRITE = (
    "import sys\n"
    "n, w = int(sys.argv[1]), int(sys.argv[2])\n"
    "out = sys.stdout\n"
    "for i in range(n):\n"
    "    head = f'line {i:06d} see https://example.com/build/{i} '\n"
    "    out.write(head + 'x' * (w - len(head) - 1) + '\\n')\n"
)


async def _store(root: Path, lines: int, width: int) -> tuple[Path, str]:
    plan = {
        "plan_id": "bench-log",
        "steps": [
            {"id": "big", "command": sys.executable, "args": ["-c", WRITE, str(lines), str(width)]}
        ],
    }
    path = root / "plan.json"
    path.write_text(json.dumps(plan))
    state_dir = root / "state"
    result = await run_plan(path, state_dir=state_dir, run_id="bench-log")
    assert result.ok, result
    return state_dir, "bench-log"


async def _time(client: httpx.AsyncClient, url: str, repeat: int) -> tuple[float, int, int]:
    best, size, status = float("inf"), 0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        resp = await client.get(url)
        best = min(best, time.perf_counter() - t0)
        size, status = len(resp.content), resp.status_code
    return best, size, status


async def main(lines: int, width: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state_dir, run_id = await _store(Path(tmp), lines, width)
        steps = await monitor.get_steps(run_id, state_dir=state_dir)
        size = (await anyio.Path(steps[0].attempts[-1].log_path or "").stat()).st_size
        print(f"log: {lines} lines, {size / 1e6:.1f} MB")
        app = create_app(state_dir)
        base = f"/api/runs/{run_id}/steps/big/log"
        mid = size // 2
        cases = [
            ("log page (tail, HTML)", f"/runs/{run_id}/steps/big/log"),
            ("window: tail 200", f"{base}/window?lines=200"),
            ("window: 200 before the middle", f"{base}/window?before={mid}&lines=200"),
            ("window: 200 after the start", f"{base}/window?after=0&lines=200"),
            ("search: 1 match", f"{base}/search?q=line%20025000"),
            ("search: capped (200)", f"{base}/search?q=example.com"),
            ("search: no match", f"{base}/search?q=nowhere-to-be-found"),
        ]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
        ) as client:
            print(f"{'request':32} {'ms':>8} {'bytes':>10} status")
            for name, url in cases:
                sec, size, status = await _time(client, url, repeat)
                print(f"{name:32} {sec * 1000:8.1f} {size:10d} {status}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.lines, args.width, args.repeat)
