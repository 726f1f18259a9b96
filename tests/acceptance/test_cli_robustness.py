"""Hostile text and broken observers never turn into tracebacks or half-recorded runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._cli import PLANRUN, clean_env, planrun, query, read_events, write_json


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


# --- bad input: a located error and exit 2, never a traceback (issue 10, finding 5) ----

_DEEP = 10_000
_DIGITS = "9" * 5000
_OK_STEP = '{"id": "a", "command": "true"}'

#: (file name, plan text, where the error must point, what it must say)
BAD_DOCUMENTS = [
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": ['
        + _OK_STEP
        + '],\n "metadata": '
        + "[" * _DEEP
        + "]" * _DEEP
        + "}",
        "2:",
        "nested deeper than 64 levels",
        id="deep-json",
    ),
    pytest.param(
        "p.yaml",
        "plan_id: d\nsteps: [{id: a, command: 'true'}]\nmetadata: "
        + "[" * _DEEP
        + "]" * _DEEP
        + "\n",
        "3:",
        "nested deeper than 64 levels",
        id="deep-yaml",
    ),
    pytest.param(
        "p.toml",
        'plan_id = "d"\nmetadata = '
        + "[" * _DEEP
        + "]" * _DEEP
        + '\n[[steps]]\nid = "a"\ncommand = "true"\n',
        "2:",
        "nested deeper than 64 levels",
        id="deep-toml",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": ['
        + _OK_STEP
        + '],\n "metadata": '
        + '{"x": ' * 100
        + "1"
        + "}" * 100
        + "}",
        "$.metadata.x.x.x",
        "nested deeper than 64 levels",
        id="deep-json-within-the-parser",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "a", "command": "true",\n "retries": ' + _DIGITS + "}]}",
        "2:13",
        "more than 4300 digits",
        id="huge-int-json",
    ),
    pytest.param(
        "p.yaml",
        f"plan_id: d\nsteps:\n  - id: a\n    command: 'true'\n    retries: {_DIGITS}\n",
        "5:14",
        "more than 4300 digits",
        id="huge-int-yaml",
    ),
    pytest.param(
        "p.toml",
        f'plan_id = "d"\n[[steps]]\nid = "a"\ncommand = "true"\nretries = {_DIGITS}\n',
        "5:11",
        "more than 4300 digits",
        id="huge-int-toml",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "a", "command": "true", "env": {"\\ud800": "x"}}]}',
        "$.steps[0].env.\\ud800",
        "lone surrogate",
        id="surrogate-key",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "\\udfff": 1, "steps": [' + _OK_STEP + "]}",
        "$.\\udfff",
        "lone surrogate",
        id="surrogate-top-level-key",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "a", "command": "\\ud800"}]}',
        "$.steps[0].command",
        "lone surrogate",
        id="surrogate-command",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "\\ud800", "steps": [' + _OK_STEP + "]}",
        "$.plan_id",
        "lone surrogate",
        id="surrogate-plan_id",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "variables": {"X": "a\\udc80"}, "steps": [' + _OK_STEP + "]}",
        "$.variables.X",
        "lone surrogate",
        id="surrogate-variable",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "a", "command": "echo", "args": ["\\ud800"]}]}',
        "$.steps[0].args[0]",
        "lone surrogate",
        id="surrogate-arg",
    ),
    pytest.param(
        "p.yaml",
        "plan_id: d\nsteps: [{id: a, command: 'true', timeout_sec: .inf}]\n",
        "$.steps[0].timeout_sec",
        "<= 2592000",
        id="infinite-timeout-yaml",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "globals": {"kill_grace_sec": 1e999}, "steps": [' + _OK_STEP + "]}",
        "$.globals.kill_grace_sec",
        "<= 2592000",
        id="infinite-kill-grace-json",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "a", "command": "true", '
        '"retries": 99999999999999999999}]}',
        "$.steps[0].retries",
        "<= 1000",
        id="huge-retries",
    ),
    pytest.param(
        "p.json",
        '{"plan_id": "d", "steps": [{"id": "abc\\n", "command": "true"}]}',
        "$.steps[0].id",
        "matching regex",
        id="step-id-trailing-newline",
    ),
]


@pytest.mark.parametrize(("name", "text", "where", "what"), BAD_DOCUMENTS)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_documents_are_located_errors(
    tmp_path: Path, command: str, name: str, text: str, where: str, what: str
) -> None:
    """Each input that used to end in a traceback (RecursionError, ValueError,
    UnicodeEncodeError) or run unbounded is an exit-2 error naming the place; `run`
    leaves no state dir behind."""
    plan = tmp_path / name
    plan.write_text(text, encoding="utf-8")
    state = tmp_path / "state"
    extra = ("--state-dir", state, "--plain") if command == "run" else ()
    result = planrun(command, plan, *extra, cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout
    error = next((line for line in result.stderr.splitlines() if what in line), result.stderr)
    assert f"{plan}: {where}" in error, result.stderr
    assert not state.exists()


def test_nesting_within_the_limit_is_accepted(tmp_path: Path) -> None:
    """60 levels of metadata (the limit is 64, the plan object being level 1) run."""
    deep: object = "leaf"
    for _ in range(60):
        deep = {"x": deep}
    plan = write_json(
        tmp_path / "p.json",
        {"plan_id": "d", "metadata": deep, "steps": [{"id": "a", "command": "true"}]},
    )
    result = planrun("run", plan, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("var", "where", "what"),
    [
        pytest.param("X=a\udcffb", "--var X", "not valid UTF-8", id="value-not-utf8"),
        pytest.param("\udcff=1", "--var \\udcff", "invalid variable name", id="name-not-utf8"),
        pytest.param("X\n=1", "--var X\\n", "invalid variable name", id="name-with-newline"),
    ],
)
def test_undecodable_vars_are_located_errors(
    tmp_path: Path, var: str, where: str, what: str
) -> None:
    """A --var whose bytes are not UTF-8 (Python hands them over as lone surrogates) or
    whose name ends in a newline is an exit-2 error, before anything runs."""
    plan = write_json(
        tmp_path / "p.json",
        {
            "plan_id": "v",
            "variables": {"X": "1"},
            "steps": [{"id": "a", "command": "echo", "args": ["${X}"]}],
        },
    )
    state = tmp_path / "state"
    result = planrun("run", plan, "--var", var, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{plan}: {where}: " in result.stderr
    assert what in result.stderr
    assert not state.exists()


@pytest.mark.parametrize("value", ["0", "10001", "99999999999999999999"])
def test_max_concurrency_flag_is_bounded(tmp_path: Path, value: str) -> None:
    """``--max-concurrency`` outside 1..10000 (the bound of ``globals.max_concurrency``)
    is an exit-2 usage error naming the flag, before anything runs."""
    plan = write_json(
        tmp_path / "p.json", {"plan_id": "c", "steps": [{"id": "a", "command": "true"}]}
    )
    state = tmp_path / "state"
    result = planrun("run", plan, "--max-concurrency", value, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--max-concurrency must be between 1 and 10000" in result.stderr
    assert "Traceback" not in result.stderr


def test_j_is_short_for_max_concurrency(tmp_path: Path) -> None:
    """``-j N`` (as make and ninja) is ``--max-concurrency N``: the run records it."""
    plan = write_json(
        tmp_path / "p.json",
        {"plan_id": "j", "steps": [{"id": f"s{i}", "command": "true"} for i in range(3)]},
    )
    state = tmp_path / "state"
    result = planrun("run", plan, "-j", "2", "--run-id", "j2", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    started = next(e for e in read_events(state, "j2") if e["type"] == "run_started")
    assert started["max_concurrency"] == 2
