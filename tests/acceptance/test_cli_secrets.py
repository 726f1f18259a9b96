"""Secrets end to end: declared in the plan (``"secrets"``) or with ``--secret NAME``,
given to the steps, and never written in clear anywhere planrun writes or prints.
Also: the state dir's files stay private under ``umask 000``."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ._cli import PLANRUN, PY, clean_env, planrun, sh, wait_until, write_json

#: Declared in the plan. Holds '"', '\\', '/' and a non-ASCII character, so its raw and
#: JSON-escaped forms differ. (Printed from sh with printf '%s': dash's echo would
#: interpret the backslash.)
TOKEN = 'Zq9-s3cr"et\\pa/ss-w\u00f6rd-7Xk'  # noqa: S105 - a test value
#: Given with --secret EXTRA.
EXTRA = 'Xe4/"\u00fcn\u00ef\\code"-K3y'
SECRETS = {"TOKEN": TOKEN, "EXTRA": EXTRA}


def leak_forms(value: str) -> list[bytes]:
    """The forms of a secret that must never appear: raw, and JSON-escaped as
    ``json.dumps`` writes it (with and without ``ensure_ascii``)."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    return sorted(f.encode() for f in forms)


def leaks(data: bytes | str) -> list[tuple[str, bytes]]:
    """(secret name, form) for every secret form found in ``data``."""
    blob = data.encode() if isinstance(data, str) else data
    return [(name, form) for name, v in SECRETS.items() for form in leak_forms(v) if form in blob]


def test_secret_values_have_distinct_json_forms() -> None:
    """The test secrets are good probes: their JSON forms differ from the raw ones."""
    for value in SECRETS.values():
        assert len(leak_forms(value)) == 3, value
        for char in ('"', "\\", "/"):
            assert char in value


# --- one leaky run, shared ------------------------------------------------------------

#: Splits the secret (and its JSON form) across two writes, with a flush and a sleep in
#: between, on stdout and on stderr. The cut is inside the UTF-8 bytes of a character.
SPLIT = (
    "import json, os, sys, time\n"
    "raw = os.environb[b'TOKEN']\n"
    "cut = raw.index('\\u00f6'.encode()) + 1\n"
    "js = json.dumps(raw.decode()).encode()\n"
    "for stream in (sys.stdout.buffer, sys.stderr.buffer):\n"
    "    stream.write(b'split: ' + raw[:cut]); stream.flush(); time.sleep(0.2)\n"
    "    stream.write(raw[cut:] + b' end\\n'); stream.flush()\n"
    "    half = len(js) // 2\n"
    "    stream.write(b'json split: ' + js[:half]); stream.flush(); time.sleep(0.2)\n"
    "    stream.write(js[half:] + b'\\n'); stream.flush()\n"
)

#: Prints both secrets JSON-escaped, as json.dumps writes them.
JSON_PRINT = (
    "import json, os\n"
    "for name in ('TOKEN', 'EXTRA'):\n"
    "    value = os.environ[name]\n"
    "    print(json.dumps(value))\n"
    "    print(json.dumps(value, ensure_ascii=False))\n"
    "    print(json.dumps({'key': value, 'list': [value]}))\n"
)

RAW_PRINT = (
    "printf 'raw: %s\\n' \"$TOKEN\"; printf 'extra: %s\\n' \"$EXTRA\"; "
    "printf 'substituted: %s\\n' \"$T_SUB\"; "
    "printf 'stderr: %s\\n' \"$TOKEN\" >&2; printf 'stderr extra: %s\\n' \"$EXTRA\" >&2; "
    # The values arrived intact (the environment and ${TOKEN} substitution).
    '[ "$T_SUB" = "$TOKEN" ] || exit 11; [ "$1" = "$TOKEN" ] || exit 12'
)

PRODUCE = (
    'printf \'tok=%s\\n\' "$TOKEN" >> "$PLANRUN_OUTPUT"; '
    'printf \'mixed=before %s after\\n\' "$EXTRA" >> "$PLANRUN_OUTPUT"; '
    'echo plain=visible >> "$PLANRUN_OUTPUT"'
)

#: Exits 1 unless it got the FULL real values (not "***") through its outputs.
CONSUME = (
    '[ "$GOT" = "$TOKEN" ] || { echo "tok differs" >&2; exit 1; }; '
    '[ "$GOT_MIXED" = "before $EXTRA after" ] || { echo "mixed differs" >&2; exit 1; }; '
    '[ "$GOT_PLAIN" = visible ] || exit 1; '
    "printf 'consumer got: %s\\n' \"$GOT\""
)

#: Holds the run open (so its WAL exists) until the test creates the release file.
HOLD = (
    'touch "$HOLD_MARKER"; i=0; '
    'while [ ! -e "$HOLD_RELEASE" ]; do i=$((i+1)); [ $i -gt 400 ] && exit 1; sleep 0.05; done'
)


def leaky_plan(marker: Path, release: Path) -> dict[str, Any]:
    return {
        "plan_id": "leaky",
        "secrets": ["TOKEN"],
        "globals": {"max_concurrency": 4},
        "steps": [
            sh(
                "raw",
                RAW_PRINT,
                env={"T_SUB": "${TOKEN}"},
            ),
            {"id": "json", "command": PY, "args": ["-c", JSON_PRINT]},
            {"id": "split", "command": PY, "args": ["-c", SPLIT]},
            sh("producer", PRODUCE),
            sh(
                "consumer",
                CONSUME,
                depends_on=["producer"],
                env={
                    "GOT": "${steps.producer.outputs.tok}",
                    "GOT_MIXED": "${steps.producer.outputs.mixed}",
                    "GOT_PLAIN": "${steps.producer.outputs.plain}",
                },
            ),
            sh(
                "hold",
                HOLD,
                depends_on=["raw", "json", "split", "consumer"],
                env={"HOLD_MARKER": str(marker), "HOLD_RELEASE": str(release)},
            ),
        ],
    }


def with_script_arg(plan: dict[str, Any]) -> dict[str, Any]:
    """``raw`` also gets ``${TOKEN}`` as $1 (a secret on a command line: a warning)."""
    plan["steps"][0]["args"] += ["sh", "${TOKEN}"]
    return plan


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:
                found[str(path.relative_to(root))] = path.read_bytes()
            except FileNotFoundError:  # e.g. the WAL, checkpointed away meanwhile
                continue
    return found


@dataclass(frozen=True)
class LeakyRun:
    workdir: Path
    state: Path
    run_id: str
    plan: Path
    run: subprocess.CompletedProcess[str]
    #: The state dir's files while the run was still going (WAL and SHM present).
    during: dict[str, bytes]
    #: ... and after it ended.
    after: dict[str, bytes]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return planrun(*args, "--state-dir", self.state, cwd=self.workdir)


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> LeakyRun:
    """A run whose steps print the secrets every way they can, pass one through an
    output, and wait (the ``hold`` step) while the state dir is read mid-run."""
    workdir = tmp_path_factory.mktemp("leaky")
    state = workdir / "state"
    marker, release = workdir / "held", workdir / "release"
    plan = write_json(workdir / "leaky.json", with_script_arg(leaky_plan(marker, release)))
    run_id = "r-leaky"
    proc = subprocess.Popen(
        [*PLANRUN, "run", plan, "--secret", "EXTRA", "--run-id", run_id, "--state-dir", state],
        cwd=workdir,
        env=clean_env(**SECRETS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: marker.exists() or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, proc.communicate()
        during = read_tree(state)
        release.touch()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return LeakyRun(workdir, state, run_id, plan, result, during, read_tree(state))


def test_leaky_run_succeeds_and_the_consumer_got_the_real_value(leaky: LeakyRun) -> None:
    """The run succeeds: the steps got both secrets (environment and ${TOKEN}), and the
    consumer got the full real values through the producer's outputs (it compares them
    with its environment and would exit 1); what is stored is masked."""
    result = leaky.run
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # ${TOKEN} on a command line is allowed, with a warning.
    assert "secret 'TOKEN' is put on a command line" in result.stderr

    show = leaky.cli("show", leaky.run_id, "--json")
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    assert doc["run"]["secret_names"] == ["EXTRA", "TOKEN"]
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert all(s["state"] == "succeeded" for s in steps.values()), steps
    producer = steps["producer"]
    assert producer["outputs"] == {"tok": "***", "mixed": "before *** after", "plain": "visible"}
    assert sorted(producer["masked_outputs"]) == ["mixed", "tok"]


def test_no_file_under_the_state_dir_holds_a_secret(leaky: LeakyRun) -> None:
    """Every file under the state dir, read during the run (with runs.db-wal and
    runs.db-shm) and after it: no raw or JSON-escaped secret; the logs hold ***."""
    during, after = leaky.during, leaky.after
    run = f"runs/{leaky.run_id}"
    assert {"runs.db", "runs.db-wal", "runs.db-shm", f"{run}/events.jsonl"} <= set(during)
    logs = {f"{run}/logs/{s}.1.log" for s in ("raw", "json", "split", "producer", "consumer")}
    assert logs <= set(after), sorted(after)
    assert "runs.db" in after
    assert f"{run}/events.jsonl" in after
    for when, files in (("during", during), ("after", after)):
        for name, data in files.items():
            assert leaks(data) == [], (when, name)
    for name in logs - {f"{run}/logs/producer.1.log"}:  # the producer prints nothing
        assert b"***" in after[name], (name, after[name])
    # The masks are where the secrets were printed.
    raw_log = after[f"{run}/logs/raw.1.log"].decode()
    assert "raw: ***\n" in raw_log
    assert "substituted: ***\n" in raw_log
    assert "stderr: ***\n" in raw_log
    split_log = after[f"{run}/logs/split.1.log"].decode()
    assert split_log.count("split: *** end\n") == 2
    assert split_log.count('json split: "***"\n') == 2
    json_log = after[f"{run}/logs/json.1.log"].decode()
    assert '{"key": "***", "list": ["***"]}' in json_log
    assert "consumer got: ***" in after[f"{run}/logs/consumer.1.log"].decode()


@pytest.mark.parametrize(
    "command",
    [
        ["show", "{run}"],
        ["show", "{run}", "--json"],
        ["list"],
        ["list", "--json"],
        ["watch", "{run}", "--plain"],
        ["watch", "{run}", "--json"],
        ["logs", "{run}"],
        ["logs", "{run}", "raw"],
        ["logs", "{run}", "split"],
    ],
    ids=" ".join,
)
def test_observe_commands_never_print_a_secret(leaky: LeakyRun, command: list[str]) -> None:
    """show, list, watch and logs (text and JSON) print no raw or JSON-escaped secret."""
    args = [a.format(run=leaky.run_id) for a in command]
    result = leaky.cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert leaks(result.stdout) == []
    assert leaks(result.stderr) == []
    if command[0] == "logs":
        assert "***" in result.stdout
    if command[0] == "show" and "--json" not in command:
        assert "secrets   EXTRA TOKEN (values masked as ***)" in result.stdout
        assert "  producer.tok = '***' (held a secret)" in result.stdout
        assert "  producer.plain = 'visible'" in result.stdout
    if command == ["watch", "{run}", "--json"]:
        assert '"masked_outputs":["tok","mixed"]' in result.stdout


def test_run_output_never_prints_a_secret(leaky: LeakyRun) -> None:
    """`planrun run`'s own stdout and stderr hold no secret."""
    assert leaks(leaky.run.stdout) == []
    assert leaks(leaky.run.stderr) == []


def test_dry_run_masks_secrets(tmp_path: Path) -> None:
    """--dry-run shows ${TOKEN} (in args and env) as ***."""
    marker, release = tmp_path / "held", tmp_path / "release"
    plan = write_json(tmp_path / "leaky.json", with_script_arg(leaky_plan(marker, release)))
    result = planrun(
        "run", plan, "--dry-run", "--secret", "EXTRA", cwd=tmp_path, env=clean_env(**SECRETS)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert leaks(result.stdout) == []
    assert leaks(result.stderr) == []
    raw_line = next(x for x in result.stdout.splitlines() if x.startswith("  raw: "))
    assert shlex.split(raw_line)[-1] == "***"
    assert "env T_SUB='***'" in result.stdout
    assert list(tmp_path.iterdir()) == [plan]


# --- planrun's own messages -----------------------------------------------------------


def test_dry_run_masks_a_secret_with_a_single_quote(tmp_path: Path) -> None:
    """A secret with a quote in it is masked in --dry-run too: no shell word of the
    output holds it."""
    secret = "it's-a-s3cret"  # noqa: S105 - a test value
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "quote",
            "secrets": ["QTOKEN"],
            "steps": [sh("a", 'printf %s "$QTOKEN"', env={"COPY": "${QTOKEN}"})],
        },
    )
    result = planrun("run", plan, "--dry-run", cwd=tmp_path, env=clean_env(QTOKEN=secret))
    assert result.returncode == 0, result.stdout + result.stderr
    assert secret not in result.stdout
    for line in result.stdout.splitlines():
        assert not any(secret in word for word in shlex.split(line.replace(";", " "))), line


@pytest.mark.parametrize(
    ("step", "error"),
    [
        pytest.param(
            sh("a", 'printf \'%s=x\\n\' "$TOKEN" >> "$PLANRUN_OUTPUT"'),
            "invalid key",
            id="secret-as-output-key",
        ),
        pytest.param(
            {"id": "a", "command": "/nonexistent/${TOKEN}"},
            "command not found",
            id="secret-in-command-path",
        ),
    ],
)
def test_error_messages_never_reveal_a_secret(
    tmp_path: Path, step: dict[str, Any], error: str
) -> None:
    """A step that mistakenly writes ``$TOKEN=x`` to $PLANRUN_OUTPUT (or whose program
    path holds the secret) fails; the error printed and stored does not reveal the
    secret, raw, JSON-escaped or repr'd."""
    state = tmp_path / "state"
    plan = write_json(
        tmp_path / "plan.json", {"plan_id": "errleak", "secrets": ["TOKEN"], "steps": [step]}
    )
    env = clean_env(TOKEN=TOKEN)
    result = planrun("run", plan, "--run-id", "r-err", "--state-dir", state, cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert error in result.stdout
    forms = [*leak_forms(TOKEN), repr(TOKEN)[1:-1].encode()]
    outputs = {"run": result.stdout.encode(), **read_tree(state)}
    found = [(name, form) for name, data in outputs.items() for form in forms if form in data]
    assert found == [], sorted({name for name, _ in found})


# --- missing or clashing secrets ------------------------------------------------------


def _marker_plan(tmp_path: Path, **extra: Any) -> tuple[Path, Path]:
    marker = tmp_path / "started"
    plan = write_json(
        tmp_path / "plans" / "p.json",
        {
            "plan_id": "p",
            "steps": [{"id": "m", "command": "touch", "args": [str(marker)]}],
            **extra,
        },
    )
    return plan, marker


def _work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({}, "secret 'TOKEN' is not set", id="unset"),
        pytest.param({"TOKEN": ""}, "secret 'TOKEN' is empty", id="empty"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_missing_plan_secret_exits_2_naming_it(
    tmp_path: Path, env: dict[str, str], message: str, dry_run: bool
) -> None:
    """A plan secret absent from (or empty in) planrun's environment exits 2 with a
    message naming it and its JSON path; nothing is written or started."""
    plan, marker = _marker_plan(tmp_path, secrets=["TOKEN"])
    work = _work(tmp_path)
    base = clean_env()
    base.pop("TOKEN", None)
    args: list[str | Path] = ["run", plan, *(["--dry-run"] if dry_run else [])]
    result = planrun(*args, cwd=work, env={**base, **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "$.secrets[0]" in result.stderr
    assert message in result.stderr
    assert "export TOKEN=" in result.stderr
    assert list(work.iterdir()) == []
    assert not marker.exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({}, "--secret EXTRA: EXTRA is not set in the environment", id="unset"),
        pytest.param(
            {"EXTRA": ""}, "--secret EXTRA: EXTRA is empty in the environment", id="empty"
        ),
    ],
)
def test_secret_flag_of_an_unset_variable_exits_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """``--secret NAME`` for a variable that is not set (or empty) exits 2."""
    plan, marker = _marker_plan(tmp_path)
    work = _work(tmp_path)
    base = clean_env()
    base.pop("EXTRA", None)
    result = planrun("run", plan, "--secret", "EXTRA", cwd=work, env={**base, **env})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert list(work.iterdir()) == []
    assert not marker.exists()


@pytest.mark.parametrize(
    ("plan_fields", "args", "where"),
    [
        pytest.param(
            {"secrets": ["DUP"], "variables": {"DUP": "x"}}, [], "$.secrets[0]", id="plan-var"
        ),
        pytest.param({"secrets": ["DUP"]}, ["--var", "DUP=x"], "$.secrets[0]", id="var-flag"),
        pytest.param(
            {"variables": {"DUP": "x"}}, ["--secret", "DUP"], "--secret DUP", id="secret-flag"
        ),
    ],
)
def test_secret_named_like_a_variable_exits_2(
    tmp_path: Path, plan_fields: dict[str, Any], args: list[str], where: str
) -> None:
    """A secret with the name of a variable (plan variable, --var, or --secret against a
    plan variable) is a validation error: exit 2, nothing runs."""
    plan, marker = _marker_plan(tmp_path, **plan_fields)
    work = _work(tmp_path)
    result = planrun("run", plan, *args, cwd=work, env=clean_env(DUP="secret-value"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid plan" in result.stderr
    assert f"{where}: 'DUP' is both a secret and a variable" in result.stderr
    assert "secret-value" not in result.stderr + result.stdout
    assert list(work.iterdir()) == []
    assert not marker.exists()


def test_secret_named_like_a_builtin_exits_2(tmp_path: Path) -> None:
    """PLAN_DIR is a built-in variable: it cannot be a secret."""
    plan, marker = _marker_plan(tmp_path, secrets=["PLAN_DIR"])
    work = _work(tmp_path)
    result = planrun("run", plan, cwd=work, env=clean_env(PLAN_DIR="/x"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'PLAN_DIR' is both a secret and a variable" in result.stderr
    assert list(work.iterdir()) == []
    assert not marker.exists()


def test_validate_rejects_a_secret_named_like_a_variable(tmp_path: Path) -> None:
    """`planrun validate` (which needs no secret values) reports the clash too."""
    plan, _ = _marker_plan(tmp_path, secrets=["DUP"], variables={"DUP": "x"})
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'DUP' is both a secret and a variable" in result.stderr


def test_secret_flag_reaches_the_step(tmp_path: Path) -> None:
    """``--secret NAME`` alone (no plan declaration): the step gets the value in its
    environment and through ${NAME} in its env; the log shows ***."""
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "flag",
            "steps": [
                sh(
                    "a",
                    '[ "$COPY" = "pre-$EXTRA-post" ] || exit 1; printf "got %s\\n" "$COPY"',
                    env={"COPY": "pre-${EXTRA}-post"},
                )
            ],
        },
    )
    env = clean_env(EXTRA=EXTRA)
    result = planrun("run", plan, "--secret", "EXTRA", "--run-id", "r-flag", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    logs = planrun("logs", "r-flag", "a", cwd=tmp_path)
    assert logs.stdout == "got pre-***-post\n"
    assert leaks(logs.stdout) == []
    assert all(leaks(data) == [] for data in read_tree(tmp_path / ".planrun").values())


# --- file hygiene under umask 000 -----------------------------------------------------


def start_umask0(
    args: Sequence[str | os.PathLike[str]], cwd: Path, env: Mapping[str, str]
) -> subprocess.Popen[str]:
    """``python -m planrun ARGS`` started with umask 000."""
    return subprocess.Popen(
        ["sh", "-c", 'umask 000; exec "$@"', "sh", *PLANRUN, *map(str, args)],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> Iterator[tuple[Path, int, bool]]:
    """(path, permission bits, is a directory) for ``root`` and everything under it."""
    yield root, mode(root), True
    for path in sorted(root.rglob("*")):
        try:
            yield path, mode(path), path.is_dir()
        except FileNotFoundError:  # the WAL, checkpointed away meanwhile
            continue


@pytest.mark.parametrize("with_secret", [False, True], ids=["plain", "secret"])
def test_state_files_are_private_under_umask_000(tmp_path: Path, with_secret: bool) -> None:
    """With umask 000, a fresh state dir is still private: every directory 0700, every
    file 0600 (runs.db, its WAL and SHM, events.jsonl, logs), during the run and after.
    A run with secrets (output through a masking pipe) is no different."""
    state = tmp_path / "state"
    marker, release, report = tmp_path / "held", tmp_path / "release", tmp_path / "report"
    env = {"HOLD_MARKER": str(marker), "HOLD_RELEASE": str(release)}
    plan_doc: dict[str, Any] = {
        "plan_id": "umask",
        "steps": [
            sh(
                "work",
                f"umask > '{report}'; stat -c %a \"$(dirname \"$PLANRUN_OUTPUT\")\" >> '{report}'; "
                'echo k=v >> "$PLANRUN_OUTPUT"; echo working; echo oops >&2',
            ),
            sh("hold", HOLD, depends_on=["work"], env=env),
        ],
    }
    if with_secret:
        plan_doc["secrets"] = ["TOKEN"]
    plan = write_json(tmp_path / "plan.json", plan_doc)
    proc = start_umask0(
        ["run", plan, "--run-id", "r-umask", "--state-dir", state],
        tmp_path,
        clean_env(TOKEN=TOKEN),
    )
    try:
        assert wait_until(lambda: marker.exists() or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, proc.communicate()
        # The step really ran with umask 000; its outputs dir is private anyway (0300).
        assert report.read_text().split() == ["0000", "300"]

        run_dir = state / "runs" / "r-umask"
        for directory in (state, state / "runs", run_dir, run_dir / "logs"):
            assert mode(directory) == 0o700, directory
        files = [
            state / "runs.db",
            state / "runs.db-wal",
            state / "runs.db-shm",
            run_dir / "events.jsonl",
            run_dir / "logs" / "work.1.log",
            run_dir / "logs" / "hold.1.log",
        ]
        for path in files:
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
        during = list(modes(state))
        release.touch()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stdout + stderr
    for when, entries in (("during", during), ("after", list(modes(state)))):
        for path, bits, is_dir in entries:
            assert bits == (0o700 if is_dir else 0o600), (when, path, oct(bits))

    # Reading the run under umask 000 creates nothing looser either.
    show = start_umask0(["show", "r-umask", "--state-dir", state], tmp_path, clean_env())
    out, err = show.communicate(timeout=30)
    assert show.returncode == 0, out + err
    for path, bits, is_dir in modes(state):
        assert bits == (0o700 if is_dir else 0o600), ("after show", path, oct(bits))
