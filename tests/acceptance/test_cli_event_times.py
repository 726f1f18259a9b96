"""The events one engine message causes share one timestamp (issue 16, memory): a
step's ``attempt_finished`` and the ``step_finished`` it decides carry the same ``ts``,
so a run's view holds one string for both (100,000 steps: 7.6 MB), while every event
is still recorded, in order, with times that never go back."""

from __future__ import annotations

import json
from pathlib import Path

from ._cli import planrun, query, read_events, sh, write_json


def test_a_steps_end_and_its_last_attempts_end_share_their_time(tmp_path: Path) -> None:
    steps = [sh("a", "exit 0"), sh("b", "exit 3", on_failure="continue"), sh("c", "exit 0")]
    steps[2]["depends_on"] = ["a"]
    plan = write_json(tmp_path / "plan.json", {"plan_id": "t", "steps": steps})
    state = tmp_path / "st"
    out = planrun("run", plan, "--plain", "--run-id", "r", "--state-dir", state, cwd=tmp_path)
    assert out.returncode == 1, out.stderr  # b failed; the others ran on
    events = read_events(state, "r")
    ended = {e["step_id"]: e["ts"] for e in events if e["type"] == "attempt_finished"}
    finished = {e["step_id"]: e["ts"] for e in events if e["type"] == "step_finished"}
    assert set(finished) == {"a", "b", "c"}
    assert finished == ended
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)  # never back in time
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    rows = query(state / "runs.db", "SELECT ts, body FROM events WHERE run_id = 'r' ORDER BY seq")
    assert [r[0] for r in rows] == stamps
    assert [json.loads(r[1])["ts"] for r in rows] == stamps
