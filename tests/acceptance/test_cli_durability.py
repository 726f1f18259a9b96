"""``PLANRUN_SYNC``: how durable a committed event is (README "The run store"), through
the real CLI. Either way every event is recorded, gap-free, with the same bytes in
SQLite and in ``events.jsonl``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli import clean_env, planrun, query, sh, write_json


def _fanout_plan(tmp_path: Path) -> Path:
    """A producer, a for_each over its output (instances added while the run goes) and
    a step after them: every kind of row the recorder writes."""
    return write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "durability",
            "steps": [
                sh("list", 'echo "items=[1,2,3]" >> "$PLANRUN_OUTPUT"'),
                {
                    **sh("each", "echo item ${item}"),
                    "depends_on": ["list"],
                    "for_each": "${steps.list.outputs.items}",
                },
                {**sh("after", "echo done"), "depends_on": ["each"]},
            ],
        },
    )


@pytest.mark.parametrize("sync", ["full", "normal", "NORMAL"])
def test_every_event_is_recorded_the_same_in_sqlite_and_jsonl(tmp_path: Path, sync: str) -> None:
    state = tmp_path / "state"
    plan = _fanout_plan(tmp_path)
    env = clean_env(PLANRUN_SYNC=sync)
    result = planrun(
        "run", plan, "--plain", "--state-dir", state, "--run-id", "r", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    rows = query(state / "runs.db", "SELECT seq, body FROM events WHERE run_id = 'r' ORDER BY seq")
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1))
    jsonl = (state / "runs" / "r" / "events.jsonl").read_text(encoding="utf-8")
    assert jsonl == "".join(body + "\n" for _, body in rows)
    steps = dict(query(state / "runs.db", "SELECT step_id, state FROM steps WHERE run_id = 'r'"))
    assert steps == {
        "list": "succeeded",
        "each": "succeeded",
        "each[0:1]": "succeeded",
        "each[1:2]": "succeeded",
        "each[2:3]": "succeeded",
        "after": "succeeded",
    }


def test_an_unknown_setting_is_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    plan = write_json(
        tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("s", f"touch {marker}")]}
    )
    state = tmp_path / "state"
    result = planrun(
        "run", plan, "--state-dir", state, cwd=tmp_path, env=clean_env(PLANRUN_SYNC="sometimes")
    )
    assert result.returncode == 2
    assert "$PLANRUN_SYNC must be 'full' or 'normal', not 'sometimes'" in result.stderr
    assert not marker.exists()
    assert not state.exists()
