"""The store's errors through the real CLI: the library says what is wrong in its own
terms (``RunExists``, ``NoRunStore``), the CLI adds which flag to use."""

from __future__ import annotations

from pathlib import Path

from ._cli import planrun, sh, write_json


def test_a_taken_run_id_says_to_choose_another(tmp_path: Path) -> None:
    """A second ``run --run-id same`` exits 2 with the CLI's hint and runs nothing."""
    marker = tmp_path / "marker"
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "p", "steps": [sh("s", f"echo ran >> {marker}")]},
    )
    assert planrun("run", plan, "--run-id", "same", cwd=tmp_path).returncode == 0
    again = planrun("run", plan, "--run-id", "same", cwd=tmp_path)
    assert again.returncode == 2
    assert "run id 'same' already exists; choose another --run-id" in again.stderr
    assert marker.read_text() == "ran\n"


def test_no_store_says_where_to_point_the_state_dir(tmp_path: Path) -> None:
    """``show`` on a dir without a store names the path and the flag (and the variable)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = planrun("show", "x", "--state-dir", empty, cwd=tmp_path)
    assert result.returncode != 0
    text = result.stderr.replace("\n", "")
    assert f"no run store at {empty / 'runs.db'}; pass --state-dir (or set " in text
    assert "PLANRUN_STATE_DIR) to where the run was started" in text
