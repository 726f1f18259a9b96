"""Which executor ran a run: ``planrun show`` says it on one line, and ``show --json``
and the ``run --json`` result carry it (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

from ._cli import planrun, sh, write_json


def test_show_names_the_executor_of_a_cli_run(tmp_path: Path) -> None:
    plan = write_json(tmp_path / "plan.json", {"plan_id": "exec", "steps": [sh("a", "true")]})
    state = tmp_path / "state"
    ran = planrun("run", plan, "--run-id", "exec-1", "--state-dir", state, "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.splitlines()[-1])
    assert (result["type"], result["executor"]) == ("result", "local")
    started = json.loads(ran.stdout.splitlines()[0])
    assert (started["type"], started["executor"]) == ("run_started", "local")

    shown = planrun("show", "exec-1", "--state-dir", state, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "executor  local" in lines
    owner = next(i for i, line in enumerate(lines) if line.startswith("owner     "))
    assert lines[owner + 1] == "executor  local"

    doc = json.loads(planrun("show", "exec-1", "--json", "--state-dir", state, cwd=tmp_path).stdout)
    assert doc["run"]["executor"] == "local"
