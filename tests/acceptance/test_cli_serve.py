"""``planrun serve`` and ``planrun triggers`` through the real CLI: real processes, a
real git repository, real files watched (issue 18). Intervals are 1 s and waits are
bounded generously; nothing asserts on how long something took."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._cli import PLANRUN, clean_env, own_pids, planrun, query, sh, wait_until, write_json

SERVE_WAIT = 30.0


@contextmanager
def serving(
    tmp_path: Path, *targets: Path, state: Path, extra: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A ``planrun serve`` process (its log in a file), stopped with SIGTERM at the end."""
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*.log')))}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*PLANRUN, "serve", *map(str, targets), "--state-dir", str(state), *extra],
            cwd=tmp_path,
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(SERVE_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert "Traceback" not in log.read_text(), log.read_text()


def runs(state: Path) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(run id, state, trigger) of every run, oldest first ([] before the store exists)."""
    if not (state / "runs.db").exists():
        return []
    try:
        rows = query(state / "runs.db", "SELECT run_id, state, trigger FROM runs ORDER BY run_id")
    except sqlite3.OperationalError:  # serve is creating the store
        return []
    return [(r, s, json.loads(t) if t else None) for r, s, t in rows]


def finished(state: Path) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [r for r in runs(state) if r[1] != "running"]


def plan(
    path: Path, steps: list[dict[str, Any]], triggers: list[dict[str, Any]], **extra: Any
) -> Path:
    return write_json(path, {"plan_id": path.stem, "steps": steps, "triggers": triggers, **extra})


def test_every_sec_runs_repeatedly_and_never_overlaps_under_skip(tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    script = (
        f'echo "start $(date +%s%N)" >> {marks}; sleep 1.3; echo "end $(date +%s%N)" >> {marks}'
    )
    path = plan(tmp_path / "tick.json", [sh("work", script)], [{"every_sec": 1}], on_overlap="skip")
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(
            lambda: len([r for r in finished(state) if r[1] == "succeeded"]) >= 2, SERVE_WAIT
        ), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SERVE_WAIT) == 0
    text = log.read_text()
    assert "skipped (a run of the plan is running)" in text  # a 1.3 s run outlives a 1 s slot
    events = [line.split() for line in marks.read_text().splitlines()]
    # Never two at once: every start comes after the previous end.
    kinds = [kind for kind, _ in events]
    assert kinds[: len(kinds) // 2 * 2] == ["start", "end"] * (len(kinds) // 2), events
    done = [r for r in finished(state) if r[1] == "succeeded"]
    assert all(
        t is not None and t["kind"] == "every" and t["slot"].endswith("Z") for _, _, t in done
    )
    listed = planrun("list", "--state-dir", state, "--trigger", "every", cwd=tmp_path)
    assert listed.returncode == 0
    assert "every 20" in listed.stdout, listed.stdout
    manual = planrun("list", "--state-dir", state, "--trigger", "manual", cwd=tmp_path)
    assert manual.stdout.strip() == "no runs", manual.stdout


def test_touching_a_watched_file_starts_one_run_that_sees_the_path(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    seen = tmp_path / "seen.txt"
    step = sh("look", f'printf "%s|%s" "$PLANRUN_TRIGGER_KIND" "$PLANRUN_TRIGGER_PATHS" >> {seen}')
    path = plan(
        project / "watcher.json", [step], [{"watch": ["src/**/*.txt"], "debounce_sec": 0.5}]
    )
    state = project / ".planrun"  # inside the watched directory: its writes must not fire
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(lambda: "watching" in log.read_text(), SERVE_WAIT), log.read_text()
        wait_until(lambda: False, 1.0)  # let the watcher settle (not an assertion)
        target = project / "src" / "deep" / "notes.txt"
        for i in range(3):  # one burst: one run
            target.write_text(f"edit {i}\n")
        (project / "src" / "ignored.md").write_text("not matched\n")
        assert wait_until(lambda: len(finished(state)) >= 1, SERVE_WAIT), log.read_text()
        wait_until(lambda: len(runs(state)) > 1, 3.0)  # a second run would show by now
        assert proc.poll() is None
    all_runs = runs(state)
    assert len(all_runs) == 1, (all_runs, log.read_text())
    assert all_runs[0][1] == "succeeded"
    assert seen.read_text() == "watch|src/deep/notes.txt"
    assert all_runs[0][2] is not None
    assert all_runs[0][2]["paths"] == ["src/deep/notes.txt"]


def _git(repo: Path, *args: str) -> str:
    env = clean_env(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_commit_on_the_watched_branch_starts_a_run_with_the_shas(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    old = _git(repo, "rev-parse", "HEAD")
    seen = tmp_path / "seen.txt"
    step = sh("sync", f'echo "$PLANRUN_TRIGGER_OLD_SHA $PLANRUN_TRIGGER_SHA" > {seen}')
    path = plan(
        tmp_path / "sync.json", [step], [{"git": {"repo": "repo", "branch": "main", "poll_sec": 1}}]
    )
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (_, log):
        assert wait_until(lambda: "a new commit fires" in log.read_text(), SERVE_WAIT), (
            log.read_text()
        )
        _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
        new = _git(repo, "rev-parse", "HEAD")
        assert wait_until(lambda: len(finished(state)) >= 1, SERVE_WAIT), log.read_text()
    assert seen.read_text().split() == [old, new]
    ((_, state_, trigger),) = runs(state)
    assert state_ == "succeeded"
    assert trigger is not None
    assert (trigger["kind"], trigger["sha"], trigger["old_sha"]) == ("git", new, old)
    shown = planrun("show", runs(state)[0][0], "--state-dir", state, cwd=tmp_path)
    assert f"trigger   git main {old[:7]}..{new[:7]}" in shown.stdout, shown.stdout


def test_sigterm_mid_run_cancels_it_and_leaves_no_process(tmp_path: Path) -> None:
    started = tmp_path / "started"
    path = plan(
        tmp_path / "long.json", [sh("sleepy", f"touch {started}; sleep 60")], [{"every_sec": 1}]
    )
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(started.exists, SERVE_WAIT), log.read_text()
        ((run_id, _, _),) = runs(state)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SERVE_WAIT) == 0, log.read_text()
    assert own_pids(lambda env: f"PLANRUN_RUN_ID={run_id}".encode() in env) == []
    assert [(r, s) for r, s, _ in runs(state)] == [(run_id, "cancelled")]
    assert "SIGTERM: stopping" in log.read_text()


def test_once_twice_never_fires_a_slot_twice_and_a_failure_exits_1(tmp_path: Path) -> None:
    path = plan(tmp_path / "cron.json", [sh("ok", "true")], [{"schedule": "* * * * *"}])
    state = tmp_path / "state"
    first = planrun("serve", path, "--once", "--state-dir", state, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    second = planrun("serve", path, "--once", "--state-dir", state, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    slots = [t["slot"] for _, _, t in runs(state) if t is not None]
    assert slots, (first.stdout, second.stdout)
    assert len(slots) == len(set(slots)), (slots, first.stdout, second.stdout)
    if len(slots) == 1:  # the same minute: the second one found nothing due
        assert "nothing due" in second.stdout, second.stdout
    failing = plan(tmp_path / "bad.json", [sh("no", "exit 3")], [{"every_sec": 60}])
    failed = planrun("serve", failing, "--once", "--state-dir", tmp_path / "s2", cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "1 failed" in failed.stdout


def test_a_second_serve_on_the_same_state_dir_exits_3(tmp_path: Path) -> None:
    path = plan(tmp_path / "idle.json", [sh("ok", "true")], [{"schedule": "0 3 1 1 *"}])
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(lambda: "next fire at" in log.read_text(), SERVE_WAIT), log.read_text()
        other = planrun("serve", path, "--once", "--state-dir", state, cwd=tmp_path)
        assert other.returncode == 3, other.stdout + other.stderr
        assert f"pid {proc.pid}" in other.stderr
        assert "already running" in other.stderr


def test_a_changed_plan_reloads_and_an_invalid_one_keeps_its_last_good_version(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.txt"
    path = plan(tmp_path / "edit.json", [sh("say", f"echo v1 >> {out}")], [{"every_sec": 1}])
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(lambda: out.exists() and "v1" in out.read_text(), SERVE_WAIT)
        path.write_text('{"plan_id": "edit", "steps": [')
        assert wait_until(lambda: "keeping its last good version" in log.read_text(), SERVE_WAIT)
        count = len(runs(state))
        assert wait_until(lambda: len(runs(state)) > count, SERVE_WAIT)  # still firing
        plan(path, [sh("say", f"echo v2 >> {out}")], [{"every_sec": 1}])
        assert wait_until(lambda: "v2" in out.read_text(), SERVE_WAIT), log.read_text()
        assert proc.poll() is None
    assert "$.steps" in log.read_text() or "syntax error" in log.read_text()


def test_triggers_prints_fire_times_and_bad_triggers_are_located(tmp_path: Path) -> None:
    path = plan(
        tmp_path / "nightly.json",
        [sh("ok", "true")],
        [{"schedule": "30 2 * * *", "timezone": "Europe/Berlin"}, {"watch": ["*.py"]}],
    )
    shown = planrun("triggers", path, "-n", "2", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "schedule '30 2 * * *' in Europe/Berlin" in lines[1]
    assert lines[2].strip().split()[1] == "02:30:00"
    assert lines[2].strip().endswith("Z)")
    assert "watch *.py under" in lines[4]
    assert "fires on changes" in lines[5]
    bad = plan(
        tmp_path / "bad.json",
        [sh("ok", "true")],
        [{"schedule": "0 3 * *", "timezone": "Nowhere/X"}],
    )
    checked = planrun("validate", bad, cwd=tmp_path)
    assert checked.returncode == 2
    assert "$.triggers[0].schedule" in checked.stderr
    assert "$.triggers[0].timezone" in checked.stderr
    refused = planrun("serve", bad, "--once", "--state-dir", tmp_path / "s", cwd=tmp_path)
    assert refused.returncode == 2
    assert "$.triggers[0].schedule" in refused.stderr


def test_serve_refuses_a_git_repository_or_watched_directory_that_is_not_there(
    tmp_path: Path,
) -> None:
    path = plan(
        tmp_path / "host.json",
        [sh("ok", "true")],
        [{"git": {"repo": "missing-repo"}}, {"watch": ["*"], "cwd": "missing-dir"}],
    )
    refused = planrun("serve", path, "--once", "--state-dir", tmp_path / "s", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "$.triggers[0].git.repo" in refused.stderr
    assert "$.triggers[1].cwd" in refused.stderr


def test_serve_ui_serves_the_dashboard_from_the_same_process(tmp_path: Path) -> None:
    path = plan(tmp_path / "dash.json", [sh("ok", "true")], [{"every_sec": 60}])
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state, extra=("--ui", "--port", "0")) as (proc, log):
        assert wait_until(lambda: len(finished(state)) >= 1, SERVE_WAIT), log.read_text()
        found = re.search(r"serving .* at (http://\S+/)", log.read_text())
        assert found is not None, log.read_text()
        with urllib.request.urlopen(found[1], timeout=10) as page:  # noqa: S310 - loopback URL
            body = page.read().decode()
        assert runs(state)[0][0] in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SERVE_WAIT) == 0, log.read_text()


def test_serve_applies_the_plans_retention_after_a_run(tmp_path: Path) -> None:
    """``"retention": {"keep_last": 2}``: after its triggered run, serve deletes the
    plan's older finished runs (rows and files) and keeps the newest two; another
    plan's runs are not touched."""
    path = plan(
        tmp_path / "kept.json",
        [sh("ok", "true")],
        [{"every_sec": 60}],
        retention={"keep_last": 2},
    )
    other = write_json(tmp_path / "other.json", {"plan_id": "other", "steps": [sh("ok", "true")]})
    state = tmp_path / "state"
    for run_id in ("r1", "r2", "r3"):
        made = planrun("run", path, "--run-id", run_id, "--state-dir", state, cwd=tmp_path)
        assert made.returncode == 0, made.stdout + made.stderr
    mine = planrun("run", other, "--run-id", "o1", "--state-dir", state, cwd=tmp_path)
    assert mine.returncode == 0, mine.stdout + mine.stderr
    served = planrun("serve", path, "--once", "--state-dir", state, cwd=tmp_path)
    assert served.returncode == 0, served.stdout + served.stderr
    assert "retention deleted 2 run(s): r1, r2" in served.stdout, served.stdout
    left = [r for r, _, _ in runs(state)]
    assert "r1" not in left, left
    assert "r2" not in left, left
    assert {"r3", "o1"} <= set(left), left
    assert len(left) == 3, left  # r3, the triggered run, and the other plan's o1
    assert not (state / "runs" / "r1").exists()


def test_for_each_instances_of_a_triggered_run_see_the_trigger(tmp_path: Path) -> None:
    """Every step process of a triggered run sees ``PLANRUN_TRIGGER*``: the
    ``for_each`` instances too, which the engine makes from their step at run time."""
    seen = tmp_path / "seen"
    seen.mkdir()
    producer = sh("list", 'echo \'ITEMS=["a", "b"]\' >> "$PLANRUN_OUTPUT"')
    each = sh(
        "each",
        f'echo "$PLANRUN_TRIGGER_KIND $PLANRUN_TRIGGER_SLOT" > {seen}/"$0"',
        depends_on=["list"],
        for_each="${steps.list.outputs.ITEMS}",
    )
    each["args"].append("${item}")
    path = plan(tmp_path / "fan.json", [producer, each], [{"every_sec": 60}])
    served = planrun("serve", path, "--once", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert served.returncode == 0, served.stdout + served.stderr
    ((_, state, trigger),) = runs(tmp_path / "state")
    assert state == "succeeded"
    assert trigger is not None
    for item in ("a", "b"):
        assert (seen / item).read_text().split() == ["every", trigger["slot"]], item


def test_a_reload_that_leaves_queue_drops_the_queued_firing(tmp_path: Path) -> None:
    """Under ``queue`` a firing waits for the running run; a reload whose plan says
    ``on_overlap: skip`` drops it (logged): its slot never gets a run."""
    gates = tmp_path / "gates"
    gates.mkdir()
    hold = sh("hold", f"while [ ! -f {gates}/open ]; do sleep 0.05; done")
    path = plan(tmp_path / "q.json", [hold], [{"every_sec": 1}], on_overlap="queue")
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(lambda: ": queued" in log.read_text(), SERVE_WAIT), log.read_text()
        queued = re.search(r"slot (\S+): queued", log.read_text())
        assert queued is not None, log.read_text()
        plan(path, [hold], [{"every_sec": 1}], on_overlap="skip")
        assert wait_until(lambda: "dropped from the queue" in log.read_text(), SERVE_WAIT), (
            log.read_text()
        )
        (gates / "open").touch()
        assert wait_until(lambda: len(finished(state)) >= 2, SERVE_WAIT), log.read_text()
        assert proc.poll() is None
    slots = [t["slot"] for _, _, t in runs(state) if t is not None]
    assert queued[1] not in slots, (queued[1], slots, log.read_text())
    assert "on_overlap is now skip" in log.read_text()


def test_dry_run_and_validate_mention_the_triggers(tmp_path: Path) -> None:
    """``run --dry-run`` (text and ``--json``) and ``validate`` say what the plan's
    triggers are and that only ``planrun serve`` fires them; a plan without triggers
    gets no such line."""
    path = plan(
        tmp_path / "nightly.json",
        [sh("ok", "true")],
        [{"schedule": "0 3 * * 1-5", "timezone": "Europe/Berlin"}, {"every_sec": 900}],
        on_overlap="queue",
    )
    line = (
        "triggers: schedule 0 3 * * 1-5 (Europe/Berlin), every 900s; on_overlap queue;"
        " runs by itself only under `planrun serve`"
    )
    for args in (("validate", path), ("run", "--dry-run", path)):
        shown = planrun(*args, cwd=tmp_path)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert line in shown.stdout, (args, shown.stdout)
    as_json = planrun("run", "--dry-run", "--json", path, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["on_overlap"] == "queue"
    assert [(t["kind"], t["summary"]) for t in doc["triggers"]] == [
        ("schedule", "schedule 0 3 * * 1-5 (Europe/Berlin)"),
        ("every", "every 900s"),
    ]
    assert doc["triggers"][0]["timezone"] == "Europe/Berlin"
    assert doc["triggers"][1]["key"].startswith("1-every-")
    plain = write_json(tmp_path / "plain.json", {"plan_id": "plain", "steps": [sh("ok", "true")]})
    for args in (("validate", plain), ("run", "--dry-run", plain)):
        shown = planrun(*args, cwd=tmp_path)
        assert "triggers:" not in shown.stdout, shown.stdout
    assert not (tmp_path / ".planrun").exists()


def test_a_triggered_plan_with_a_uses_step_runs_its_child(tmp_path: Path) -> None:
    """A ``uses`` step's env is its child plan's variables: the trigger's variables
    are not added there (the child would refuse them as undeclared)."""
    out = tmp_path / "child-ran"
    write_json(tmp_path / "child.json", {"plan_id": "child", "steps": [sh("c", f"touch {out}")]})
    path = plan(tmp_path / "parent.json", [{"id": "p", "uses": "child.json"}], [{"every_sec": 60}])
    served = planrun("serve", path, "--once", "--state-dir", tmp_path / "state", cwd=tmp_path)
    assert served.returncode == 0, served.stdout + served.stderr
    assert out.exists()


def test_planrun_cancel_of_a_served_run_cancels_it_and_serve_goes_on(tmp_path: Path) -> None:
    """``planrun cancel RUN`` of a run serve started: that run is cancelled (its
    process stopped, recorded ``cancelled``), exit 0, and serve keeps serving (it
    starts the next slot's run)."""
    started = tmp_path / "started"
    step = sh("sleepy", f'echo "$PLANRUN_RUN_ID" >> {started}; sleep 60')
    path = plan(tmp_path / "long.json", [step], [{"every_sec": 1}])
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (proc, log):
        assert wait_until(started.exists, SERVE_WAIT), log.read_text()
        first = started.read_text().split()[0]
        cancelled = planrun("cancel", first, "--state-dir", state, cwd=tmp_path)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr + log.read_text()
        assert "cancelled" in {s for r, s, _ in runs(state) if r == first}, runs(state)
        assert own_pids(lambda env: f"PLANRUN_RUN_ID={first}".encode() in env) == []
        assert wait_until(lambda: len(started.read_text().split()) >= 2, SERVE_WAIT), (
            log.read_text()
        )
        assert proc.poll() is None, log.read_text()
    assert f"run {first}: cancel requested" in log.read_text()


def test_a_commit_while_a_run_runs_is_not_lost_under_skip(tmp_path: Path) -> None:
    """``on_overlap: skip``: a commit seen while a run of the plan runs is skipped then,
    and fires once that run ended (a commit does not pass like a schedule slot)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    gate, seen = tmp_path / "gate", tmp_path / "seen.txt"
    step = sh(
        "sync", f'echo "$PLANRUN_TRIGGER_SHA" >> {seen}; while [ ! -e {gate} ]; do sleep 0.1; done'
    )
    path = plan(
        tmp_path / "sync.json", [step], [{"git": {"repo": "repo", "branch": "main", "poll_sec": 1}}]
    )
    state = tmp_path / "state"
    with serving(tmp_path, path, state=state) as (_, log):
        assert wait_until(lambda: "a new commit fires" in log.read_text(), SERVE_WAIT)
        _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
        two = _git(repo, "rev-parse", "HEAD")
        assert wait_until(seen.exists, SERVE_WAIT), log.read_text()
        _git(repo, "commit", "-q", "--allow-empty", "-m", "three")  # while `two` runs
        three = _git(repo, "rev-parse", "HEAD")
        assert wait_until(lambda: "fires once the run ended" in log.read_text(), SERVE_WAIT), (
            log.read_text()
        )
        gate.touch()
        assert wait_until(lambda: len(finished(state)) >= 2, SERVE_WAIT), log.read_text()
    assert seen.read_text().split() == [two, three], log.read_text()
    assert log.read_text().count("fires once the run ended") == 1, log.read_text()


def test_a_plan_whose_triggers_were_removed_stops_firing(tmp_path: Path) -> None:
    """Editing a served plan to have no triggers any more (still a valid plan) stops
    its triggers, logged; serve goes on (it was kept firing the old version)."""
    out = tmp_path / "out.txt"
    path = plan(tmp_path / "edit.json", [sh("say", f"echo x >> {out}")], [{"every_sec": 1}])
    plan(tmp_path / "other.json", [sh("ok", "true")], [{"every_sec": 60}])  # still served
    state = tmp_path / "state"
    with serving(tmp_path, tmp_path, state=state) as (proc, log):
        assert wait_until(out.exists, SERVE_WAIT), log.read_text()
        write_json(path, {"plan_id": "edit", "steps": [sh("say", f"echo x >> {out}")]})
        assert wait_until(lambda: "no longer serving plan edit" in log.read_text(), SERVE_WAIT), (
            log.read_text()
        )
        assert wait_until(lambda: not any(r[1] == "running" for r in runs(state)), SERVE_WAIT)
        fired = len(out.read_text().split())
        time_left = wait_until(lambda: len(out.read_text().split()) > fired, 3.0)
        assert not time_left, log.read_text()  # no firing in 3 s of a 1 s interval
        assert proc.poll() is None
    assert "no triggers now" in log.read_text()


def test_resume_of_a_triggered_run_gives_rerun_steps_the_trigger(tmp_path: Path) -> None:
    """A triggered run whose step failed, resumed by hand: the step run again sees
    the same ``PLANRUN_TRIGGER*`` as its first attempt did."""
    seen, flag = tmp_path / "seen.txt", tmp_path / "pass"
    step = sh(
        "check", f'echo "$PLANRUN_TRIGGER_KIND $PLANRUN_TRIGGER_SLOT" >> {seen}; test -e {flag}'
    )
    path = plan(tmp_path / "checked.json", [step], [{"every_sec": 60}])
    state = tmp_path / "state"
    served = planrun("serve", path, "--once", "--state-dir", state, cwd=tmp_path)
    assert served.returncode == 1, served.stdout + served.stderr
    ((run_id, _, trigger),) = runs(state)
    assert trigger is not None
    flag.touch()
    resumed = planrun("resume", run_id, "--state-dir", state, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    first, again = seen.read_text().splitlines()
    assert first == again == f"every {trigger['slot']}", seen.read_text()
