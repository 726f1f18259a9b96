"""What reaches a step's process: environment, working directory, argv; spawn errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from planrun import run_plan
from planrun.api import RunResult
from planrun.model import AttemptState, StepState

from .helpers import PY, make_plan, py_step, read_text

pytestmark = pytest.mark.anyio

DUMP_ENV = """
import json, os, sys
names = ("PLAN_DIR", "PLANRUN_RUN_ID", "PLANRUN_STEP_ID", "PLANRUN_ATTEMPT")
keys = [k for k in os.environ if k.startswith("PR_") or k in names]
print(json.dumps({k: os.environ[k] for k in sorted(keys)}))
"""

PRINT_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"


def _cwd_printed(result: RunResult, step_id: str) -> Path:
    """The directory a step printed, resolved."""
    return Path(read_text(result.steps[step_id].attempts[0].log_path).strip()).resolve()


def _no_file_named_x(*dirs: Path) -> bool:
    return not any((d / "x").exists() for d in dirs)


async def test_environment_precedence(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """caller env < globals.env < step env < variables, then PLANRUN_* are set by planrun."""
    for name in ("PR_CALLER", "PR_GLOBAL", "PR_STEP", "PR_VAR"):
        monkeypatch.setenv(name, "caller")
    monkeypatch.setenv("PLANRUN_STEP_ID", "from-caller")
    plan = make_plan(
        [
            py_step(
                "dump",
                DUMP_ENV,
                env={"PR_STEP": "step", "PR_VAR": "step", "PR_STEP_ONLY": "step"},
            ),
            py_step("other", DUMP_ENV),
        ],
        env={"PR_GLOBAL": "global", "PR_STEP": "global", "PR_VAR": "global"},
    )
    plan["variables"] = {"PR_VAR": "default"}
    result = await run_plan(plan, {"PR_VAR": "var"}, state_dir=state_dir, run_id="env-precedence")
    assert result.ok
    dump = json.loads(read_text(result.steps["dump"].attempts[0].log_path))
    assert dump == {
        "PLANRUN_ATTEMPT": "1",
        "PLANRUN_RUN_ID": "env-precedence",
        "PLANRUN_STEP_ID": "dump",
        "PLAN_DIR": str(Path.cwd()),
        "PR_CALLER": "caller",
        "PR_GLOBAL": "global",
        "PR_STEP": "step",
        "PR_STEP_ONLY": "step",
        "PR_VAR": "var",
    }
    other = json.loads(read_text(result.steps["other"].attempts[0].log_path))
    assert other["PR_STEP"] == "global"
    assert "PR_STEP_ONLY" not in other
    assert other["PLANRUN_STEP_ID"] == "other"


async def test_plan_variable_default_reaches_the_environment(state_dir: Path) -> None:
    """A plan variable's default is in the environment when no value is given."""
    plan = make_plan([py_step("dump", DUMP_ENV)])
    plan["variables"] = {"PR_DEFAULTED": 42}
    result = await run_plan(plan, state_dir=state_dir)
    dump = json.loads(read_text(result.steps["dump"].attempts[0].log_path))
    assert dump["PR_DEFAULTED"] == "42"


async def test_relative_cwd_resolves_against_the_plan_file(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a plan file, relative step and global cwd are resolved against its directory."""
    plan_dir = tmp_path / "plans"
    (plan_dir / "work").mkdir(parents=True)
    (plan_dir / "shared").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    print_cwd = "import os; print(os.getcwd())"
    plan = make_plan(
        [
            py_step(
                "plan-dir",
                "import os, sys; print(os.environ['PLAN_DIR'], sys.argv[1])",
                "${PLAN_DIR}",
            ),
            py_step("own", print_cwd, cwd="work"),
            py_step("global", print_cwd),
            py_step("absolute", print_cwd, cwd=str(elsewhere)),
        ],
        cwd="shared",
    )
    plan_file = plan_dir / "plan.json"
    plan_file.write_text(json.dumps(plan))
    result = await run_plan(plan_file, state_dir=state_dir)
    assert result.ok
    assert _cwd_printed(result, "own") == plan_dir / "work"
    assert _cwd_printed(result, "global") == plan_dir / "shared"
    assert _cwd_printed(result, "absolute") == elsewhere
    env_value, arg_value = read_text(result.steps["plan-dir"].attempts[0].log_path).split()
    assert Path(env_value) == Path(arg_value) == plan_dir


async def test_no_cwd_runs_in_the_callers_directory(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cwd a step runs in the directory planrun was started from."""
    monkeypatch.chdir(tmp_path)
    result = await run_plan(
        make_plan([py_step("pwd", "import os; print(os.getcwd())")]), state_dir=state_dir
    )
    assert _cwd_printed(result, "pwd") == tmp_path


HOSTILE = {
    "SEMI": "; touch x",
    "SUBST": "$(touch x)",
    "BACKTICK": "`touch x`",
    "NEWLINE": "a\ntouch x",
    "RF": "-rf",
    "UPLOAD": "--upload-pack=touch x",
    "QUOTES": "'\"; touch x; echo \"'",
    "GLOB": "*",
    "EMPTY": "",
    "SPACES": "  two  words  ",
    "NESTED": "${SEMI}",
}


async def test_hostile_values_arrive_as_single_arguments(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--var values with shell syntax reach the program verbatim, one argv element each,
    and no command inside them runs."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "existing-file").write_text("")  # something for a glob to match
    monkeypatch.chdir(work)
    names = list(HOSTILE)
    plan = make_plan(
        [
            {
                "id": "argv",
                "command": PY,
                "args": ["-c", PRINT_ARGV, *(f"${{{n}}}" for n in names)],
            },
            {
                "id": "mixed",
                "command": PY,
                "args": ["-c", PRINT_ARGV, "pre-${SEMI}-${SUBST}-post", "$${SEMI}"],
            },
            # The documented shell pattern: the value comes in as "$1", never as code.
            {
                "id": "shell",
                "command": "sh",
                "args": ["-c", 'printf "%s" "$1" > "$2"', "sh", "${SEMI}", "${PR_OUT}"],
                "cwd": str(work),
            },
        ],
        cwd=str(work),
    )
    variables = {**HOSTILE, "PR_OUT": str(tmp_path / "shell-out")}
    result = await run_plan(plan, variables, state_dir=state_dir)
    assert result.ok
    argv = json.loads(read_text(result.steps["argv"].attempts[0].log_path))
    assert argv == [HOSTILE[n] for n in names]
    mixed = json.loads(read_text(result.steps["mixed"].attempts[0].log_path))
    assert mixed == ["pre-; touch x-$(touch x)-post", "${SEMI}"]
    assert (tmp_path / "shell-out").read_text() == "; touch x"
    assert sorted(p.name for p in work.iterdir()) == ["existing-file"]
    assert _no_file_named_x(tmp_path, work, tmp_path.parent)


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"command": "planrun-no-such-program-xyz"},
            "command not found: 'planrun-no-such-program-xyz' (no such program in PATH)",
        ),
        (
            {"command": "/nonexistent/bin/tool"},
            "command not found: '/nonexistent/bin/tool' (no such program at that path)",
        ),
        (
            {"command": "true", "cwd": "/nonexistent/planrun-dir"},
            "working directory does not exist or is not a directory: /nonexistent/planrun-dir",
        ),
    ],
    ids=["not-in-path", "bad-path", "bad-cwd"],
)
async def test_spawn_errors_fail_the_step_without_retry(
    state_dir: Path, step: dict[str, str], message: str
) -> None:
    """A program that cannot start fails the step with a clear error, logged and not retried."""
    plan = make_plan([{"id": "broken", "retries": 3, "retry_delay_sec": 0, **step}])
    result = await run_plan(plan, state_dir=state_dir)
    broken = result.steps["broken"]
    assert broken.state is StepState.FAILED
    assert broken.reason == message
    assert len(broken.attempts) == 1
    attempt = broken.attempts[0]
    assert attempt.state is AttemptState.FAILED
    assert attempt.exit_code is None
    assert attempt.pid is None
    assert attempt.error == message
    assert read_text(attempt.log_path) == f"planrun: {message}\n"
    assert result.exit_code == 1


async def test_permission_denied_is_reported(tmp_path: Path, state_dir: Path) -> None:
    """A file that is not executable fails the step with 'permission denied'."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    os.chmod(script, 0o644)
    result = await run_plan(make_plan([{"id": "s", "command": str(script)}]), state_dir=state_dir)
    error = result.steps["s"].attempts[0].error
    assert error is not None
    assert error.startswith("permission denied")


async def test_log_captures_stdout_and_stderr(state_dir: Path) -> None:
    """An attempt's log file holds its stdout and stderr, in order."""
    plan = make_plan(
        [{"id": "s", "command": "sh", "args": ["-c", "echo out; echo err >&2; echo out2"]}]
    )
    result = await run_plan(plan, state_dir=state_dir)
    assert read_text(result.steps["s"].attempts[0].log_path) == "out\nerr\nout2\n"
