"""Dynamic fan-out through the real CLI: ``"for_each": "${steps.list.outputs.ITEMS}"``
runs one instance per item of the JSON array the producer wrote, each a real process;
a dependent waits for all of them; a resume re-expands from the recorded items (the
producer does not run again) and reruns only the instances that failed. Every step
appends ``<step id> <attempt>`` to a calls file: that is how the tests tell "reused"
from "ran again"."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ._cli import (
    PLANRUN,
    clean_env,
    planrun,
    read_events,
    sh,
    show_run,
    sigkill_leaves_no_step_alive,
    wait_until,
    write_json,
)

RECORD = 'echo "$PLANRUN_STEP_ID $PLANRUN_ATTEMPT" >> "$CALLS"; '
EXIT_FAILED = 1
EXIT_INVALID = 2


def _sh(step_id: str, script: str, *args: str, **fields: Any) -> dict[str, Any]:
    step = sh(step_id, RECORD + script, **fields)
    step["args"] = [*step["args"], *args]
    return step


def _producer(items: Any) -> dict[str, Any]:
    text = items if isinstance(items, str) else json.dumps(items)
    return _sh("list", 'printf "ITEMS=%s\\n" "$0" >> "$PLANRUN_OUTPUT"', text)


def _plan(tmp_path: Path, steps: list[dict[str, Any]]) -> Path:
    env = {"CALLS": str(tmp_path / "calls.txt"), "WORK": str(tmp_path)}
    return write_json(
        tmp_path / "plan.json", {"plan_id": "fanout", "globals": {"env": env}, "steps": steps}
    )


def _run(tmp_path: Path, plan: Path, *args: str) -> Any:
    return planrun(
        "run",
        plan,
        "--run-id",
        "r1",
        "--state-dir",
        tmp_path / "state",
        "--plain",
        *args,
        cwd=tmp_path,
    )


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls.txt"
    return path.read_text().splitlines() if path.exists() else []


def _states(doc: dict[str, Any]) -> dict[str, str]:
    return {s["step_id"]: s["state"] for s in doc["steps"]}


def _process(**fields: Any) -> dict[str, Any]:
    """``process``: one instance per item, each appending its item to ``seen``."""
    step = _sh(
        "process",
        'echo "$0" >> "$WORK/seen"; test ! -e "$WORK/fail-$0"',
        "${item}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
        **fields,
    )
    return step


def test_three_items_run_three_instances_and_the_dependent_waits(tmp_path: Path) -> None:
    """Three items: three instances with ``${item}`` substituted, stable ids, and the
    step after the fan-out starts only when all three have ended."""
    after = _sh("after", 'cat "$WORK/seen" > "$WORK/seen-by-after"', depends_on=["process"])
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), _process(), after])
    result = _run(tmp_path, plan)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted((tmp_path / "seen").read_text().split()) == ["a", "b", "c"]
    assert sorted((tmp_path / "seen-by-after").read_text().split()) == ["a", "b", "c"]
    doc = show_run(tmp_path, "r1")
    assert _states(doc) == {
        "list": "succeeded",
        "process": "succeeded",
        "process[0:a]": "succeeded",
        "process[1:b]": "succeeded",
        "process[2:c]": "succeeded",
        "after": "succeeded",
    }
    assert [s["step_id"] for s in doc["steps"]][1:5] == [
        "process",
        "process[0:a]",
        "process[1:b]",
        "process[2:c]",
    ]
    expanded = [e for e in read_events(tmp_path / "state", "r1") if e["type"] == "steps_expanded"]
    assert [(e["step_id"], e["items"]) for e in expanded] == [("process", ["a", "b", "c"])]
    shown = planrun("show", "r1", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert "process[1:b]" in shown.stdout


def test_object_items_give_their_keys(tmp_path: Path) -> None:
    """``${item.KEY}`` is the key's value of an object item; ``${item}`` the compact JSON."""
    items = [{"name": "x y", "n": 1}, {"name": "z", "n": 2}]
    step = _sh(
        "process",
        'printf "%s|%s|%s\\n" "$0" "$1" "$2" >> "$WORK/seen"',
        "${item.name}",
        "${item.n}",
        "${item}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
    )
    result = _run(tmp_path, _plan(tmp_path, [_producer(items), step]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted((tmp_path / "seen").read_text().splitlines()) == [
        'x y|1|{"name":"x y","n":1}',
        'z|2|{"name":"z","n":2}',
    ]
    assert set(_states(show_run(tmp_path, "r1"))) >= {"process[0:x-y]", "process[1:z]"}


def test_a_missing_key_fails_that_instance_only(tmp_path: Path) -> None:
    """An object item without the key a step uses fails that instance, saying so; the
    other instances run."""
    step = _sh(
        "process",
        'echo "$0" >> "$WORK/seen"',
        "${item.name}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
        on_failure="continue",
    )
    items = [{"name": "a"}, {"other": 1}]
    result = _run(tmp_path, _plan(tmp_path, [_producer(items), step]))
    assert result.returncode == EXIT_FAILED
    doc = show_run(tmp_path, "r1")
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert steps["process[0:a]"]["state"] == "succeeded"
    bad = steps["process[1:1]"]
    assert bad["state"] == "failed"
    assert "has no key 'name'" in bad["reason"]
    assert steps["process"]["reason"] == "1 of 2 instances failed"
    assert (tmp_path / "seen").read_text().split() == ["a"]


def test_not_an_array_fails_the_step_clearly(tmp_path: Path) -> None:
    """Output that is not a JSON array fails the for_each step with a reason naming the
    producer's output; no instance runs and its dependent is not run."""
    after = _sh("after", "true", depends_on=["process"])
    plan = _plan(tmp_path, [_producer('{"a": 1}'), _process(), after])
    result = _run(tmp_path, plan)
    assert result.returncode == EXIT_FAILED
    doc = show_run(tmp_path, "r1")
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert steps["process"]["state"] == "failed"
    assert steps["process"]["reason"] == (
        "for_each: output 'ITEMS' of step 'list' is an object, not a JSON array such as "
        '["a", "b"]'
    )
    assert steps["after"]["state"] != "succeeded"
    assert _calls(tmp_path) == ["list 1"]


def test_more_than_max_items_fails_the_step(tmp_path: Path) -> None:
    """``max_items`` bounds the expansion: one more item fails the step, saying so."""
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), _process(max_items=2)])
    result = _run(tmp_path, plan)
    assert result.returncode == EXIT_FAILED
    steps = {s["step_id"]: s for s in show_run(tmp_path, "r1")["steps"]}
    assert "has 3 items, more than max_items (2)" in steps["process"]["reason"]


def test_no_items_succeed_with_a_reason(tmp_path: Path) -> None:
    """An empty array: the step succeeds ("no items") and its dependent runs."""
    after = _sh("after", "true", depends_on=["process"])
    result = _run(tmp_path, _plan(tmp_path, [_producer([]), _process(), after]))
    assert result.returncode == 0, result.stdout + result.stderr
    steps = {s["step_id"]: s for s in show_run(tmp_path, "r1")["steps"]}
    assert (steps["process"]["state"], steps["process"]["reason"]) == ("succeeded", "no items")
    assert steps["after"]["state"] == "succeeded"


def test_resume_reruns_only_the_failed_instance_not_the_producer(tmp_path: Path) -> None:
    """One of three instances fails; after the cause is fixed, ``resume`` re-expands from
    the recorded items: the producer does not run again, the two that succeeded are
    reused, the failed one runs again, and so does the step after the fan-out."""
    (tmp_path / "fail-b").touch()
    after = _sh("after", "true", depends_on=["process"])
    # continue: the other instances and `after` run too (an abort would cancel them).
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), _process(on_failure="continue"), after])
    first = _run(tmp_path, plan)
    assert first.returncode == EXIT_FAILED
    assert _states(show_run(tmp_path, "r1"))["process[1:b]"] == "failed"
    before = _calls(tmp_path)
    assert before.count("list 1") == 1
    (tmp_path / "fail-b").unlink()
    # The producer would now write other items: the recorded ones must be used.
    plan = _plan(tmp_path, [_producer(["x", "y"]), _process(on_failure="continue"), after])
    result = planrun(
        "resume", "r1", "--state-dir", tmp_path / "state", "--allow-changed", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = _calls(tmp_path)[len(before) :]
    assert sorted(again) == ["after 2", "process[1:b] 2"]
    doc = show_run(tmp_path, "r1")
    assert _states(doc) == {
        "list": "succeeded",
        "process": "succeeded",
        "process[0:a]": "succeeded",
        "process[1:b]": "succeeded",
        "process[2:c]": "succeeded",
        "after": "succeeded",
    }


def test_resume_only_an_instance(tmp_path: Path) -> None:
    """``--only`` takes an instance id: just that instance runs again."""
    (tmp_path / "fail-b").touch()
    (tmp_path / "fail-c").touch()
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), _process(on_failure="continue")])
    assert _run(tmp_path, plan).returncode == EXIT_FAILED
    before = _calls(tmp_path)
    (tmp_path / "fail-b").unlink()
    result = planrun(
        "resume",
        "r1",
        "--only",
        "process[1:b]",
        "--state-dir",
        tmp_path / "state",
        cwd=tmp_path,
    )
    assert _calls(tmp_path)[len(before) :] == ["process[1:b] 2"]
    states = _states(show_run(tmp_path, "r1"))
    assert (states["process[1:b]"], states["process[2:c]"]) == ("succeeded", "failed")
    assert result.returncode == EXIT_FAILED  # process[2:c] is still failed
    unknown = planrun(
        "resume",
        "r1",
        "--only",
        "process[9:z]",
        "--state-dir",
        tmp_path / "state",
        cwd=tmp_path,
    )
    assert unknown.returncode == EXIT_INVALID
    assert "made no such instance" in unknown.stderr


def test_item_outside_a_for_each_step_is_rejected(tmp_path: Path) -> None:
    """``${item}`` in a step without for_each, and a for_each naming a step that is not
    an ancestor, are validation errors with the step's location."""
    bad = _sh("other", "true", "${item}")
    stray = _sh("process", "true", "${item}", for_each="${steps.list.outputs.ITEMS}")
    plan = _plan(tmp_path, [_producer(["a"]), bad, stray])
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    text = result.stdout + result.stderr
    assert "$.steps[1].args[2] (step 'other'): '${item}' is used in a step without" in text
    assert "$.steps[2].for_each (step 'process')" in text
    assert "is not an ancestor of 'process'" in text


def test_a_known_for_each_value_is_checked_before_the_run(tmp_path: Path) -> None:
    """A for_each from a variable is checked at validation: not an array, exit 2."""
    step = _sh("process", "true", "${item}", for_each="${ITEMS}")
    plan = write_json(
        tmp_path / "plan.json",
        {"plan_id": "v", "variables": {"ITEMS": "[1, 2"}, "steps": [step]},
    )
    result = planrun("run", plan, "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == EXIT_INVALID
    assert "$.steps[0].for_each (step 'process'): for_each: variable 'ITEMS' is not valid JSON" in (
        result.stdout + result.stderr
    )
    ok = planrun(
        "run",
        plan,
        "--var",
        'ITEMS=["p", "q"]',
        "--state-dir",
        tmp_path / "state",
        "--plain",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "process[1:q]" in ok.stdout


def test_thousand_items_measured(tmp_path: Path) -> None:
    """1,000 instances of ``true`` all run (the time is printed, not asserted)."""
    items = [f"i{n}" for n in range(1000)]
    step = {
        "id": "process",
        "command": "true",
        "args": ["${item}"],
        "depends_on": ["list"],
        "for_each": "${steps.list.outputs.ITEMS}",
    }
    plan = _plan(tmp_path, [_producer(items), step])
    begin = time.monotonic()
    result = _run(tmp_path, plan, "--output", "quiet")
    took = time.monotonic() - begin
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    print(f"\n1,000 for_each instances of true: {took:.2f}s (CLI start to end)")
    doc = show_run(tmp_path, "r1")
    assert sum(1 for s in doc["steps"] if s["step_id"].startswith("process[")) == 1000


def test_kill_9_during_instances_leaves_nothing_and_resume_completes(tmp_path: Path) -> None:
    """kill -9 of planrun while instances run: no instance process survives (the
    watchdog), the run is crashed, and ``resume`` reruns only the unfinished instances
    from the recorded items, not the producer nor the instance that had finished."""
    hang = (
        'if [ "$0" = b ] && [ "$PLANRUN_ATTEMPT" = 1 ]; then '
        'touch "$WORK/b-started"; sleep 1000; fi'
    )
    step = _sh(
        "process",
        hang,
        "${item}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
    )
    plan = _plan(tmp_path, [_producer(["a", "b"]), step])
    with (tmp_path / "out.txt").open("wb") as out:
        proc = subprocess.Popen(
            [*PLANRUN, "run", plan, "--state-dir", tmp_path / "state", "--run-id", "r1", "--plain"],
            cwd=tmp_path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert wait_until(
        lambda: (tmp_path / "b-started").exists() and "process[0:a] 1" in _calls(tmp_path), 30
    ), (tmp_path / "out.txt").read_text()
    assert wait_until(lambda: _states(show_run(tmp_path, "r1"))["process[0:a]"] == "succeeded", 30)
    sigkill_leaves_no_step_alive(proc, "r1")
    states = _states(show_run(tmp_path, "r1"))
    assert states["process[1:b]"] == "crashed"
    before = _calls(tmp_path)
    result = planrun("resume", "r1", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _calls(tmp_path)[len(before) :] == ["process[1:b] 2"]
    assert set(_states(show_run(tmp_path, "r1")).values()) == {"succeeded"}


SECRET = "s3cret-item-value"  # noqa: S105 - a test secret


def test_a_secret_item_stays_out_of_ids_and_the_store(tmp_path: Path) -> None:
    """An item holding a secret: its instance gets the value, but its id is the index
    alone and neither the store nor the events hold the secret; a resume cannot reuse
    the masked items, so the producer runs again."""
    (tmp_path / "fail-plain").touch()
    producer = _sh(
        "list", 'printf "ITEMS=[\\"%s\\", \\"plain\\"]\\n" "$TOKEN" >> "$PLANRUN_OUTPUT"'
    )
    plan = write_json(
        tmp_path / "plan.json",
        {
            "plan_id": "fanout",
            "secrets": ["TOKEN"],
            "globals": {"env": {"CALLS": str(tmp_path / "calls.txt"), "WORK": str(tmp_path)}},
            "steps": [producer, _process(on_failure="continue")],
        },
    )
    env = clean_env(TOKEN=SECRET)
    first = planrun(
        "run",
        plan,
        "--run-id",
        "r1",
        "--state-dir",
        tmp_path / "state",
        "--plain",
        cwd=tmp_path,
        env=env,
    )
    assert first.returncode == EXIT_FAILED, first.stdout + first.stderr
    assert sorted((tmp_path / "seen").read_text().split()) == ["plain", SECRET]
    assert set(_states(show_run(tmp_path, "r1"))) == {
        "list",
        "process",
        "process[0]",
        "process[1:plain]",
    }
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in first.stdout + first.stderr
    (tmp_path / "fail-plain").unlink()
    result = planrun("resume", "r1", "--state-dir", tmp_path / "state", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "list 2" in _calls(tmp_path)


def test_max_parallel_and_fail_fast_apply_to_instances(tmp_path: Path) -> None:
    """``max_parallel: 1`` runs the instances one at a time (each start follows the
    previous end); ``fail_fast`` cancels the siblings of a failed instance."""
    one_at_a_time = _sh(
        "process",
        'echo "start $0" >> "$WORK/order"; sleep 0.2; echo "end $0" >> "$WORK/order"',
        "${item}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
        max_parallel=1,
    )
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), one_at_a_time])
    result = _run(tmp_path, plan)
    assert result.returncode == 0, result.stdout + result.stderr
    order = (tmp_path / "order").read_text().split("\n")[:-1]
    assert [line.split()[0] for line in order] == ["start", "end"] * 3
    fast = _sh(
        "process",
        'if [ "$0" = a ]; then exit 1; fi; sleep 1000',
        "${item}",
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
        fail_fast=True,
        on_failure="continue",
    )
    plan = _plan(tmp_path, [_producer(["a", "b", "c"]), fast])
    result = planrun(
        "run",
        plan,
        "--run-id",
        "r2",
        "--state-dir",
        tmp_path / "state",
        "--plain",
        "--max-concurrency",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == EXIT_FAILED, result.stdout + result.stderr
    steps = {s["step_id"]: s for s in show_run(tmp_path, "r2")["steps"]}
    assert steps["process[0:a]"]["state"] == "failed"
    for sibling in ("process[1:b]", "process[2:c]"):
        assert steps[sibling]["state"] == "cancelled"
        assert steps[sibling]["reason"] == "fail_fast: 'process[0:a]' failed"
    assert steps["process"]["reason"] == "1 of 3 instances failed"
