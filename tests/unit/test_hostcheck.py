"""planrun.hostcheck: what would not be found on this host, checked on real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from planrun.hostcheck import check_host
from planrun.model import Plan
from planrun.plan import resolve_variables, validate

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [p for p in sorted((REPO / "plans").glob("*.json")) if p.name != "plan.schema.json"]


def _check(tmp_path: Path, *steps: dict[str, Any], env: dict[str, str] | None = None,
           **top: Any) -> list[tuple[str, str | None, str]]:  # fmt: skip
    plan = msgspec.convert({"plan_id": "h", **top, "steps": list(steps)}, Plan)
    values = {k: str(v) for k, v in plan.variables.items() if v is not None}
    values["PLAN_DIR"] = str(tmp_path)
    environ = env if env is not None else {"PATH": "/usr/bin:/bin"}
    problems = check_host(plan, values, tmp_path, environ, cwd=tmp_path)
    assert all(p.warning for p in problems)
    return [(p.path, p.step_id, p.message) for p in problems]


def test_a_plan_whose_things_exist_has_no_warning(tmp_path: Path) -> None:
    (tmp_path / "run.sh").write_text("exit 0\n")
    steps = [
        {"id": "a", "command": "sh", "args": ["${PLAN_DIR}/run.sh"]},
        {"id": "b", "command": "sh", "args": ["-c", "gone/x.sh"], "cwd": "."},
        {"id": "c", "command": "python3", "args": ["-m", "json.tool", "x/y"]},
        {"id": "d", "command": "/bin/sh", "args": ["-o", "errexit", "run.sh"]},
    ]
    assert _check(tmp_path, *steps) == []


def test_program_not_on_path(tmp_path: Path) -> None:
    found = _check(tmp_path, {"id": "a", "command": "sh"}, {"id": "b", "command": "nope-x"})
    assert found == [("$.steps[1].command", "b", "program 'nope-x' is not on PATH on this host")]


def test_the_path_searched_is_the_steps(tmp_path: Path) -> None:
    """A variable named PATH wins over the step's env, which wins over planrun's."""
    tool = tmp_path / "t"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert _check(tmp_path, {"id": "a", "command": "t", "env": {"PATH": str(tmp_path)}}) == []
    in_globals = {"env": {"PATH": str(tmp_path)}}
    assert _check(tmp_path, {"id": "a", "command": "t"}, globals=in_globals) == []
    (found,) = _check(tmp_path, {"id": "a", "command": "sh", "env": {"PATH": "/nonexistent"}})
    assert found[2] == "program 'sh' is not on the step's PATH (/nonexistent) on this host"
    assert _check(tmp_path, {"id": "a", "command": "t"}, variables={"PATH": str(tmp_path)}) == []
    assert _check(tmp_path, {"id": "a", "command": "t"}, env={"PATH": str(tmp_path)}) == []


def test_program_path_missing_or_not_executable(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "plain").write_text("x")
    found = _check(
        tmp_path,
        {"id": "a", "command": "./tool", "cwd": "sub"},
        {"id": "b", "command": "./plain", "cwd": "sub"},
    )
    assert found == [
        ("$.steps[0].command", "a", f"program '{tmp_path}/sub/tool' does not exist on this host"),
        ("$.steps[1].command", "b", f"program '{tmp_path}/sub/plain' is not an executable file"),
    ]


def test_script_is_resolved_against_the_steps_cwd(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok.sh").write_text("")
    found = _check(
        tmp_path,
        {"id": "a", "command": "bash", "args": ["-e", "./ok.sh"], "cwd": "sub"},
        {"id": "b", "command": "python3", "args": ["-u", "lib/x.py"], "cwd": "sub"},
        {"id": "c", "command": "sh", "args": ["./ok.sh"]},  # runs in planrun's cwd
    )
    gone = "does not exist on this host"
    assert found == [
        ("$.steps[1].args[1]", "b", f"script '{tmp_path}/sub/lib/x.py' {gone}"),
        ("$.steps[2].args[0]", "c", f"script '{tmp_path}/ok.sh' {gone}"),
    ]


def test_cwd_missing_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    found = _check(
        tmp_path,
        {"id": "a", "command": "true", "cwd": "gone"},
        {"id": "b", "command": "true", "cwd": "file"},
    )
    where = f"working directory '{tmp_path}"
    assert found == [
        ("$.steps[0].cwd", "a", f"{where}/gone' does not exist on this host"),
        ("$.steps[1].cwd", "b", f"{where}/file' is not a directory on this host"),
    ]


def test_values_not_known_before_the_run_are_skipped(tmp_path: Path) -> None:
    found = _check(
        tmp_path,
        {"id": "a", "command": "true"},
        {"id": "b", "command": "${steps.a.outputs.P}", "depends_on": ["a"]},
        {"id": "c", "command": "sh", "args": ["${steps.a.outputs.S}/x.sh"], "depends_on": ["a"]},
        {"id": "d", "command": "./x", "cwd": "${steps.a.outputs.D}", "depends_on": ["a"]},
        {"id": "e", "command": "${TOOL}", "cwd": "${DIR}", "env": {"PATH": "${P}"}},
        {"id": "f", "command": "t", "env": {"PATH": "${P}"}},
        variables={"TOOL": None, "DIR": None, "P": None},
    )
    assert found == []


@pytest.mark.parametrize("plan", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_plans_have_no_host_warning(plan: Path) -> None:
    result = validate(plan, require_values=False)
    assert result.plan is not None
    values = resolve_variables(result.plan, {}, result.base_dir)
    assert check_host(result.plan, values, result.base_dir) == []


def test_steps_alike_share_one_look_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan of many steps running the same few programs asks PATH once per program
    (issue 16: validate of 100,000 steps spent most of its time in shutil.which), and
    each step still gets its own warning."""
    import shutil

    calls: list[str] = []
    real = shutil.which

    def counting(cmd: str, mode: int = 1, path: str | None = None) -> str | None:
        calls.append(cmd)
        return real(cmd, mode, path)

    monkeypatch.setattr(shutil, "which", counting)
    steps = [{"id": f"s{i}", "command": "sh" if i % 2 else "nope-x"} for i in range(200)]
    found = _check(tmp_path, *steps)
    assert sorted(calls) == ["nope-x", "sh"]
    assert [p[1] for p in found] == [f"s{i}" for i in range(0, 200, 2)]
