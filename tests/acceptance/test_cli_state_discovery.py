"""Where runs are found (issue 13, item 9): ``list`` before any run, the state dir
found upward from the working directory like git's ``.git``, hints that work where
they are printed, and plans read from standard input (``run -``, ``resume --plan -``).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from planrun import monitor
from planrun.exitcodes import ExitCode

from ._cli import PLANRUN, clean_env, planrun, sh, write_json

FOLLOW = re.compile(r"\(follow it: (planrun watch [^)]*)\)")


def _no_state_dir_above(path: Path) -> None:
    """The tests below need no ``.planrun`` in ``path``'s parents (discovery would find it)."""
    found = [p / ".planrun" for p in path.parents if (p / ".planrun").is_dir()]
    assert found == [], f"a stray state dir above the test's temp dir: {found}"


def _stdin_run(
    args: list[str | Path], text: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``planrun ARGS`` with ``text`` on standard input."""
    result = subprocess.run(
        [*PLANRUN, *map(str, args)],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def _copy_pasted(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``planrun ...`` command as printed (a person pasting it into a shell)."""
    words = shlex.split(command)
    assert words[0] == "planrun", command
    return planrun(*words[1:], cwd=cwd)


def test_list_before_any_run_says_no_runs_yet(tmp_path: Path) -> None:
    """No store anywhere: ``list`` exits 0 saying so (``[]`` with ``--json``); reading
    a run id still fails with the clear no-store message."""
    _no_state_dir_above(tmp_path)
    listed = planrun("list", cwd=tmp_path)
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert listed.stdout.strip() == "no runs yet"
    as_json = planrun("list", "--json", cwd=tmp_path)
    assert as_json.returncode == ExitCode.OK, as_json.stderr
    assert json.loads(as_json.stdout) == []
    elsewhere = planrun("list", "--state-dir", tmp_path / "none", "--json", cwd=tmp_path)
    assert (elsewhere.returncode, json.loads(elsewhere.stdout)) == (ExitCode.OK, [])
    for command in (["show", "r1"], ["watch", "r1"], ["logs", "r1"]):
        failed = planrun(*command, cwd=tmp_path)
        assert failed.returncode == ExitCode.FAILED, command
        assert "no run store at .planrun/runs.db; pass --state-dir" in failed.stderr, command
    assert not (tmp_path / ".planrun").exists()  # reading created nothing


def test_monitor_lists_no_runs_where_there_is_no_store(tmp_path: Path) -> None:
    """``monitor.list_runs`` (and ``SyncMonitor``) of a dir with no store: ``[]``."""
    missing = tmp_path / "never-used"

    async def listed() -> list[Any]:
        return list(await monitor.list_runs(state_dir=missing))

    assert anyio.run(listed) == []
    assert monitor.SyncMonitor(missing).list_runs() == []
    assert not missing.exists()


def test_the_state_dir_is_found_in_a_parent_directory(tmp_path: Path) -> None:
    """A ``.planrun`` in a parent is used from any subdirectory by run, list, watch,
    show and logs (a run started below is recorded there, not in a new one), and the
    hints printed there need no ``--state-dir``."""
    _no_state_dir_above(tmp_path)
    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "echo out-of-a")]})
    first = planrun("run", plan, "--plain", "--run-id", "top", cwd=project)
    assert first.returncode == ExitCode.OK, first.stderr
    below = planrun("run", plan, "--plain", "--run-id", "below", cwd=deep)
    assert below.returncode == ExitCode.OK, below.stderr
    assert not (deep / ".planrun").exists()
    assert not (project / "src" / ".planrun").exists()
    assert (project / ".planrun" / "runs" / "below").is_dir()
    hint = FOLLOW.search(below.stdout)
    assert hint is not None, below.stdout
    assert hint[1] == "planrun watch below"
    assert _copy_pasted(hint[1], deep).returncode == ExitCode.OK

    listed = planrun("list", "--json", cwd=deep)
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == ["below", "top"]
    watched = planrun("watch", "top", "--json", cwd=deep)
    assert watched.returncode == ExitCode.OK, watched.stderr
    shown = planrun("show", "top", "--json", cwd=deep)
    assert shown.returncode == ExitCode.OK, shown.stderr
    assert json.loads(shown.stdout)["run"]["run_id"] == "top"
    logs = planrun("logs", "top", "a", cwd=deep)
    assert (logs.returncode, logs.stdout) == (ExitCode.OK, "out-of-a\n")


def test_a_new_state_dir_is_made_here_when_none_is_above(tmp_path: Path) -> None:
    _no_state_dir_above(tmp_path)
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    work = tmp_path / "work"
    work.mkdir()
    assert planrun("run", plan, "--plain", cwd=work).returncode == ExitCode.OK
    assert (work / ".planrun" / "runs.db").is_file()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_hints_name_the_state_dir_discovery_would_not_find(tmp_path: Path, how: str) -> None:
    """A run in a state dir the working directory does not lead to (``--state-dir`` or
    ``PLANRUN_STATE_DIR``): the printed ``watch`` hint says ``--state-dir``, and pasted
    as printed in a shell without the variable it works; so does ``show``'s hint."""
    _no_state_dir_above(tmp_path)
    state = tmp_path / "elsewhere" / "runs here"
    plan = write_json(tmp_path / "plan.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    if how == "flag":
        ran = planrun("run", plan, "--plain", "--state-dir", state, cwd=tmp_path)
    else:
        env = clean_env(PLANRUN_STATE_DIR=str(state))
        ran = planrun("run", plan, "--plain", cwd=tmp_path, env=env)
    assert ran.returncode == ExitCode.OK, ran.stderr
    hint = FOLLOW.search(ran.stdout)
    assert hint is not None, ran.stdout
    assert "--state-dir" in hint[1]
    watched = _copy_pasted(hint[1], tmp_path)
    assert watched.returncode == ExitCode.OK, watched.stderr
    assert "succeeded" in watched.stdout

    unknown = planrun("show", "no-such-run", "--state-dir", state, cwd=tmp_path)
    assert unknown.returncode == ExitCode.INVALID
    listing = re.search(r"see `([^`]*)`", unknown.stderr)
    assert listing is not None, unknown.stderr
    listed = _copy_pasted(listing[1], tmp_path)
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert "succeeded" in listed.stdout


def _stdin_plan(fmt: str, script: str) -> str:
    """A one-step plan in ``fmt`` whose step runs ``sh -c script ${PLAN_DIR}``."""
    if fmt == "json":
        step = {"id": "a", "command": "sh", "args": ["-c", script, "${PLAN_DIR}"]}
        return json.dumps({"plan_id": "from-stdin", "steps": [step]}, indent=2)
    if fmt == "yaml":
        return (
            "# a plan on stdin\nplan_id: from-stdin\nsteps:\n  - id: a\n    command: sh\n"
            f"    args: [-c, {json.dumps(script)}, '${{PLAN_DIR}}']\n"
        )
    return (
        'plan_id = "from-stdin"\n[[steps]]\nid = "a"\ncommand = "sh"\n'
        f'args = ["-c", {json.dumps(script)}, "${{PLAN_DIR}}"]\n'
    )


@pytest.mark.parametrize("fmt", ["json", "yaml", "toml"])
def test_run_reads_the_plan_from_stdin(tmp_path: Path, fmt: str) -> None:
    """``planrun run -``: the plan from standard input, its format sniffed; PLAN_DIR
    is the working directory."""
    state = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    text = _stdin_plan(fmt, 'echo "plan dir: $0"')
    ran = _stdin_run(["run", "-", "--plain", "--state-dir", state, "--run-id", "s"], text, work)
    assert ran.returncode == ExitCode.OK, ran.stderr
    logs = planrun("logs", "s", "a", "--state-dir", state, cwd=work)
    assert logs.stdout == f"plan dir: {work}\n"
    dry = _stdin_run(["run", "-", "--dry-run"], text, work)
    assert dry.returncode == ExitCode.OK, dry.stderr
    assert "plan from-stdin: 1 step in 1 level" in dry.stdout


def test_bad_plans_on_stdin_are_named_stdin_and_write_nothing(tmp_path: Path) -> None:
    cases = {
        '{"plan_id": ': "<stdin>: 1:13: syntax error",
        "": "no plan on standard input",
        '{"plan_id": "x", "steps": [{"id": "a"}]}': "<stdin>: $.steps[0]",
    }
    for text, expected in cases.items():
        ran = _stdin_run(["run", "-", "--plain"], text, tmp_path)
        assert ran.returncode == ExitCode.INVALID, text
        assert "<stdin>: invalid plan" in ran.stderr, ran.stderr
        assert expected in ran.stderr, ran.stderr
    assert not (tmp_path / ".planrun").exists()


def test_resume_of_a_stdin_run_needs_the_plan_again(tmp_path: Path) -> None:
    """A run of a plan from stdin has no file to resume from: ``resume`` says to pass
    ``--plan``; ``--plan -`` with the same plan resumes it; a different plan is refused
    like any changed plan."""
    state = tmp_path / "state"
    text = _stdin_plan("json", 'test -e "$0/ok"')
    ran = _stdin_run(["run", "-", "--plain", "--state-dir", state, "--run-id", "r"], text, tmp_path)
    assert ran.returncode == ExitCode.FAILED, ran.stderr
    again = planrun("resume", "r", "--plain", "--state-dir", state, cwd=tmp_path)
    assert again.returncode == ExitCode.INVALID
    assert "was started from plan data" in again.stderr
    assert "--plan FILE (or --plan - to read it from stdin)" in again.stderr

    changed = _stdin_plan("json", 'test -e "$0/other"')
    refused = _stdin_run(["resume", "r", "--plan", "-", "--state-dir", state], changed, tmp_path)
    assert refused.returncode == ExitCode.INVALID
    assert "it would not run the same thing" in refused.stderr
    assert "step 'a' changed" in refused.stderr

    (tmp_path / "ok").touch()
    resumed = _stdin_run(
        ["resume", "r", "--plain", "--plan", "-", "--state-dir", state], text, tmp_path
    )
    assert resumed.returncode == ExitCode.OK, resumed.stderr
    assert "run r succeeded" in resumed.stdout
    as_file = tmp_path / "plan.json"
    as_file.write_text(text)
    explained = planrun(
        "resume", "r", "--explain", "--from", "a", "--plan", as_file, "--state-dir", state,
        cwd=tmp_path,
    )  # fmt: skip
    # A file's PLAN_DIR is its directory, here the same: the same plan and variables.
    assert explained.returncode == ExitCode.OK, explained.stderr
