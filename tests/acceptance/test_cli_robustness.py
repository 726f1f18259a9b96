"""Hostile text and broken observers never turn into tracebacks or half-recorded runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._cli import PLANRUN, clean_env, planrun, query, write_json


def test_markup_like_text_is_shown_verbatim(tmp_path: Path) -> None:
    """Plan ids, reasons and paths that look like rich markup are printed as data."""
    plan = write_json(
        tmp_path / "p.json",
        {"plan_id": "demo[/]", "steps": [{"id": "a", "command": "no-such-[/]-prog"}]},
    )
    state = tmp_path / "state"
    result = planrun("run", plan, "--state-dir", state, "--run-id", "m1", cwd=tmp_path)
    assert result.returncode == 1
    assert "no-such-[/]-prog" in result.stdout
    listed = planrun("list", "--state-dir", state, cwd=tmp_path)
    assert "demo[/]" in listed.stdout
    shown = planrun("show", "m1", "--state-dir", state, cwd=tmp_path)
    assert "no-such-[/]-prog" in shown.stdout


def test_nul_in_a_variable_is_a_validation_error(tmp_path: Path) -> None:
    """A NUL byte in a variable value is refused before anything runs (exit 2)."""
    plan = write_json(
        tmp_path / "p.json",
        {
            "plan_id": "nul",
            "variables": {"X": "a\u0000b"},
            "steps": [{"id": "a", "command": "true"}],
        },
    )
    result = planrun("run", plan, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 2
    assert "$.variables.X" in result.stderr
    assert "NUL" in result.stderr
    assert not (tmp_path / "state").exists()


def test_closed_stdout_does_not_break_the_run(tmp_path: Path) -> None:
    """`planrun run ... | head -c 10`: the run still finishes and is recorded finished."""
    plan = write_json(
        tmp_path / "p.json",
        {
            "plan_id": "pipe",
            "steps": [{"id": f"s{i}", "command": "echo", "args": ["x" * 200]} for i in range(20)],
        },
    )
    shell = (
        f"{' '.join(PLANRUN)} run {plan} --state-dir {tmp_path / 'state'} "
        "--run-id piped --plain | head -c 10"
    )
    result = subprocess.run(
        ["sh", "-c", shell],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    rows = query(tmp_path / "state" / "runs.db", "SELECT state FROM runs WHERE run_id='piped'")
    assert rows == [("succeeded",)]
