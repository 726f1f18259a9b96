"""Step output while a run runs (``--output``), colour and terminals (``--color``,
FORCE_COLOR), and GitHub Actions groups, through the real CLI."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from ._cli import PLANRUN, STAMP, clean_env, planrun, sh, write_json

SECRET = "hunter2-very-secret"  # noqa: S105 - a test value
#: Cursor movement, erasing, hiding the cursor: what a live view draws with.
CURSOR = re.compile(r"\x1b\[[0-9;]*[ABCDEFGHJKST]|\x1b\[\?25[lh]|\x1b\[2K")
#: Any escape sequence that is not a colour (SGR).
NOT_SGR = re.compile(r"\x1b(?!\[[0-9;]*m)")


def _two_steps(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "out",
            "steps": [
                sh("a", "echo hello; echo 'to stderr' >&2; printf 'no newline'"),
                sh("longer-id", "echo first; echo second", depends_on=["a"]),
            ],
        },
    )


def _run(tmp_path: Path, plan: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return planrun(
        "run", plan, "--state-dir", tmp_path / "state", *args, cwd=tmp_path, env=clean_env(**env)
    )


def test_prefixed_is_the_default_when_not_a_terminal(tmp_path: Path) -> None:
    """Redirected, every line a step writes is printed as it comes as `step | line`,
    ids padded to one width, stderr too, the last partial line too; no escapes."""
    plan = _two_steps(tmp_path)
    for args in ((), ("--output", "prefixed")):
        result = _run(tmp_path, plan, *args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        streamed = [line for line in lines if " | " in line and not STAMP.match(line)]
        assert streamed == [
            "a         | hello",
            "a         | to stderr",
            "a         | no newline",
            "longer-id | first",
            "longer-id | second",
        ], result.stdout
        # Each line comes before its step's end.
        ended = next(i for i, line in enumerate(lines) if re.search(r" UTC a succeeded", line))
        assert lines.index("a         | no newline") < ended
        assert "\x1b" not in result.stdout


def test_grouped_prints_one_block_per_attempt(tmp_path: Path) -> None:
    """--output grouped: each attempt's output as one block when it ends, under a
    header with the step, the attempt and how it ended."""
    counter = tmp_path / "tries"
    script = (
        f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > {counter}; '
        'echo "try $n"; echo "more $n"; [ "$n" -ge 2 ]'
    )
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "grp", "steps": [sh("flaky", script, retries=1), sh("quiet", "true")]},
    )
    result = _run(tmp_path, plan, "--output", "grouped")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(
        r"^── flaky · attempt 1/2 · failed \(exit code 1\) in \S+ ──\ntry 1\nmore 1\n",
        out,
        re.M,
    ), out
    assert re.search(r"^── flaky · attempt 2/2 · succeeded in \S+ ──\ntry 2\nmore 2\n", out, re.M)
    assert re.search(r"^── quiet · attempt 1/1 · succeeded in \S+ ──\n\(no output\)\n", out, re.M)
    assert " | " not in out


def test_quiet_prints_no_step_output(tmp_path: Path) -> None:
    """--output quiet is the old behaviour: state changes only."""
    result = _run(tmp_path, _two_steps(tmp_path), "--output", "quiet")
    assert result.returncode == 0, result.stderr
    assert "hello" not in result.stdout
    assert "first" not in result.stdout
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} UTC a succeeded", result.stdout, re.M)


def test_streamed_lines_are_masked_also_when_a_secret_is_split(tmp_path: Path) -> None:
    """A secret written in two pieces (apart in time) is masked in streamed and
    grouped lines as in the log."""
    script = (
        'printf "key=%s" "$(printf %s "$TOKEN" | cut -c1-6)"; sleep 0.3; '
        'printf "%s done\\n" "$(printf %s "$TOKEN" | cut -c7-)"'
    )
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "sec", "steps": [sh("leak", script, env={"TOKEN": "${TOKEN}"})]},
    )
    for mode in ("prefixed", "grouped"):
        result = _run(tmp_path, plan, "--secret", "TOKEN", "--output", mode, TOKEN=SECRET)
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert SECRET[:6] not in result.stdout
        assert "key=*** done" in result.stdout, result.stdout


def test_force_color_with_redirected_output_draws_no_live_view(tmp_path: Path) -> None:
    """FORCE_COLOR=1 with stdout redirected colours the output but never draws the
    live view: no cursor movement, the plain lines; --color never wins over it."""
    plan = _two_steps(tmp_path)
    result = _run(tmp_path, plan, FORCE_COLOR="1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not CURSOR.search(out), out[:400]
    assert not NOT_SGR.search(out), out[:400]
    assert "\x1b[" in out  # coloured
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} UTC a succeeded", plain, re.M), plain
    assert "a         | hello" in plain
    never = _run(tmp_path, plan, "--color", "never", FORCE_COLOR="1")
    assert "\x1b" not in never.stdout
    always = _run(tmp_path, plan, "--color", "always")
    assert "\x1b[" in always.stdout
    assert not CURSOR.search(always.stdout)
    no_color = _run(tmp_path, plan, NO_COLOR="1")
    assert "\x1b" not in no_color.stdout


def _workflow_commands(out: str) -> tuple[list[tuple[str, str]], list[str]]:
    """What GitHub's runner would take from ``out``: the workflow commands, and the
    lines it would print as text while commands were stopped."""
    commands: list[tuple[str, str]] = []
    fenced: list[str] = []
    stopped: str | None = None
    for line in out.splitlines():
        text = line.strip()
        if stopped is not None:
            if text == f"::{stopped}::":
                stopped = None
            else:
                fenced.append(line)
            continue
        if text.startswith("::"):
            name, _, rest = text[2:].partition("::")
            commands.append((name.split(" ")[0], rest))
            if name == "stop-commands":
                stopped = rest
    return commands, fenced


def test_github_actions_groups_each_attempt_and_fences_its_output(tmp_path: Path) -> None:
    """GITHUB_ACTIONS=true: grouped by default, a ::group:: per attempt, and nothing
    a step prints can issue a workflow command (::endgroup::, ::add-mask::, ...)."""
    evil = (
        "echo '::endgroup::'; echo '::add-mask::planrun'; echo '  ::error::injected'; "
        "echo '::stop-commands::mine'; echo '::mine::'; echo '::warning::again'"
    )
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "gh", "steps": [sh("evil", evil), sh("fine", "echo ok", depends_on=["evil"])]},
    )
    result = _run(tmp_path, plan, GITHUB_ACTIONS="true")
    assert result.returncode == 0, result.stderr
    commands, fenced = _workflow_commands(result.stdout)
    names = [name for name, _ in commands]
    assert names == ["group", "stop-commands", "endgroup"] * 2, commands
    assert commands[0][1].startswith("evil · attempt 1/1 · succeeded in "), commands
    tokens = [rest for name, rest in commands if name == "stop-commands"]
    assert len(set(tokens)) == 2
    assert all(len(t) >= 32 for t in tokens)
    assert fenced[:6] == [
        "::endgroup::",
        "::add-mask::planrun",
        "  ::error::injected",
        "::stop-commands::mine",
        "::mine::",
        "::warning::again",
    ]
    assert "ok" in fenced
    assert " | " not in result.stdout  # grouped, not prefixed
    # --ci none turns the GitHub framing off: prefixed again.
    off = _run(tmp_path, plan, "--ci", "none", GITHUB_ACTIONS="true")
    assert "::group::" not in off.stdout
    assert "evil | ::endgroup::" in off.stdout
    # --ci github forces it without the variable.
    forced = _run(tmp_path, plan, "--ci", "github")
    assert [name for name, _ in _workflow_commands(forced.stdout)[0]] == names


def test_a_silent_step_gets_still_running_lines(tmp_path: Path) -> None:
    """A step that prints nothing for a while gets timestamped "still running" lines."""
    plan = write_json(tmp_path / "plan.json", {"plan_id": "slow", "steps": [sh("nap", "sleep 2")]})
    result = _run(tmp_path, plan, PLANRUN_STILL_RUNNING_SEC="0.4")
    assert result.returncode == 0, result.stderr
    still = [line for line in result.stdout.splitlines() if " nap still running (" in line]
    assert still, result.stdout
    assert all(STAMP.match(line) for line in still)


def _in_pty_80(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` on an 80x24 pty; its exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave fd is closed
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_live_view_shows_the_last_line_of_a_running_step(tmp_path: Path) -> None:
    """On an 80-column terminal the default is the live view, and a running step's
    row shows the last line it wrote (not `step | line` lines)."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "tty",
            "steps": [
                sh("worker", "echo 'step one'; echo 'halfway there'; sleep 1.5; echo finished")
            ],
        },
    )
    env = clean_env(TERM="xterm-256color")
    argv = [*PLANRUN, "run", str(plan), "--state-dir", str(tmp_path / "state")]
    code, raw = _in_pty_80(argv, tmp_path, env)
    assert code == 0, raw
    assert CURSOR.search(raw), raw  # drawn as a live view
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert re.search(r"worker\s+running\s+1/1\s+\S+\s+halfway there", text), text
    assert "worker | " not in text
    assert not re.search(r"^\d\d:\d\d:\d\d\.\d{3} ", text, re.M)
    # --output prefixed on a terminal: the lines instead of the live view.
    code, raw = _in_pty_80([*argv, "--output", "prefixed"], tmp_path, env)
    assert code == 0, raw
    assert "worker | halfway there" in re.sub(r"\x1b\[[0-9;]*m", "", raw), raw
    assert not CURSOR.search(raw)


def test_resume_takes_output_and_color(tmp_path: Path) -> None:
    """`resume --output grouped` shows the rerun attempt's block; `watch --color`
    colours a replay on request and never draws a live view when redirected."""
    flag = tmp_path / "fixed"
    script = f'if [ -e {flag} ]; then echo "fixed now"; else echo "broken"; exit 4; fi'
    plan = write_json(tmp_path / "plan.json", {"plan_id": "res", "steps": [sh("fix", script)]})
    state = tmp_path / "state"
    first = _run(tmp_path, plan, "--run-id", "res-1")
    assert first.returncode == 1, first.stderr
    assert "fix | broken" in first.stdout
    flag.touch()
    resumed = planrun(
        "resume", "res-1", "--state-dir", state, "--output", "grouped", "--color", "never",
        cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    block = r"^── fix · attempt 2/2 · succeeded in \S+ ──\nfixed now\n"
    assert re.search(block, resumed.stdout, re.M), resumed.stdout
    assert "\x1b" not in resumed.stdout
    env = clean_env(FORCE_COLOR="1")
    watched = planrun("watch", "res-1", "--state-dir", state, cwd=tmp_path, env=env)
    assert watched.returncode == 0, watched.stderr
    assert "\x1b[" in watched.stdout
    assert not CURSOR.search(watched.stdout)
    never = planrun(
        "watch", "res-1", "--state-dir", state, "--color", "never", cwd=tmp_path, env=env
    )
    assert "\x1b" not in never.stdout
