"""Sub-plans (``"uses": "child.json"``) through the real CLI: the child run is linked to
its parent step, gets its ``with`` values and only the secrets it is given, and dies
with its parent (Ctrl-C or ``kill -9``) without leaving a process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from ._cli import PLANRUN, clean_env, planrun, query, read_events, sh, wait_until, write_json

EXIT_CANCELLED = 130
SECRETS = {"TOKEN": "hunter2-secret"}


def _alive(pid: int) -> bool:
    """Is ``pid`` a live (non-zombie) process?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _run(tmp_path: Path, plan: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return planrun(
        "run", plan, "--state-dir", tmp_path / "state", "--plain", *args, cwd=tmp_path, env=env
    )


def _json(tmp_path: Path, *args: str) -> Any:
    result = planrun(*args, "--json", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_uses_runs_the_child_with_its_values_and_links_both_runs(tmp_path: Path) -> None:
    """A parent passes a variable, a literal and a step output in ``with``; the child's
    step sees them; ``list`` and ``show`` (text and JSON) show the link both ways."""
    write_json(
        tmp_path / "plans" / "restore.json",
        {
            "plan_id": "restore",
            "variables": {"DOC_ID": None, "WHERE": None, "MODE": "fast"},
            "steps": [sh("restore", 'echo "$DOC_ID $WHERE $MODE" > "$PLAN_DIR/../seen-$DOC_ID"')],
        },
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "variables": {"TARGET": "prod"},
            "steps": [
                sh("list", 'echo "FIRST=doc-1" >> "$PLANRUN_OUTPUT"'),
                {
                    "id": "one",
                    "uses": "plans/restore.json",
                    "with": {"DOC_ID": "${steps.list.outputs.FIRST}", "WHERE": "${TARGET}"},
                    "depends_on": ["list"],
                },
                {
                    "id": "two",
                    "uses": "plans/restore.json",
                    "with": {"DOC_ID": "doc-2", "WHERE": "lab", "MODE": "slow"},
                },
            ],
        },
    )
    result = _run(tmp_path, plan, "--run-id", "p1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "seen-doc-1").read_text() == "doc-1 prod fast\n"
    assert (tmp_path / "seen-doc-2").read_text() == "doc-2 lab slow\n"
    assert "one running (attempt 1/1, child run p1.one.1)" in result.stdout

    runs = {r["run_id"]: r for r in _json(tmp_path, "list")}
    assert set(runs) == {"p1", "p1.one.1", "p1.two.1"}
    assert runs["p1"]["parent_run_id"] is None
    assert (runs["p1.one.1"]["parent_run_id"], runs["p1.one.1"]["parent_step_id"]) == ("p1", "one")
    assert runs["p1.two.1"]["state"] == "succeeded"
    assert runs["p1.one.1"]["variables"]["DOC_ID"] == "doc-1"

    shown = _json(tmp_path, "show", "p1")
    by_step = {s["step_id"]: s for s in shown["steps"]}
    assert by_step["one"]["attempts"][0]["child_run_id"] == "p1.one.1"
    assert by_step["list"]["attempts"][0]["child_run_id"] is None

    listed = planrun("list", "--state-dir", tmp_path / "state", cwd=tmp_path)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("p1.two.1 "))
    assert row.rstrip().endswith("p1/two"), listed.stdout
    parent_text = planrun("show", "p1", "--state-dir", tmp_path / "state", cwd=tmp_path).stdout
    assert "child run p1.one.1" in parent_text
    child_text = planrun("show", "p1.one.1", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert "parent    run p1, step one" in child_text.stdout


def test_a_for_each_step_runs_one_child_run_per_item(tmp_path: Path) -> None:
    """The issue's fan-out: ``for_each`` over a producer's items with ``"uses"`` and
    ``"with": {"DOC_ID": "${item}"}``: one linked child run per item, each seeing its
    item."""
    write_json(
        tmp_path / "restore.json",
        {
            "plan_id": "restore",
            "variables": {"DOC_ID": None},
            "steps": [sh("restore", 'echo "$DOC_ID" > "$PLAN_DIR/seen-$DOC_ID"')],
        },
    )
    plan = write_json(
        tmp_path / "fan.json",
        {
            "plan_id": "fan",
            "steps": [
                sh("list", 'echo \'ITEMS=["a", "b", "c"]\' >> "$PLANRUN_OUTPUT"'),
                {
                    "id": "restore",
                    "for_each": "${steps.list.outputs.ITEMS}",
                    "depends_on": ["list"],
                    "uses": "restore.json",
                    "with": {"DOC_ID": "${item}"},
                },
            ],
        },
    )
    result = _run(tmp_path, plan, "--run-id", "fe")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(tmp_path / f"seen-{x}").read_text() for x in "abc"] == ["a\n", "b\n", "c\n"]
    children = [r for r in _json(tmp_path, "list") if r["parent_run_id"] == "fe"]
    assert sorted(r["parent_step_id"] for r in children) == [
        "restore[0:a]",
        "restore[1:b]",
        "restore[2:c]",
    ]
    assert all(r["state"] == "succeeded" for r in children)


def test_a_failed_child_fails_the_step_and_a_retry_is_a_new_child_run(tmp_path: Path) -> None:
    """The child's result decides the step: a failing child fails it with the child's
    id in the reason; each retry is a child run of its own; resume reruns it as a
    new child run."""
    flag = tmp_path / "pass"
    write_json(
        tmp_path / "child.json",
        {"plan_id": "child", "steps": [sh("check", f'test -e "{flag}"')]},
    )
    plan = write_json(
        tmp_path / "parent.json",
        {"plan_id": "parent", "steps": [{"id": "sub", "uses": "child.json", "retries": 1}]},
    )
    result = _run(tmp_path, plan, "--run-id", "f1")
    assert result.returncode == 1, result.stdout + result.stderr
    shown = _json(tmp_path, "show", "f1")
    sub = shown["steps"][0]
    assert sub["state"] == "failed"
    assert [a["child_run_id"] for a in sub["attempts"]] == ["f1.sub.1", "f1.sub.2"]
    assert sub["reason"].startswith("child run f1.sub.2 failed: "), sub["reason"]
    assert _json(tmp_path, "show", "f1.sub.1")["run"]["state"] == "failed"

    flag.touch()
    resumed = planrun("resume", "f1", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    sub = _json(tmp_path, "show", "f1")["steps"][0]
    assert sub["state"] == "succeeded"
    assert sub["attempts"][-1]["child_run_id"] == "f1.sub.3"
    assert _json(tmp_path, "show", "f1.sub.3")["run"]["parent_run_id"] == "f1"


def test_a_secret_reaches_the_child_only_when_named(tmp_path: Path) -> None:
    """The parent's secret is seen by the child's step when the ``uses`` step names it
    in ``secrets``, and not at all (not even in the inherited environment) otherwise;
    the named one is masked in the child's log."""
    write_json(
        tmp_path / "named.json",
        {
            "plan_id": "named",
            "secrets": ["TOKEN"],
            "steps": [
                sh("use", f'echo "$${{TOKEN:-unset}}" > "{tmp_path}/named.txt"; echo $TOKEN')
            ],
        },
    )
    write_json(
        tmp_path / "unnamed.json",
        {
            "plan_id": "unnamed",
            "steps": [sh("use", f'echo "$${{TOKEN:-unset}}" > "{tmp_path}/unnamed.txt"')],
        },
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "secrets": ["TOKEN"],
            "steps": [
                {"id": "named", "uses": "named.json", "secrets": ["TOKEN"]},
                {"id": "unnamed", "uses": "unnamed.json"},
            ],
        },
    )
    result = _run(tmp_path, plan, "--run-id", "s1", env=clean_env(**SECRETS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "named.txt").read_text() == "hunter2-secret\n"
    assert (tmp_path / "unnamed.txt").read_text() == "unset\n"
    log = tmp_path / "state" / "runs" / "s1.named.1" / "logs" / "use.1.log"
    assert log.read_text() == "***\n"


def test_a_child_that_needs_an_unpassed_secret_is_invalid(tmp_path: Path) -> None:
    """A child plan that declares a secret the ``uses`` step does not pass: exit 2
    before anything runs, naming the step, the child file and the secret."""
    write_json(
        tmp_path / "child.json",
        {"plan_id": "child", "secrets": ["TOKEN"], "steps": [{"id": "a", "command": "true"}]},
    )
    plan = write_json(
        tmp_path / "parent.json",
        {"plan_id": "parent", "secrets": ["TOKEN"], "steps": [{"id": "s", "uses": "child.json"}]},
    )
    result = _run(tmp_path, plan, env=clean_env(**SECRETS))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "$.steps[0].secrets (step 's'): child.json needs secret 'TOKEN'" in result.stderr
    assert not (tmp_path / "state" / "runs").exists() or not any(
        (tmp_path / "state" / "runs").iterdir()
    )


def test_a_cycle_of_uses_is_exit_2_naming_the_chain(tmp_path: Path) -> None:
    """a.json uses b.json uses a.json: ``run`` and ``validate`` exit 2 and name the
    chain; nothing runs."""
    write_json(tmp_path / "a.json", {"plan_id": "a", "steps": [{"id": "to-b", "uses": "b.json"}]})
    write_json(tmp_path / "b.json", {"plan_id": "b", "steps": [{"id": "to-a", "uses": "a.json"}]})
    for command in (["run", "--state-dir", str(tmp_path / "state")], ["validate"]):
        result = planrun(*command, tmp_path / "a.json", cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "uses cycle: a.json -> b.json -> a.json" in result.stderr
    assert not (tmp_path / "state" / "runs").exists()


def test_with_keys_must_be_variables_of_the_child(tmp_path: Path) -> None:
    """A ``with`` key the child does not declare, and a required child variable not in
    ``with``: exit 2, each located at the parent step."""
    write_json(
        tmp_path / "child.json",
        {"plan_id": "child", "variables": {"DOC": None}, "steps": [{"id": "a", "command": "true"}]},
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "steps": [
                {"id": "typo", "uses": "child.json", "with": {"DOC": "1", "DCO": "2"}},
                {"id": "missing", "uses": "child.json"},
            ],
        },
    )
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "$.steps[0].with.DCO (step 'typo'): child.json: variable 'DCO' is not declared" in (
        result.stderr
    )
    assert "$.steps[1].uses (step 'missing'): child.json: $.variables.DOC:" in result.stderr


def _start_parent(tmp_path: Path, run_id: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a parent whose ``uses`` step's child runs ``sleep 30`` (its pid in a file)."""
    pid_file = tmp_path / "child-step.pid"
    write_json(
        tmp_path / "child.json",
        {"plan_id": "sleeper", "steps": [sh("nap", f'echo $$ > "{pid_file}"; exec sleep 30')]},
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "globals": {"kill_grace_sec": 1},
            "steps": [{"id": "sub", "uses": "child.json"}],
        },
    )
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(plan), "--state-dir", str(tmp_path / "state"), "--run-id", run_id],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "", 20)
    return proc, pid_file


def _states(tmp_path: Path) -> dict[str, str]:
    rows = query(tmp_path / "state" / "runs.db", "SELECT run_id, state FROM runs")
    return {str(run_id): str(state) for run_id, state in rows}


def test_sigint_of_the_parent_cancels_the_child_run_and_its_process(tmp_path: Path) -> None:
    """Ctrl-C of a parent whose child run is running: exit 130, the child's process is
    gone, and both runs are recorded ``cancelled``."""
    run_id = f"int-{uuid.uuid4().hex[:6]}"
    proc, pid_file = _start_parent(tmp_path, run_id)
    pid = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == EXIT_CANCELLED
        assert wait_until(lambda: not _alive(pid), 10), f"child step {pid} still alive"
        assert _states(tmp_path) == {run_id: "cancelled", f"{run_id}.sub.1": "cancelled"}
        child_events = read_events(tmp_path / "state", f"{run_id}.sub.1")
        assert child_events[-1]["type"] == "run_finished"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_sigkill_of_the_parent_leaves_no_child_process(tmp_path: Path) -> None:
    """``kill -9`` of the parent planrun while its child run's step runs: the watchdog
    kills the child's process, and the next command marks both runs crashed."""
    run_id = f"kill-{uuid.uuid4().hex[:6]}"
    proc, pid_file = _start_parent(tmp_path, run_id)
    pid = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        assert wait_until(lambda: not _alive(pid), 10), (
            f"child step {pid} alive {time.monotonic() - killed:.1f}s after kill -9"
        )
        runs = {r["run_id"]: r["state"] for r in _json(tmp_path, "list")}
        assert runs == {run_id: "crashed", f"{run_id}.sub.1": "crashed"}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_cancel_command_of_the_parent_cancels_the_child(tmp_path: Path) -> None:
    """``planrun cancel PARENT``: the child's process is stopped and both runs end
    ``cancelled``. ``planrun cancel CHILD`` is refused, naming the parent to cancel
    (the child runs in the parent's process: a signal would cancel the parent)."""
    run_id = f"cancel-{uuid.uuid4().hex[:6]}"
    proc, pid_file = _start_parent(tmp_path, run_id)
    pid = int(pid_file.read_text())
    try:
        child = planrun(
            "cancel", f"{run_id}.sub.1", "--state-dir", tmp_path / "state", cwd=tmp_path
        )
        assert child.returncode != 0
        assert f"is a child run of run {run_id} (step sub); cancel run {run_id}" in child.stderr
        assert _alive(pid)
        result = planrun("cancel", run_id, "--state-dir", tmp_path / "state", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert proc.wait(timeout=20) == EXIT_CANCELLED
        assert not _alive(pid)
        assert _states(tmp_path) == {run_id: "cancelled", f"{run_id}.sub.1": "cancelled"}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_with_value_bound_to_a_secret_output_is_refused(tmp_path: Path) -> None:
    """A ``with`` value bound from an output that holds a parent secret would be stored
    in clear as the child's variable: the attempt fails with the reason, no child run
    is made and the secret is nowhere in the store."""
    write_json(
        tmp_path / "child.json",
        {"plan_id": "child", "variables": {"V": None}, "steps": [{"id": "a", "command": "true"}]},
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "secrets": ["TOKEN"],
            "steps": [
                sh("p", 'echo "K=$TOKEN" >> "$PLANRUN_OUTPUT"'),
                {
                    "id": "s",
                    "uses": "child.json",
                    "with": {"V": "${steps.p.outputs.K}"},
                    "depends_on": ["p"],
                },
            ],
        },
    )
    result = _run(tmp_path, plan, "--run-id", "leak", env=clean_env(**SECRETS))
    assert result.returncode == 1, result.stdout + result.stderr
    step = _json(tmp_path, "show", "leak")["steps"][1]
    assert step["reason"].startswith("with.V holds a secret of this run"), step
    assert [r["run_id"] for r in _json(tmp_path, "list")] == ["leak"]
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert SECRETS["TOKEN"].encode() not in path.read_bytes(), path


def test_a_child_runs_output_lines_name_the_parent_step(tmp_path: Path) -> None:
    """``--output prefixed``: a child run's step output is prefixed ``PARENT_STEP/STEP``,
    so the lines of two children running the same plan can be told apart."""
    write_json(
        tmp_path / "child.json",
        {
            "plan_id": "child",
            "variables": {"WHO": None},
            "steps": [sh("hello", 'echo "hello from $WHO"')],
        },
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "steps": [
                {"id": "a", "uses": "child.json", "with": {"WHO": "a"}},
                {"id": "b", "uses": "child.json", "with": {"WHO": "b"}},
            ],
        },
    )
    result = _run(tmp_path, plan, "--output", "prefixed")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split("|", 1) for line in result.stdout.splitlines() if "| hello" in line]
    assert sorted((who.strip(), text.strip()) for who, text in lines) == [
        ("a/hello", "hello from a"),
        ("b/hello", "hello from b"),
    ]


def test_a_child_whose_plan_names_the_parents_lock_runs_under_the_parents_hold(
    tmp_path: Path,
) -> None:
    """Parent and child both take ``globals.lock: deploy`` (a child plan that is also
    run on its own): the child runs under the parent's hold instead of conflicting
    with it (``flock`` is per open file: the parent's hold excluded its own child)."""
    write_json(
        tmp_path / "child.json",
        {
            "plan_id": "child",
            "globals": {"lock": "deploy-${ENV}"},
            "variables": {"ENV": "prod"},
            "steps": [sh("work", 'echo "$ENV" > "$PLAN_DIR/child-ran"')],
        },
    )
    plan = write_json(
        tmp_path / "parent.json",
        {
            "plan_id": "parent",
            "globals": {"lock": "deploy-prod"},
            "steps": [{"id": "sub", "uses": "child.json"}],
        },
    )
    result = _run(tmp_path, plan, "--run-id", "l1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "child-ran").read_text() == "prod\n"
    assert _json(tmp_path, "show", "l1.sub.1")["run"]["state"] == "succeeded"
    kinds = [e["type"] for e in read_events(tmp_path / "state", "l1.sub.1")]
    assert "lock_acquired" not in kinds  # the parent's hold, not a second one
