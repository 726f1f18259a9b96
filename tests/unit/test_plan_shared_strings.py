"""Steps that run the same program share one string for it (issue 16, memory): a
decoded plan of 100,000 ``true`` steps kept 100,000 copies of ``"true"`` (5 MB)."""

from __future__ import annotations

import json
from pathlib import Path

from planrun.prepare import prepare


def test_equal_commands_are_one_string(tmp_path: Path) -> None:
    steps = [{"id": f"s{i}", "command": "true" if i % 2 else "echo"} for i in range(6)]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"plan_id": "p", "steps": steps}), encoding="utf-8")
    plan = prepare(str(path)).plan
    odd = [s.command for s in plan.steps[1::2]]
    even = [s.command for s in plan.steps[0::2]]
    assert odd == ["true"] * 3
    assert even == ["echo"] * 3
    assert odd[0] is odd[1] is odd[2]
    assert even[0] is even[1] is even[2]
