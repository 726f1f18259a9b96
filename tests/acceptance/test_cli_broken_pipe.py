"""A reader that goes away (``planrun run plan.json | head -1``) does not stop the run,
in any output mode: it runs to its end, unprinted, with no warning or traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._cli import PLANRUN, clean_env, sh, show_run, write_json


@pytest.mark.parametrize("mode", ["prefixed", "grouped", "quiet", "json"])
def test_run_goes_on_when_stdout_closes(tmp_path: Path, mode: str) -> None:
    plan = write_json(
        tmp_path / "p.json",
        {
            "plan_id": "pipe",
            "steps": [
                sh("first", "echo one; echo two"),
                sh(
                    "later",
                    "sleep 0.5; for i in $(seq 200); do echo line $i; done",
                    depends_on=["first"],
                ),
            ],
        },
    )
    flags = ["--json"] if mode == "json" else ["--output", mode]
    proc = subprocess.Popen(
        [
            *PLANRUN,
            "run",
            str(plan),
            "--state-dir",
            str(tmp_path / "state"),
            "--run-id",
            "pipe-1",
            *flags,
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline()  # the reader takes one line, then leaves
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "raised" not in err, err
    assert "Traceback" not in err, err
    doc = show_run(tmp_path, "pipe-1")
    assert doc["run"]["state"] == "succeeded"
