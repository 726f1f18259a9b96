"""Step outputs end to end: a step writes ``KEY=VALUE`` lines (and ``KEY<<EOF`` blocks)
to ``$PLANRUN_OUTPUT``; a later step reads them as ``${steps.ID.outputs.KEY}`` and
``${steps.ID.exit_code}`` in its args, env and cwd."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ._cli import (
    PLANRUN,
    PY,
    REPO,
    clean_env,
    kill_pids,
    live_pids_with_env,
    planrun,
    read_events,
    sh,
    wait_until,
    write_json,
)

#: ``PY PROBE OUT ARGS...``: writes its args, its ``IN_*`` environment and its cwd to OUT.
PROBE = (
    "import json, os, sys\n"
    "doc = {\n"
    "    'argv': sys.argv[2:],\n"
    "    'env': {k: v for k, v in os.environ.items() if k.startswith('IN_')},\n"
    "    'cwd': os.getcwd(),\n"
    "}\n"
    "open(sys.argv[1], 'w', encoding='utf-8').write(json.dumps(doc))\n"
)

#: ``PY -c WRITE_FILE SRC``: appends the bytes of file SRC to ``$PLANRUN_OUTPUT``.
WRITE_FILE = (
    "import os, sys\n"
    "data = open(sys.argv[1], 'rb').read()\n"
    "open(os.environ['PLANRUN_OUTPUT'], 'ab').write(data)\n"
)

OUT = '>> "$PLANRUN_OUTPUT"'


def probe(step_id: str, out: Path, *args: str, **fields: Any) -> dict[str, Any]:
    """A step that records what it was given (see ``PROBE``) in ``out``."""
    return {"id": step_id, "command": PY, "args": ["-c", PROBE, str(out), *args], **fields}


def read_probe(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def show_json(run_id: str, cwd: Path) -> dict[str, Any]:
    """``planrun show RUN --json`` (the default state dir in ``cwd``)."""
    result = planrun("show", run_id, "--json", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def steps_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step_id"]: s for s in doc["steps"]}


# --- passing values -------------------------------------------------------------------


def test_outputs_pass_through_two_steps_into_args_env_and_cwd(tmp_path: Path) -> None:
    """a -> b -> c: b re-exports what it got from a as its own output, and c receives
    b's output, a's multi-line and empty outputs and a's exit code in its args, its env
    and its cwd (resolved against the plan's directory, like a static cwd)."""
    plans = tmp_path / "plans"
    (plans / "from-a").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "probe.json"
    a_script = (
        f"printf 'greeting=hello world\\n' {OUT}; "
        f"printf 'notes<<EOF\\nline one\\n\\nline three\\nEOF\\n' {OUT}; "
        f"printf 'dir=from-a\\nempty=\\n' {OUT}; "
        f"printf '\\n\\nlate<<%s\\nEOF\\n%s\\n' \"$PLANRUN_OUTPUT_DELIMITER\" "
        f'"$PLANRUN_OUTPUT_DELIMITER" {OUT}'
    )
    plan = write_json(
        plans / "pass.json",
        {
            "plan_id": "pass",
            "steps": [
                sh("a", a_script),
                sh(
                    "b",
                    f'printf "relay=%s (via b)\\n" "$IN_FROM_A" {OUT}',
                    depends_on=["a"],
                    env={"IN_FROM_A": "${steps.a.outputs.greeting}"},
                ),
                probe(
                    "c",
                    out,
                    "${steps.b.outputs.relay}",
                    "${steps.a.outputs.notes}",
                    "${steps.a.outputs.empty}",
                    "${steps.a.outputs.late}",
                    "code=${steps.a.exit_code}",
                    "$${steps.a.outputs.greeting}",
                    depends_on=["b"],
                    env={
                        "IN_RELAY": "${steps.b.outputs.relay}",
                        "IN_MIXED": "<${steps.a.outputs.greeting}|${steps.b.exit_code}>",
                    },
                    cwd="${steps.a.outputs.dir}",
                ),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-pass", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr

    got = read_probe(out)
    assert got["argv"] == [
        "hello world (via b)",
        "line one\n\nline three",
        "",
        "EOF",  # inside a value closed by $PLANRUN_OUTPUT_DELIMITER
        "code=0",
        "${steps.a.outputs.greeting}",  # $${ is a literal ${
    ]
    assert got["env"] == {"IN_RELAY": "hello world (via b)", "IN_MIXED": "<hello world|0>"}
    assert got["cwd"] == str((plans / "from-a").resolve())

    steps = steps_by_id(show_json("r-pass", work))
    assert steps["a"]["outputs"] == {
        "greeting": "hello world",
        "notes": "line one\n\nline three",
        "dir": "from-a",
        "empty": "",
        "late": "EOF",
    }
    assert steps["b"]["outputs"] == {"relay": "hello world (via b)"}
    assert not steps["c"]["outputs"]  # c wrote none
    assert [s["state"] for s in steps.values()] == ["succeeded"] * 3


HOSTILE_VALUE = (
    'it\'s "quoted"  ;  $(touch pwned-a) `touch pwned-b` && touch pwned-c | '
    "${HOME} $${X} $X * \\ \t tab end "
)


def test_output_value_with_shell_syntax_arrives_as_one_verbatim_argument(
    tmp_path: Path,
) -> None:
    """An output holding quotes, ';', '$(...)', backticks, '${...}' and spaces reaches
    the consumer verbatim as exactly one argv element (and one env value): never split,
    re-expanded or run by a shell."""
    (tmp_path / "value.txt").write_text(f"v={HOSTILE_VALUE}\n", encoding="utf-8")
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "verbatim",
            "steps": [
                {"id": "a", "command": PY, "args": ["-c", WRITE_FILE, "value.txt"]},
                probe(
                    "b",
                    out,
                    "${steps.a.outputs.v}",
                    depends_on=["a"],
                    env={"IN_V": "${steps.a.outputs.v}"},
                ),
                {
                    # sh -c SCRIPT sh ARG: the output is $1, never part of the script.
                    "id": "c",
                    "command": "sh",
                    "args": [
                        "-c",
                        'printf "%s" "$IN_V" > via-sh.txt; printf "%s" "$1" > via-arg.txt',
                        "sh",
                        "${steps.a.outputs.v}",
                    ],
                    "depends_on": ["a"],
                    "env": {"IN_V": "${steps.a.outputs.v}"},
                },
            ],
        },
    )

    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    got = read_probe(out)
    assert got["argv"] == [HOSTILE_VALUE]
    assert got["env"] == {"IN_V": HOSTILE_VALUE}
    assert (tmp_path / "via-sh.txt").read_text(encoding="utf-8") == HOSTILE_VALUE
    assert (tmp_path / "via-arg.txt").read_text(encoding="utf-8") == HOSTILE_VALUE
    assert not list(tmp_path.rglob("pwned*"))


# --- missing outputs ------------------------------------------------------------------

MISSING_NOT_WRITTEN = (
    "output 'wanted' of step 'a' is missing: the step did not write wanted=... to $PLANRUN_OUTPUT"
)


@pytest.mark.parametrize(
    ("producer", "consumer_fields", "reason"),
    [
        pytest.param(
            sh("a", f"echo other=1 {OUT}"),
            {"args": ["${steps.a.outputs.wanted}"]},
            MISSING_NOT_WRITTEN,
            id="not-written-args",
        ),
        pytest.param(
            sh("a", f"echo other=1 {OUT}"),
            {"env": {"W": "${steps.a.outputs.wanted}"}},
            MISSING_NOT_WRITTEN,
            id="not-written-env",
        ),
        pytest.param(
            sh("a", f"echo other=1 {OUT}"),
            {"cwd": "${steps.a.outputs.wanted}"},
            MISSING_NOT_WRITTEN,
            id="not-written-cwd",
        ),
        pytest.param(
            sh("a", "echo wanted=on-stdout; echo wanted=on-stderr >&2"),
            {"args": ["${steps.a.outputs.wanted}"]},
            MISSING_NOT_WRITTEN,
            id="printed-to-stdout",
        ),
        pytest.param(
            sh("a", f"echo other=1 {OUT}"),
            {"args": ["${steps.a.outputs.wanted}"], "retries": 2},
            MISSING_NOT_WRITTEN,
            id="consumer-with-retries",
        ),
        pytest.param(
            sh("a", f"echo wanted=1 {OUT}; exit 5", critical=False),
            {"args": ["${steps.a.outputs.wanted}"], "when": "all_done"},
            "output 'wanted' of step 'a' is missing: 'a' failed",
            id="producer-failed",
        ),
    ],
)
def test_missing_output_fails_the_consumer_without_starting_it(
    tmp_path: Path, producer: dict[str, Any], consumer_fields: dict[str, Any], reason: str
) -> None:
    """A reference to an output the producer did not set (not written, only printed, or
    written by a failed step) fails the consumer with a reason naming the output and the
    step; the consumer never starts (no attempt, not even with retries): it never runs
    with an empty string in place of the value."""
    fields = {"depends_on": ["a"], **consumer_fields}
    consumer = {"id": "b", "command": "touch", "args": ["b-ran"], **fields}
    if "args" in consumer_fields:
        consumer["command"] = PY
        consumer["args"] = ["-c", "open('b-ran', 'w')", *consumer_fields["args"]]
    plan = write_json(tmp_path / "plan.json", {"plan_id": "missing", "steps": [producer, consumer]})
    result = planrun("run", plan, "--run-id", "r-missing", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert reason in result.stdout
    assert not (tmp_path / "b-ran").exists()

    doc = show_json("r-missing", tmp_path)
    b = steps_by_id(doc)["b"]
    assert b["state"] == "failed"
    assert b["reason"] == reason
    assert b["attempts"] == []
    assert b["exit_code"] is None
    assert doc["run"]["state"] == "failed"
    a = steps_by_id(doc)["a"]
    # Printed to stdout, or written by a failed step: never an output.
    assert "wanted" not in (a["outputs"] or {})


def test_printing_key_value_to_stdout_sets_no_output(tmp_path: Path) -> None:
    """``KEY=VALUE`` on stdout (or stderr) is just log text: the step's outputs hold only
    what it wrote to $PLANRUN_OUTPUT."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "stdout",
            "steps": [sh("a", f"echo printed=1; echo alsoerr=1 >&2; echo written=1 {OUT}")],
        },
    )
    result = planrun("run", plan, "--run-id", "r-stdout", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    a = steps_by_id(show_json("r-stdout", tmp_path))["a"]
    assert a["outputs"] == {"written": "1"}
    logs = planrun("logs", "r-stdout", "a", cwd=tmp_path)
    assert "printed=1" in logs.stdout
    assert "written=1" not in logs.stdout


# --- attempts -------------------------------------------------------------------------


def test_only_the_succeeded_attempts_outputs_count(tmp_path: Path) -> None:
    """Attempt 1 writes x=bad and fails; attempt 2 writes x=good and succeeds: the
    consumer gets 'good', and attempt 2 starts with an empty outputs file."""
    script = (
        'if [ "$PLANRUN_ATTEMPT" = 1 ]; then echo x=bad >> "$PLANRUN_OUTPUT"; exit 3; fi; '
        # Attempt 2 must not see attempt 1's lines.
        'if [ -s "$PLANRUN_OUTPUT" ]; then echo leftover >&2; exit 9; fi; '
        'echo x=good >> "$PLANRUN_OUTPUT"'
    )
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "retry",
            "steps": [
                sh("a", script, retries=1),
                probe("b", out, "${steps.a.outputs.x}", depends_on=["a"]),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-retry", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_probe(out)["argv"] == ["good"]
    a = steps_by_id(show_json("r-retry", tmp_path))["a"]
    assert [(t["state"], t["exit_code"]) for t in a["attempts"]] == [
        ("failed", 3),
        ("succeeded", 0),
    ]
    assert a["outputs"] == {"x": "good"}


def test_a_failed_attempts_outputs_do_not_fill_a_later_gap(tmp_path: Path) -> None:
    """Attempt 1 writes x=bad and fails; attempt 2 succeeds writing only y: x is missing
    (the failed attempt's value is not used)."""
    script = (
        'if [ "$PLANRUN_ATTEMPT" = 1 ]; then echo x=bad >> "$PLANRUN_OUTPUT"; exit 3; fi; '
        'echo y=2 >> "$PLANRUN_OUTPUT"'
    )
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "gap",
            "steps": [
                sh("a", script, retries=1),
                {
                    "id": "b",
                    "command": "echo",
                    "args": ["${steps.a.outputs.x}"],
                    "depends_on": ["a"],
                },
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-gap", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    steps = steps_by_id(show_json("r-gap", tmp_path))
    assert steps["a"]["outputs"] == {"y": "2"}
    assert steps["b"]["state"] == "failed"
    assert "output 'x' of step 'a' is missing" in steps["b"]["reason"]
    assert steps["b"]["attempts"] == []


# --- malformed outputs files ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(
            b"ok=1\nno equals sign here\n",
            "$PLANRUN_OUTPUT line 2: expected KEY=VALUE or KEY<<DELIMITER",
            id="no-equals",
        ),
        pytest.param(
            b"ok=1\nnotes<<EOF\nnever closed\n",
            "$PLANRUN_OUTPUT line 2: no closing 'EOF' line for 'notes<<EOF'",
            id="unclosed-heredoc",
        ),
        pytest.param(
            b"k<<\nbody\n",
            "$PLANRUN_OUTPUT line 1: expected KEY=VALUE or KEY<<DELIMITER",
            id="empty-delimiter",
        ),
        pytest.param(b"1bad=x\n", "$PLANRUN_OUTPUT line 1: invalid key '1bad'", id="bad-key"),
        pytest.param(b"-ab=x\n", "$PLANRUN_OUTPUT line 1: invalid key '-ab'", id="dash-first"),
        pytest.param(b"k=\xff\xfe\n", "$PLANRUN_OUTPUT is not UTF-8 (byte 2)", id="not-utf8"),
        pytest.param(
            b"k=" + b"x" * 65535,
            "$PLANRUN_OUTPUT holds 65537 bytes; the limit is 65536",
            id="oversized-by-1",
        ),
        pytest.param(
            b"k=" + b"x" * 200_000,
            "bytes; the limit is 65536 (write large data to a file and pass its path)",
            id="oversized-large",
        ),
    ],
)
def test_malformed_or_oversized_outputs_file_fails_the_producer(
    tmp_path: Path, content: bytes, error: str
) -> None:
    """A step that exits 0 but leaves a malformed or > 64 KiB outputs file fails, with
    the problem as its attempt's error and its reason; what depends on it never runs."""
    (tmp_path / "content.bin").write_bytes(content)
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "malformed",
            "steps": [
                {"id": "a", "command": PY, "args": ["-c", WRITE_FILE, "content.bin"]},
                {"id": "b", "command": "touch", "args": ["b-ran"], "depends_on": ["a"]},
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-bad", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert error in result.stdout
    assert not (tmp_path / "b-ran").exists()

    doc = show_json("r-bad", tmp_path)
    a = steps_by_id(doc)["a"]
    assert a["state"] == "failed"
    assert error in a["reason"]
    assert len(a["attempts"]) == 1
    attempt = a["attempts"][0]
    assert attempt["state"] == "failed"
    assert attempt["exit_code"] == 0  # the process itself succeeded
    assert error in attempt["error"]
    assert not a["outputs"]
    assert steps_by_id(doc)["b"]["attempts"] == []


def test_oversized_outputs_error_states_the_real_size(tmp_path: Path) -> None:
    """The error for a 200 KB outputs file says how big it is (or "more than" the
    limit), not a wrong exact size."""
    content = b"k=" + b"x" * 200_000 + b"\n"
    (tmp_path / "content.bin").write_bytes(content)
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "big",
            "steps": [{"id": "a", "command": PY, "args": ["-c", WRITE_FILE, "content.bin"]}],
        },
    )
    result = planrun("run", plan, "--run-id", "r-big", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    error = steps_by_id(show_json("r-big", tmp_path))["a"]["attempts"][0]["error"]
    assert "the limit is 65536" in error
    assert "holds 65537 bytes" not in error, error
    assert f"holds {len(content)} bytes" in error or "more than 65536" in error, error


def test_outputs_keep_every_byte_of_a_value_cr_included(tmp_path: Path) -> None:
    """Values keep their bytes: a ``\\r`` before ``\\n`` stays part of the value (a CRLF
    file's heredoc closes at its ``EOF\\r`` line), nothing is normalised."""
    (tmp_path / "content.bin").write_bytes(b"k=v\r\nnotes<<EOF\r\none\r\ntwo\r\nEOF\r\n")
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "crlf",
            "steps": [
                {"id": "a", "command": PY, "args": ["-c", WRITE_FILE, "content.bin"]},
                probe(
                    "b", out, "${steps.a.outputs.k}", "${steps.a.outputs.notes}", depends_on=["a"]
                ),
            ],
        },
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_probe(out)["argv"] == ["v\r", "one\r\ntwo\r"]


def test_outputs_file_of_exactly_64_kib_is_accepted(tmp_path: Path) -> None:
    """The limit is inclusive: 65536 bytes are accepted and passed on whole."""
    content = b"k=" + b"x" * 65533 + b"\n"
    assert len(content) == 64 * 1024
    (tmp_path / "content.bin").write_bytes(content)
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "limit",
            "steps": [
                {"id": "a", "command": PY, "args": ["-c", WRITE_FILE, "content.bin"]},
                sh(
                    "b",
                    'printf "%s" "$IN_K" | wc -c > size.txt',
                    depends_on=["a"],
                    env={"IN_K": "${steps.a.outputs.k}"},
                ),
            ],
        },
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int((tmp_path / "size.txt").read_text()) == 65533


# --- exit codes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "run_exit"),
    [
        pytest.param({"critical": False}, 0, id="non-critical"),
        pytest.param({"on_failure": "continue"}, 1, id="on-failure-continue"),
    ],
)
def test_exit_code_of_a_failed_step_is_usable_by_an_all_done_step(
    tmp_path: Path, policy: dict[str, Any], run_exit: int
) -> None:
    """``${steps.X.exit_code}`` of a step that failed (and did not abort the run) is
    its exit code, in args and env of a ``when: all_done`` step."""
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "exitcode",
            "steps": [
                sh("a", "exit 7", **policy),
                probe(
                    "report",
                    out,
                    "a exited ${steps.a.exit_code}",
                    depends_on=["a"],
                    when="all_done",
                    env={"IN_CODE": "${steps.a.exit_code}"},
                ),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-code", cwd=tmp_path)
    assert result.returncode == run_exit, result.stdout + result.stderr
    got = read_probe(out)
    assert got["argv"] == ["a exited 7"]
    assert got["env"] == {"IN_CODE": "7"}


def test_exit_code_of_an_accepted_nonzero_exit_and_its_outputs(tmp_path: Path) -> None:
    """A step that succeeds with a listed non-zero exit code keeps its outputs, and its
    exit code is that code."""
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "accepted",
            "steps": [
                sh("a", f"echo k=v {OUT}; exit 3", success_exit_codes=[0, 3]),
                probe("b", out, "${steps.a.exit_code}", "${steps.a.outputs.k}", depends_on=["a"]),
            ],
        },
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_probe(out)["argv"] == ["3", "v"]


def test_exit_code_of_a_step_that_never_ran_fails_the_consumer(tmp_path: Path) -> None:
    """A step that could not start has no exit code: a reference to it fails the
    consumer (it does not become an empty string)."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "noexit",
            "steps": [
                {"id": "a", "command": "no-such-program-planrun-xyz", "critical": False},
                {
                    "id": "b",
                    "command": "touch",
                    "args": ["b-ran-${steps.a.exit_code}"],
                    "depends_on": ["a"],
                    "when": "all_done",
                },
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-noexit", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert not list(tmp_path.glob("b-ran*"))
    b = steps_by_id(show_json("r-noexit", tmp_path))["b"]
    assert b["state"] == "failed"
    assert "'${steps.a.exit_code}' has no value" in b["reason"]
    assert "'a' failed" in b["reason"] or "step 'a' failed" in b["reason"]
    assert b["attempts"] == []


def test_step_ids_with_dots_and_dashes_can_be_referenced(tmp_path: Path) -> None:
    """Step ids may hold '.' and '-': ``${steps.build.linux-x86_64.outputs.k}`` names
    step ``build.linux-x86_64``."""
    out = tmp_path / "probe.json"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "dotted",
            "steps": [
                sh("build.linux-x86_64", f"echo artifact=app.tar {OUT}"),
                probe(
                    "ship",
                    out,
                    "${steps.build.linux-x86_64.outputs.artifact}",
                    "${steps.build.linux-x86_64.exit_code}",
                    depends_on=["build.linux-x86_64"],
                ),
            ],
        },
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_probe(out)["argv"] == ["app.tar", "0"]


# --- show -----------------------------------------------------------------------------


def test_show_lists_outputs_in_text_and_json(tmp_path: Path) -> None:
    """``show`` prints an "outputs" section (step.key = value, one per line, repr'd so
    a multi-line value stays on one line); ``show --json`` has steps[].outputs."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "shown",
            "steps": [
                sh("a", f"printf 'sha=3f9a2c1\\nnotes<<END\\nfirst\\nsecond\\nEND\\n' {OUT}"),
                sh("b", f"echo 'msg=it is \"done\"' {OUT}", depends_on=["a"]),
                sh("c", "true", depends_on=["b"]),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-show", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    text = planrun("show", "r-show", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    at = lines.index("outputs")
    section = lines[at + 1 :]
    assert section == [
        "  a.sha = '3f9a2c1'",
        "  a.notes = 'first\\nsecond'",
        "  b.msg = 'it is \"done\"'",
    ]

    steps = steps_by_id(show_json("r-show", tmp_path))
    assert steps["a"]["outputs"] == {"sha": "3f9a2c1", "notes": "first\nsecond"}
    assert steps["b"]["outputs"] == {"msg": 'it is "done"'}
    assert steps["a"]["masked_outputs"] == []
    assert not steps["c"]["outputs"]


def test_show_without_outputs_has_no_outputs_section(tmp_path: Path) -> None:
    """A run where no step wrote an output shows no "outputs" heading."""
    plan = write_json(tmp_path / "plan.json", {"plan_id": "none", "steps": [sh("a", "echo hi")]})
    assert planrun("run", plan, "--run-id", "r-none", cwd=tmp_path).returncode == 0
    text = planrun("show", "r-none", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "outputs" not in text.stdout.splitlines()


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("b_fields", "path", "message"),
    [
        pytest.param(
            {"args": ["${steps.a.outputs.k}"]},
            "$.steps[1].args[0]",
            "'${steps.a.outputs.k}': step 'a' is not an ancestor of 'b'",
            id="args-not-ancestor",
        ),
        pytest.param(
            {"args": ["x", "pre-${steps.a.exit_code}"]},
            "$.steps[1].args[1]",
            "'${steps.a.exit_code}': step 'a' is not an ancestor of 'b'",
            id="exit-code-not-ancestor",
        ),
        pytest.param(
            {"env": {"E": "${steps.a.outputs.k}"}},
            "$.steps[1].env.E",
            "step 'a' is not an ancestor of 'b'",
            id="env-not-ancestor",
        ),
        pytest.param(
            {"cwd": "${steps.a.outputs.k}"},
            "$.steps[1].cwd",
            "step 'a' is not an ancestor of 'b'",
            id="cwd-not-ancestor",
        ),
        pytest.param(
            {"depends_on": ["a"], "args": ["${steps.c.outputs.k}"]},
            "$.steps[1].args[0]",
            "'${steps.c.outputs.k}': step 'c' is not an ancestor of 'b'",
            id="sibling",
        ),
        pytest.param(
            {"args": ["${steps.nope.outputs.k}"]},
            "$.steps[1].args[0]",
            "'${steps.nope.outputs.k}' names an unknown step 'nope'",
            id="unknown-step",
        ),
        pytest.param(
            {"args": ["${steps.b.outputs.k}"]},
            "$.steps[1].args[0]",
            "'${steps.b.outputs.k}' refers to the step itself",
            id="itself",
        ),
        pytest.param(
            {"depends_on": ["a"], "args": ["${steps.a.outputs.bad.key}"]},
            "$.steps[1].args[0]",
            "invalid step reference",
            id="malformed-key",
        ),
    ],
)
@pytest.mark.parametrize("command", [["validate"], ["run"], ["run", "--dry-run"]], ids=" ".join)
def test_bad_step_reference_is_rejected_before_anything_runs(
    tmp_path: Path, command: list[str], b_fields: dict[str, Any], path: str, message: str
) -> None:
    """A reference to a step that is not an ancestor (or unknown, or the step itself)
    exits 2 naming the JSON path and the step, and nothing is written or started."""
    b = {"id": "b", "command": "touch", **b_fields}
    b["args"] = [*b_fields.get("args", []), "b-ran"]
    steps = [
        {"id": "a", "command": "touch", "args": ["a-ran"]},
        b,
        {"id": "c", "command": "touch", "args": ["c-ran"], "depends_on": ["a"]},
    ]
    plan = write_json(tmp_path / "plans" / "refs.json", {"plan_id": "refs", "steps": steps})
    work = tmp_path / "work"
    work.mkdir()
    result = planrun(*command, plan, cwd=work)
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert "invalid plan (1 problem)" in err, err
    assert f": {path} (step 'b'): " in err, err
    assert message in err, err
    assert list(work.iterdir()) == []
    assert not list(tmp_path.rglob("*-ran"))


def test_reference_to_a_transitive_ancestor_is_valid(tmp_path: Path) -> None:
    """An ancestor through another step counts (c -> b -> a may use a's outputs)."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "transitive",
            "steps": [
                {"id": "a", "command": "true"},
                {"id": "b", "command": "true", "depends_on": ["a"]},
                {
                    "id": "c",
                    "command": "echo",
                    "args": ["${steps.a.outputs.k}", "${steps.b.exit_code}"],
                    "depends_on": ["b"],
                },
            ],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid plan 'transitive': 3 steps in 3 levels" in result.stdout


def test_reference_in_command_is_rejected(tmp_path: Path) -> None:
    """A step's results cannot choose the program to run."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "cmd",
            "steps": [
                {"id": "a", "command": "true"},
                {"id": "b", "command": "${steps.a.outputs.prog}", "depends_on": ["a"]},
            ],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "$.steps[1].command (step 'b')" in result.stderr
    assert "can be used only in the args, env and cwd of a later step" in result.stderr


# --- --dry-run ------------------------------------------------------------------------


def test_dry_run_shows_step_references_unresolved(tmp_path: Path) -> None:
    """--dry-run cannot know outputs: it shows the reference text as written, in argv
    and env, and creates nothing."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "dry",
            "steps": [
                sh("a", f"echo k=v {OUT}"),
                {
                    "id": "b",
                    "command": "echo",
                    "args": ["got ${steps.a.outputs.k}", "${steps.a.exit_code}"],
                    "env": {"E": "${steps.a.outputs.k}"},
                    "depends_on": ["a"],
                },
            ],
        },
    )
    work = tmp_path / "work"
    work.mkdir()
    result = planrun("run", plan, "--dry-run", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("  b: "))
    assert line == "  b: echo 'got ${steps.a.outputs.k}' '${steps.a.exit_code}'"
    assert "env E='${steps.a.outputs.k}'" in result.stdout
    assert list(work.iterdir()) == []


# --- where the outputs file lives -----------------------------------------------------


def test_outputs_file_is_private_outside_the_state_dir_and_removed(tmp_path: Path) -> None:
    """$PLANRUN_OUTPUT names a file outside the state dir, in a directory only the user
    can enter; each attempt gets its own file, and they are gone after the run."""
    state = tmp_path / "state"
    report = tmp_path / "report.txt"
    script = (
        f'{{ printf "%s\\n" "$PLANRUN_OUTPUT"; stat -c %a "$(dirname "$PLANRUN_OUTPUT")"; '
        f"}} >> '{report}'; echo k=v {OUT}"
    )
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "where",
            "steps": [sh("a", script), sh("b", script, depends_on=["a"])],
        },
    )
    result = planrun("run", plan, "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    a_path, a_mode, b_path, b_mode = report.read_text().splitlines()
    for path in (a_path, b_path):
        assert os.path.isabs(path), path
        real = os.path.realpath(path)
        assert not real.startswith(str(state.resolve()) + os.sep), real
        assert not path.startswith(str(state) + os.sep), path
        assert not Path(path).exists()
        assert not Path(path).parent.exists()  # the private dir is removed too
    assert a_path != b_path
    assert a_mode == b_mode == "300"  # enter and create, not list
    # Nothing named like an outputs file was left in the state dir either.
    assert not [p for p in state.rglob("*") if p.suffix == ".env"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_default_state_dir_does_not_hold_outputs_file(tmp_path: Path) -> None:
    """Also with the default state dir (.planrun in the cwd)."""
    report = tmp_path / "report.txt"
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "where", "steps": [sh("a", f"printf %s \"$PLANRUN_OUTPUT\" > '{report}'")]},
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    path = report.read_text()
    assert path
    assert not re.search(r"(^|/)\.planrun(/|$)", path), path
    assert not os.path.realpath(path).startswith(str((tmp_path / ".planrun").resolve()))


# --- outputs that cannot be forged ----------------------------------------------------

#: Step ``a`` of the forging tests: once ``b-ready`` exists (at once if ``b`` depends
#: on ``a``), it writes ``sha=forged-by-a`` into every outputs file it can list in the
#: outputs dirs or guess (the sequential names planrun used to give them), then sets
#: its own output ``tried``. It never writes outside ``argv[2]`` (the run's TMPDIR, a
#: test dir), whatever planrun's layout: the old one put the outputs dir straight in
#: the temp dir, whose neighbours are not the test's to touch.
FORGER = (
    "import glob, os, sys, time\n"
    "own = os.environ['PLANRUN_OUTPUT']\n"
    "mine = os.path.dirname(own)\n"
    "root = os.path.dirname(mine)\n"
    "deadline = time.monotonic() + 20\n"
    "while sys.argv[1] == 'wait' and not os.path.exists('b-ready'):\n"
    "    if time.monotonic() > deadline:\n"
    "        sys.exit('b never started')\n"
    "    time.sleep(0.02)\n"
    "targets = set(glob.glob(root + '/*') + glob.glob(root + '/*/*') + glob.glob(mine + '/*'))\n"
    "for base in (root, mine):\n"
    "    targets |= {f'{base}/{n}.env' for n in range(1, 21)}\n"
    "    targets |= {f'{base}/{n}/output' for n in range(1, 21)}\n"
    "sandbox = os.path.realpath(sys.argv[2]) + os.sep\n"
    "targets = {t for t in targets if os.path.realpath(t).startswith(sandbox)}\n"
    "for path in sorted(targets - {own}):\n"
    "    try:\n"
    "        with open(path, 'a') as f:\n"
    "            f.write('sha=forged-by-a\\n')\n"
    "    except OSError:\n"
    "        pass\n"
    "with open(own, 'a') as f:\n"
    "    f.write(f'tried={len(targets)}\\n')\n"
    "open('a-done', 'w').close()\n"
)

#: Step ``b``: says it runs, waits until ``a`` has tried, writes no output itself.
WAITER = (
    "import os, time\n"
    "open('b-ready', 'w').close()\n"
    "deadline = time.monotonic() + 20\n"
    "while not os.path.exists('a-done') and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
)


def _forging_plan(tmp_path: Path, sandbox: Path, parallel: bool, python: str = PY) -> Path:
    """a forges (see ``FORGER``) inside ``sandbox``, b writes nothing, c needs b's
    ``sha``."""
    out = tmp_path / "probe.json"
    return write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "forge",
            "globals": {"max_concurrency": 2},
            "steps": [
                {
                    "id": "a",
                    "command": python,
                    "args": ["-c", FORGER, "wait" if parallel else "go", str(sandbox)],
                },
                {
                    "id": "b",
                    "command": python,
                    "args": ["-c", WAITER],
                    "depends_on": [] if parallel else ["a"],
                },
                {
                    **probe("c", out, "${steps.b.outputs.sha}"),
                    "command": python,
                    "depends_on": ["a", "b"],
                },
            ],
        },
    )


def _assert_not_forged(result: subprocess.CompletedProcess[str], doc: dict[str, Any]) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    steps = steps_by_id(doc)
    assert steps["a"]["state"] == "succeeded", steps["a"]
    assert int(steps["a"]["outputs"]["tried"]) >= 20  # the guesses were written somewhere
    assert steps["b"]["state"] == "succeeded"
    assert not steps["b"]["outputs"], steps["b"]["outputs"]
    assert steps["c"]["state"] == "failed"
    assert "output 'sha' of step 'b' is missing" in steps["c"]["reason"]


def test_a_step_cannot_plant_the_outputs_of_a_later_step(tmp_path: Path) -> None:
    """a writes ``sha=...`` into every outputs file it can guess or list before b
    starts; b writes nothing, so b has no outputs and the step that needs b's ``sha``
    fails with "missing", never receiving the forged value."""
    sandbox = tmp_path / "tmp"
    sandbox.mkdir()
    plan = _forging_plan(tmp_path, sandbox, parallel=False)
    env = clean_env(TMPDIR=str(sandbox))
    result = planrun("run", plan, "--run-id", "r-forge", cwd=tmp_path, env=env, timeout=60)
    _assert_not_forged(result, show_json("r-forge", tmp_path))


def _as_ordinary_user() -> tuple[tuple[str, ...], str, dict[str, str]] | None:
    """(prefix, python, extra env) to run planrun as an ordinary user: as is when not
    root; as root, ``nobody`` through setpriv with a system interpreter of this
    version (this venv's may sit under an unreadable home) and this venv's packages.
    None if that is not possible here."""
    if os.geteuid() != 0:
        return (), PY, {}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    python = shutil.which(version, path="/usr/bin:/usr/local/bin")
    if shutil.which("setpriv") is None or python is None:
        return None
    prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--")
    path = os.pathsep.join([str(REPO / "src"), sysconfig.get_paths()["purelib"]])
    return prefix, python, {"PYTHONPATH": path}


def test_a_step_cannot_list_its_way_to_the_outputs_of_a_parallel_step() -> None:
    """As an ordinary user (root can list any directory), a lists and guesses outputs
    files while b runs beside it: it cannot list the outputs dir nor guess b's name, so
    b has no outputs and the step that needs b's ``sha`` fails."""
    how = _as_ordinary_user()
    if how is None:
        pytest.skip("running as root without setpriv or a system python of this version")
    prefix, python, extra = how
    work = Path(tempfile.mkdtemp(prefix="planrun-forge-"))
    try:
        if prefix:
            os.chown(work, 65534, 65534)
        sandbox = work / "tmp"
        sandbox.mkdir()
        if prefix:
            os.chown(sandbox, 65534, 65534)
        plan = _forging_plan(work, sandbox, parallel=True, python=python)
        env = clean_env(TMPDIR=str(sandbox), HOME=str(work), **extra)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [*prefix, python, "-m", "planrun", *args],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert "Traceback" not in done.stderr, done.stderr
            return done

        run = cli("run", str(plan), "--run-id", "r-par")
        assert (work / "a-done").exists(), run.stdout + run.stderr
        show = cli("show", "r-par", "--json")
        assert show.returncode == 0, show.stderr
        _assert_not_forged(run, json.loads(show.stdout))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _readme_heredoc_line() -> str:
    """The README's multi-line output example (section "Step outputs"), as shell."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Step outputs", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if "sha=" not in line]
    assert any("notes<<" in line for line in lines), block
    return "\n".join(lines)


#: A hostile value: holds the fixed delimiter, a key, and reopens a value to swallow
#: the closing line a fixed-delimiter template adds.
HOSTILE_NOTES = "x\nEOF\nsha=attacker\nz<<EOF"


def test_readme_heredoc_example_keeps_a_value_that_holds_eof_whole(tmp_path: Path) -> None:
    """The README's example (the random ``$PLANRUN_OUTPUT_DELIMITER``) with a value that
    holds ``EOF`` lines and ``sha=attacker``: the value arrives whole, ``sha`` keeps the
    step's own value and no other key appears."""
    out = tmp_path / "probe.json"
    script = 'echo "sha=real" >> "$PLANRUN_OUTPUT"\n' + _readme_heredoc_line()
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "readme",
            "variables": {"NOTES": ""},
            "steps": [
                sh("a", script),
                probe(
                    "b",
                    out,
                    "${steps.a.outputs.sha}",
                    "${steps.a.outputs.notes}",
                    depends_on=["a"],
                ),
            ],
        },
    )
    result = planrun(
        "run", plan, "--run-id", "r-readme", "--var", f"NOTES={HOSTILE_NOTES}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_probe(out)["argv"] == ["real", HOSTILE_NOTES]
    assert steps_by_id(show_json("r-readme", tmp_path))["a"]["outputs"] == {
        "sha": "real",
        "notes": HOSTILE_NOTES,
    }


@pytest.mark.parametrize("sha_first", [True, False], ids=["sha-before", "sha-after"])
def test_a_fixed_delimiter_value_cannot_override_another_key(
    tmp_path: Path, sha_first: bool
) -> None:
    """The old fixed-``EOF`` form with the same hostile value: the smuggled ``sha=``
    line never overrides the step's own ``sha`` (before or after it): the producer
    fails with the reason, and the consumer never runs."""
    out = tmp_path / "probe.json"
    heredoc = 'printf \'notes<<EOF\\n%s\\nEOF\\n\' "$NOTES" >> "$PLANRUN_OUTPUT"'
    own = 'echo "sha=real" >> "$PLANRUN_OUTPUT"'
    script = f"{own}; {heredoc}" if sha_first else f"{heredoc}; {own}"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "fixed",
            "variables": {"NOTES": ""},
            "steps": [
                sh("a", script),
                probe("b", out, "${steps.a.outputs.sha}", depends_on=["a"]),
            ],
        },
    )
    result = planrun(
        "run", plan, "--run-id", "r-fixed", "--var", f"NOTES={HOSTILE_NOTES}", cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert not out.exists()
    a = steps_by_id(show_json("r-fixed", tmp_path))["a"]
    assert a["state"] == "failed"
    assert "'sha' is already set on line" in a["reason"], a["reason"]
    assert "$PLANRUN_OUTPUT_DELIMITER" in a["reason"]
    assert not a["outputs"]


def test_a_fifo_at_planrun_output_fails_the_attempt_and_the_run_ends(tmp_path: Path) -> None:
    """A step that replaces its outputs file by a FIFO and exits 0 fails with a reason
    naming the FIFO; planrun never blocks on it, so the abort that follows stops the
    step still sleeping beside it and the run ends."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "fifo",
            "globals": {"max_concurrency": 2},
            "steps": [
                sh("a", 'rm "$PLANRUN_OUTPUT"; mkfifo "$PLANRUN_OUTPUT"'),
                sh("slow", "sleep 60"),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-fifo", cwd=tmp_path, timeout=45)
    assert result.returncode == 1, result.stdout + result.stderr
    steps = steps_by_id(show_json("r-fifo", tmp_path))
    a = steps["a"]
    assert a["state"] == "failed"
    assert a["attempts"][0]["exit_code"] == 0
    assert "$PLANRUN_OUTPUT is a FIFO now" in a["reason"], a["reason"]
    assert steps["slow"]["state"] == "cancelled"


def test_a_fifo_at_planrun_output_leaves_the_run_deadline_working(tmp_path: Path) -> None:
    """With the FIFO step non-critical, the run goes on and its deadline still ends it
    (exit 124): planrun's loop was never blocked."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "fifo-deadline",
            "globals": {"max_concurrency": 2, "timeout_sec": 3},
            "steps": [
                sh("a", 'rm "$PLANRUN_OUTPUT"; mkfifo "$PLANRUN_OUTPUT"', critical=False),
                sh("slow", "sleep 60"),
            ],
        },
    )
    result = planrun("run", plan, "--run-id", "r-fifo-dl", cwd=tmp_path, timeout=45)
    assert result.returncode == 124, result.stdout + result.stderr
    steps = steps_by_id(show_json("r-fifo-dl", tmp_path))
    assert "FIFO" in steps["a"]["reason"]
    assert steps["slow"]["state"] in ("timed_out", "cancelled")


def test_cancel_works_after_a_fifo_at_planrun_output(tmp_path: Path) -> None:
    """``planrun cancel`` from another terminal still stops a run whose finished step
    left a FIFO at $PLANRUN_OUTPUT (exit 130, the sleeping step cancelled)."""
    state = tmp_path / "state"
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "fifo-cancel",
            "globals": {"max_concurrency": 2},
            "steps": [
                sh("a", 'rm "$PLANRUN_OUTPUT"; mkfifo "$PLANRUN_OUTPUT"', critical=False),
                sh("slow", "sleep 60"),
            ],
        },
    )
    run_id = "r-fifo-cancel"
    with (tmp_path / "out.txt").open("wb") as log:
        proc = subprocess.Popen(
            [*PLANRUN, "run", str(plan), "--run-id", run_id, "--state-dir", str(state)],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def a_finished() -> bool:
            return any(
                e["type"] == "step_finished" and e["step_id"] == "a"
                for e in read_events(state, run_id)
            )

        assert wait_until(a_finished, 30), (tmp_path / "out.txt").read_text()
        result = planrun("cancel", run_id, "--timeout", "20", "--state-dir", state, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        kill_pids(live_pids_with_env("PLANRUN_RUN_ID", run_id))
    events = read_events(state, run_id)
    a = next(e for e in events if e["type"] == "step_finished" and e["step_id"] == "a")
    assert "FIFO" in a["reason"]
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["state"] == "cancelled"


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        pytest.param("ln -s", "$PLANRUN_OUTPUT is a symbolic link now", id="symlink"),
        pytest.param("ln", "$PLANRUN_OUTPUT was replaced by another file", id="hard-link"),
    ],
)
def test_a_link_at_planrun_output_is_refused_and_its_target_unchanged(
    tmp_path: Path, link: str, reason: str
) -> None:
    """A step that puts a link to another file (with outputs-like content) at
    $PLANRUN_OUTPUT fails with the reason; the file's content never becomes outputs,
    and its content and mode are unchanged."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("k=stolen\n")
    target.chmod(0o640)
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "link",
            "steps": [sh("a", f'rm "$PLANRUN_OUTPUT"; {link} "{target}" "$PLANRUN_OUTPUT"')],
        },
    )
    # $TMPDIR on tmp_path's file system (else the outputs dir is in /dev/shm), so that
    # a hard link to the target can be made at $PLANRUN_OUTPUT.
    env = clean_env(TMPDIR=str(tmp_path))
    result = planrun("run", plan, "--run-id", "r-link", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    a = steps_by_id(show_json("r-link", tmp_path))["a"]
    assert a["state"] == "failed"
    assert reason in a["reason"], a["reason"]
    assert not a["outputs"]
    assert target.read_text() == "k=stolen\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_outputs_file_exists_before_the_step_starts_with_a_random_delimiter(
    tmp_path: Path,
) -> None:
    """$PLANRUN_OUTPUT is an empty 0600 file when the step starts, in a 0300 directory
    (not listable by an ordinary user);
    ``$PLANRUN_OUTPUT_DELIMITER`` differs per attempt and is hard to guess."""
    report = tmp_path / "report.txt"
    script = (
        'f="$PLANRUN_OUTPUT"; d=$(dirname "$f"); '
        f'{{ stat -c "%s %a" "$f"; stat -c %a "$d"; '
        f"printf '%s\\n' \"$PLANRUN_OUTPUT_DELIMITER\"; }} >> '{report}'"
    )
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "pre", "steps": [sh("a", script), sh("b", script, depends_on=["a"])]},
    )
    result = planrun("run", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = report.read_text().splitlines()
    assert len(lines) == 6, lines
    for first in (0, 3):
        assert lines[first : first + 2] == ["0 600", "300"]
    delims = {lines[2], lines[5]}
    assert len(delims) == 2
    assert all(re.fullmatch(r"PLANRUN_EOF_[0-9a-f]{32}", d) for d in delims), delims


def test_an_output_holding_a_secret_on_a_command_line_is_warned_about(tmp_path: Path) -> None:
    """An output whose value holds a secret, bound into a step's args, gets a warning
    when that step starts (in the plain log and its ``attempt_started`` event), as a
    secret in args does at validation; bound into env, it gets none."""
    state = tmp_path / "state"
    token = "tok-3f9a2c1-secret"  # noqa: S105 - a test value
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "secret-out",
            "secrets": ["TOKEN"],
            "steps": [
                sh("a", f'echo "k=x-$TOKEN" {OUT}; echo "plain=v" {OUT}'),
                {
                    "id": "argv",
                    "command": "true",
                    "args": ["${steps.a.outputs.k}"],
                    "depends_on": ["a"],
                },
                {
                    "id": "env",
                    "command": "true",
                    "env": {"K": "${steps.a.outputs.k}"},
                    "depends_on": ["a"],
                },
                {
                    "id": "harmless",
                    "command": "true",
                    "args": ["${steps.a.outputs.plain}"],
                    "depends_on": ["a"],
                },
            ],
        },
    )
    result = planrun(
        "run",
        plan,
        "--run-id",
        "r-sec",
        "--state-dir",
        state,
        cwd=tmp_path,
        env=clean_env(TOKEN=token),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert token not in result.stdout + result.stderr
    warning = (
        "warning: ${steps.a.outputs.k} holds a secret and is put on the command line "
        "(args[0]), which other local users can read (ps, /proc)"
    )
    lines = [line for line in result.stdout.splitlines() if "holds a secret" in line]
    assert len(lines) == 1, result.stdout
    assert "argv running" in lines[0]
    assert warning in lines[0]
    started = {
        e["step_id"]: e for e in read_events(state, "r-sec") if e["type"] == "attempt_started"
    }
    assert warning in started["argv"]["warning"]
    assert "warning" not in started["env"]
    assert "warning" not in started["harmless"]
