"""Hostile ``--var`` values reach a step as exactly one argv element, never as code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ._cli import PY, planrun, write_json

#: Writes its arguments after the first (the output file) as a JSON list.
DUMP_ARGS = "import sys, json; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"

HOSTILE = [
    "a; touch pwned",
    "$(touch pwned)",
    "`touch pwned`",
    "a\ntouch pwned",
    "-rf",
    "--upload-pack=touch pwned",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "a | touch pwned",
    "a && touch pwned",
    "two  words",
    "",
    "${PLAN_DIR}",
    "$${X}",
    "$X",
    "*",
]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_var_value_arrives_verbatim_as_one_argument(tmp_path: Path, value: str) -> None:
    """``--var X=<value>`` substituted into an argv element reaches the program as
    exactly ``[value]``: not split, not re-expanded, not run by any shell."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "injection",
            "steps": [
                {
                    "id": "dump",
                    "command": PY,
                    "args": ["-c", DUMP_ARGS, "out.json", "${X}"],
                }
            ],
        },
    )
    result = planrun("run", plan, "--var", f"X={value}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out.json"
    assert json.loads(out.read_text(encoding="utf-8")) == [value]
    assert not (tmp_path / "pwned").exists()
    assert not list(tmp_path.rglob("pwned"))
