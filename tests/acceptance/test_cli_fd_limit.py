"""Under a low open-file limit steps wait instead of failing: planrun caps its
concurrency to what the limit holds, says so, and records it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ._cli import PY, clean_env, planrun, read_events, show_run, write_json


def test_a_run_under_ulimit_64_with_concurrency_100_succeeds(tmp_path: Path) -> None:
    """`ulimit -n 64`, max_concurrency 100, 200 steps: every step succeeds, and the cap
    is printed and recorded as a concurrency_capped event (76 failed before)."""
    steps = [{"id": f"s{i}", "command": "sh", "args": ["-c", "sleep 0.05"]} for i in range(200)]
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "fds", "globals": {"max_concurrency": 100}, "steps": steps},
    )
    run_id = "fd-limit"
    command = (
        'ulimit -n 64 && exec "$0" -m planrun run "$1" --state-dir state --run-id "$2" --plain'
    )
    result = subprocess.run(
        ["sh", "-c", command, PY, str(plan), run_id],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "max concurrency capped at" in result.stdout
    assert "open-file limit (64)" in result.stdout
    doc = show_run(tmp_path, run_id)
    assert doc["run"]["state"] == "succeeded"
    assert [s["state"] for s in doc["steps"]] == ["succeeded"] * 200
    capped = [
        e for e in read_events(tmp_path / "state", run_id) if e["type"] == "concurrency_capped"
    ]
    assert len(capped) == 1
    assert capped[0]["requested"] == 100
    assert capped[0]["fd_limit"] == 64
    assert 1 <= capped[0]["effective"] < 100
    watched = planrun("watch", run_id, "--plain", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    assert f"max concurrency capped at {capped[0]['effective']} (asked: 100)" in watched.stdout
    started = json.dumps(read_events(tmp_path / "state", run_id)[0])
    assert f'"max_concurrency": {capped[0]["effective"]}' in started
