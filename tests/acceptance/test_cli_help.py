"""``planrun --help`` for every command, through the real CLI at 80 columns without
colour: compared with the snapshots in ``help_snapshots/`` (so a dependency upgrade that
garbles help fails here), plus structural checks that regenerating the snapshots cannot
fool (no ``<bool>``, no ``{plan}``, every option with a metavar, brackets intact).

Options changed on purpose? Regenerate the snapshots, then read the diff:

    PLANRUN_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/acceptance/test_cli_help.py

Also: ``--version``/``-V``, ``planrun version [--json]`` and shell completion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import click
import pytest

import planrun as planrun_package
from planrun.cli.app import app
from planrun.cli.command import build_command

from ._cli import clean_env, planrun, sh, write_json

SNAPSHOTS = Path(__file__).parent / "help_snapshots"
UPDATE = os.environ.get("PLANRUN_UPDATE_SNAPSHOTS") == "1"
#: Every command, as typed after ``planrun`` ("" is the root).
COMMANDS = (
    "",
    "run",
    "resume",
    "validate",
    "schema",
    "watch",
    "list",
    "show",
    "logs",
    "cancel",
    "version",
    "completion",
    "ui",
    "graph",
    "report",
    "serve",
    "triggers",
    "prune",
)
#: click's names for value types: an option showing one of these has no metavar of ours.
GENERIC_METAVARS = re.compile(r"\b(TEXT|INTEGER|FLOAT|PATH|BOOLEAN|RANGE|FILENAME)\b")
#: A typer/click placeholder such as ``{plan}`` (``${NAME}`` is plan syntax, allowed).
PLACEHOLDER = re.compile(r"(?<!\$)\{[a-z_]+\}")


def _help(command: str, *flag: str, tmp_path: Path) -> str:
    args = [*command.split(), *(flag or ("--help",))]
    result = planrun(*args, cwd=tmp_path, env=clean_env(COLUMNS="80", TERM="xterm-256color"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def _snapshot_name(command: str) -> str:
    return f"{command or 'root'}.txt"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_matches_its_snapshot(command: str, tmp_path: Path) -> None:
    """The rendered help is the reviewed one, byte for byte."""
    text = _help(command, tmp_path=tmp_path)
    path = SNAPSHOTS / _snapshot_name(command)
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; run with PLANRUN_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(encoding="utf-8"), (
        f"`planrun {command} --help` changed; if on purpose, regenerate: "
        "PLANRUN_UPDATE_SNAPSHOTS=1 pytest tests/acceptance/test_cli_help.py"
    )


def test_every_command_has_a_snapshot(tmp_path: Path) -> None:
    """The root's command list names exactly the commands snapshotted here (a new
    command gets a snapshot), and no stale snapshot is left."""
    text = _help("", tmp_path=tmp_path)
    listed = re.findall(r"^  (\w[\w-]*)  ", text.split("Commands:")[1], flags=re.M)
    assert sorted(listed) == sorted(c for c in COMMANDS if c)
    stored = {p.name for p in SNAPSHOTS.glob("*.txt")}
    assert stored == {_snapshot_name(c) for c in COMMANDS}


def _click_command(command: str) -> click.Command:
    root = build_command(app)
    if not command:
        return root
    assert isinstance(root, click.Group)
    return root.commands[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_well_formed(command: str, tmp_path: Path) -> None:
    """What a garbling upgrade breaks, checked on the live output: no ``<bool>`` or
    ``{plan}``, no click type names as metavars, no colour codes, nothing over 80
    columns; every option taking a value shows an upper-case metavar on its line, and
    every flag shows none (typed as a flag, not ``--flag true``)."""
    text = _help(command, tmp_path=tmp_path)
    assert "<bool>" not in text
    assert "<list" not in text
    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text)
    assert not GENERIC_METAVARS.search(text), GENERIC_METAVARS.search(text)
    assert "\x1b" not in text
    assert max(map(len, text.splitlines())) <= 80
    assert text.startswith(f"Usage: planrun {command}".rstrip() + " ")
    for param in _click_command(command).params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        long = max(param.opts, key=len)
        opt = re.compile(rf"(^|, ){re.escape(long)}(?=[ ,]|$)")
        line = next(ln for ln in text.splitlines() if opt.search(ln.strip()))
        after = line.strip().split(long, 1)[1]
        if param.is_flag:
            assert re.match(r"(\s{2,}|$)", after), f"flag {long} shows a value: {line!r}"
        else:
            # An upper-case name of what to type, or the choices: ``[auto|github|none]``.
            metavar = re.match(r" ([A-Z][A-Z_=]*\b|\[[a-z_-]+(\|[a-z_-]+)+\])", after)
            assert metavar, f"{long} has no metavar: {line!r}"


def test_brackets_and_defaults_survive(tmp_path: Path) -> None:
    """Help text is shown literally: the ``[step-id]`` of `logs`, the state dir's
    default, ``${NAME}``, the metavars a user types (rich markup used to eat them)."""
    assert "prefixed\n  [step-id]." in _help("logs", tmp_path=tmp_path).replace(
        "prefixed [step-id]", "prefixed\n  [step-id]"
    )
    for command in ("run", "resume", "watch", "list", "show", "logs", "cancel"):
        text = _help(command, tmp_path=tmp_path)
        assert "[default: the nearest .planrun here or above, else ./.planrun]" in " ".join(
            text.split()
        ), command
        assert "PLANRUN_STATE_DIR" in text, command
    run_help = _help("run", tmp_path=tmp_path)
    assert "${NAME}" in run_help
    for expected in ("--var NAME=VALUE", "--secret NAME", "--run-id RUN_ID", "Usage: planrun run"):
        assert expected in run_help
    assert "PLAN  Plan file" in run_help  # the argument's help (lost on click 8.5 before)
    resume_help = _help("resume", tmp_path=tmp_path)
    assert "--from STEP" in resume_help
    assert "RUN_ID  The run to resume." in resume_help
    assert "[default: 20; x>=1]" in _help("list", tmp_path=tmp_path)


def test_command_list_has_one_line_summaries(tmp_path: Path) -> None:
    """Each command's summary is one untruncated line (no docstring line break shown
    mid-sentence, no click ``...``)."""
    text = _help("", tmp_path=tmp_path)
    rows = text.split("Commands:\n")[1].splitlines()
    assert len(rows) == len(COMMANDS) - 1
    for row in rows:
        assert re.match(r"^  [\w-]+ +\S.*\.$", row), row
        assert not row.endswith("..."), row


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_is_help(command: str, tmp_path: Path) -> None:
    """``-h`` works as ``--help`` on the root and on every command."""
    assert _help(command, "-h", tmp_path=tmp_path) == _help(command, tmp_path=tmp_path)


def test_a_flag_given_a_value_is_refused(tmp_path: Path) -> None:
    """``--dry-run`` is a flag: ``--dry-run true`` is an extra argument (exit 2), and
    plain ``--dry-run`` works."""
    plan = write_json(tmp_path / "p.json", {"plan_id": "p", "steps": [sh("a", "true")]})
    ok = planrun("run", plan, "--dry-run", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = planrun("run", plan, "--dry-run", "true", cwd=tmp_path)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


# --- version ---------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(flag: str, tmp_path: Path) -> None:
    result = planrun(flag, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"planrun {planrun_package.__version__}\n"
    assert metadata.version("planrun") == planrun_package.__version__


def test_version_json_names_what_a_bug_report_needs(tmp_path: Path) -> None:
    result = planrun("version", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["planrun"] == planrun_package.__version__
    assert doc["python"].startswith(".".join(map(str, sys.version_info[:3])))
    assert doc["sqlite"] == sqlite3.sqlite_version
    for name in ("anyio", "msgspec", "aiosqlite", "typer", "click", "rich", "pyyaml"):
        assert doc[name] == metadata.version(name), name
    assert doc["platform"]
    text = planrun("version", cwd=tmp_path)
    assert text.returncode == 0
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert lines.keys() == doc.keys()
    assert lines["typer"] == doc["typer"]


# --- shell completion ------------------------------------------------------------------


def test_completion_script_for_bash(tmp_path: Path) -> None:
    """``completion bash`` prints a bash script that calls back into planrun, whatever
    shell (if any) started planrun."""
    result = planrun("completion", "bash", cwd=tmp_path, env=clean_env(SHELL="/bin/zsh"))
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _planrun_completion planrun" in result.stdout
    assert "_PLANRUN_COMPLETE=complete_bash" in result.stdout


def _complete(words: str, tmp_path: Path) -> list[str]:
    cword = len(words.split()) - 1
    env = clean_env(_PLANRUN_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    result = planrun(cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completion_offers_commands_and_options(tmp_path: Path) -> None:
    """What bash's completion function asks the real CLI (through the completion env
    var) is answered: ``planrun ru`` offers ``run``, ``list --st`` both ``--state``s."""
    assert _complete("planrun ru", tmp_path) == ["run"]
    assert sorted(_complete("planrun list --st", tmp_path)) == ["--state", "--state-dir"]
    assert "resume" in _complete("planrun re", tmp_path)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_installed_completion_works_in_bash(tmp_path: Path) -> None:
    """The script ``completion bash`` prints, sourced by real bash, completes
    ``planrun ru`` to ``run`` by calling the installed ``planrun``. (typer's
    ``--install-completion`` guesses the shell from the parent processes, which a test
    run under another program may not have.)"""
    env = clean_env(SHELL="/bin/bash")
    result = planrun("completion", "bash", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    script = tmp_path / "planrun.sh"
    script.write_text(result.stdout)
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "planrun").exists()  # the console script the function calls
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    probe = (
        f"source '{script}'; COMP_WORDS=(planrun ru); COMP_CWORD=1; "
        '_planrun_completion planrun; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(
        ["bash", "--norc", "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["run"]
