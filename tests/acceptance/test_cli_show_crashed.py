"""The first `show` after the owner was kill -9ed already says `crashed` (issue 11,
"Also seen"): it marks the run before it reads it, as `list` does."""

from __future__ import annotations

import json
from pathlib import Path

from ._cli import planrun
from .test_cli_crash import _kill_mid_run


def test_first_show_json_after_kill_9_says_crashed(tmp_path: Path) -> None:
    """No `list` first: the very first `show --json` has the run and its running step
    crashed."""
    state = _kill_mid_run(tmp_path, "first-show-1")
    shown = planrun("show", "first-show-1", "--json", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["run"]["state"] == "crashed"
    assert {s["step_id"]: s["state"] for s in doc["steps"]} == {
        "quick": "succeeded",
        "slow": "crashed",
        "after": "pending",
    }


def test_first_show_after_kill_9_prints_crashed(tmp_path: Path) -> None:
    """The same for the table form."""
    state = _kill_mid_run(tmp_path, "first-show-2")
    shown = planrun("show", "first-show-2", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    state_line = next(line for line in shown.stdout.splitlines() if line.startswith("state"))
    assert state_line.split()[1].rstrip(":") == "crashed", shown.stdout
