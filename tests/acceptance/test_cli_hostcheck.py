"""``validate`` (and ``run --dry-run``) warn about programs, scripts and working
directories missing on this host, through the real CLI: exit 0, each warning naming
the step, its JSON path and what to do; values not known before the run are skipped."""

from __future__ import annotations

from pathlib import Path

from ._cli import planrun, write_json


def _write(tmp_path: Path, *steps: dict[str, object], **top: object) -> Path:
    return write_json(tmp_path / "plan.json", {"plan_id": "host", **top, "steps": list(steps)})


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": warning: " in line]


def test_validate_warns_about_each_missing_thing_and_exits_0(tmp_path: Path) -> None:
    """A program not on PATH, a program path and a script that do not exist, a cwd that
    does not exist: four warnings, each naming its step and path; the plan is valid."""
    plan = _write(
        tmp_path,
        {"id": "prog", "command": "no-such-program-planrun"},
        {"id": "path", "command": "./bin/tool"},
        {"id": "script", "command": "sh", "args": ["-e", "${PLAN_DIR}/scripts/gone.sh"]},
        {"id": "dir", "command": "true", "cwd": "work/${D}"},
        {"id": "fine", "command": "sh", "args": ["-c", "exit 0"], "cwd": "."},
        variables={"D": "sub"},
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid plan 'host'" in result.stdout
    lines = _warnings(result.stderr)
    expected = [
        f"{plan}: $.steps[0].command (step 'prog'): warning: program "
        "'no-such-program-planrun' is not on PATH on this host; install it",
        f"{plan}: $.steps[1].command (step 'path'): warning: program "
        f"'{tmp_path}/bin/tool' does not exist on this host; fix the path",
        f"{plan}: $.steps[2].args[1] (step 'script'): warning: script "
        f"'{tmp_path}/scripts/gone.sh' does not exist on this host; fix the path",
        f"{plan}: $.steps[3].cwd (step 'dir'): warning: working directory "
        f"'{tmp_path}/work/sub' does not exist on this host; create it",
    ]
    assert len(lines) == len(expected), result.stderr
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


def test_path_comes_from_the_step_and_late_values_are_skipped(tmp_path: Path) -> None:
    """PATH set in the step's env is the one searched; a field using a step's results
    or a variable without a value is not checked (it is not known before the run)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    plan = _write(
        tmp_path,
        {"id": "own", "command": "mytool", "env": {"PATH": str(bindir)}},
        {"id": "elsewhere", "command": "mytool"},
        {"id": "late", "command": "sh", "args": ["${steps.own.outputs.S}"], "depends_on": ["own"],
         "cwd": "${steps.own.outputs.D}"},
        {"id": "unset", "command": "${TOOL}", "cwd": "${DIR}"},
        variables={"TOOL": None, "DIR": None},
    )  # fmt: skip
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = _warnings(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "(step 'elsewhere'): warning: program 'mytool' is not on PATH" in lines[0]
    assert "required at run time: TOOL, DIR" in result.stderr


def test_dry_run_shows_the_same_warnings_and_a_run_does_not(tmp_path: Path) -> None:
    """``run --dry-run`` warns as validate does; a real run reports the real failure
    instead (an earlier step may create what is missing)."""
    plan = _write(tmp_path, {"id": "prog", "command": "no-such-program-planrun"})
    dry = planrun("run", plan, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "(step 'prog'): warning: program 'no-such-program-planrun' is not on PATH" in dry.stderr
    ran = planrun("run", plan, "--plain", cwd=tmp_path)
    assert ran.returncode == 1
    assert "warning: program" not in ran.stderr


def test_globals_cwd_is_reported_once_naming_its_steps(tmp_path: Path) -> None:
    """A missing ``globals.cwd`` is one warning that names the steps using it."""
    plan = _write(
        tmp_path,
        {"id": "a", "command": "true"},
        {"id": "b", "command": "true"},
        {"id": "c", "command": "true", "cwd": "."},
        globals={"cwd": "nowhere"},
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = _warnings(result.stderr)
    assert len(lines) == 1, result.stderr
    missing = f"working directory '{tmp_path}/nowhere' does not exist"
    assert f"$.globals.cwd: warning: {missing}" in lines[0]
    assert "(the working directory of steps a, b)" in lines[0]
