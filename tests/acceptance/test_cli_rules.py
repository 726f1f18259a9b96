"""Pools, ``skip_exit_codes``, ``stop_signal`` and the trigger rules ``one_success``,
``none_failed_min_one_success`` and ``all_failed``, through the real CLI with real
processes. Concurrency is checked with marker files the steps write, not with timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ._cli import PLANRUN, clean_env, planrun, read_events, sh, wait_until, write_json


def _finished(state_dir: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """The ``step_finished`` event of every step of a run, by step id."""
    return {e["step_id"]: e for e in read_events(state_dir, run_id) if e["type"] == "step_finished"}


def _run(tmp_path: Path, plan: dict[str, Any], run_id: str) -> subprocess.CompletedProcess[str]:
    path = write_json(tmp_path / "plan.json", plan)
    return planrun("run", path, "--run-id", run_id, "--plain", cwd=tmp_path, timeout=120)


# --- pools --------------------------------------------------------------------------

#: Marks itself running, records how many are running (itself included), sleeps, unmarks.
_COUNTED = (
    "touch running/$PLANRUN_STEP_ID; ls running | wc -l >> counts; "
    "sleep 0.4; rm running/$PLANRUN_STEP_ID"
)


def test_a_pool_of_two_never_has_more_than_two_running(tmp_path: Path) -> None:
    """Six steps of a pool of 2, with room for 8: none ever sees more than two running
    (each counts the markers of the running ones when it starts), and all succeed."""
    (tmp_path / "running").mkdir()
    plan = {
        "plan_id": "pool",
        "globals": {"max_concurrency": 8, "pools": {"db": 2}},
        "steps": [sh(f"s{i}", _COUNTED, pool="db") for i in range(6)],
    }
    result = _run(tmp_path, plan, "pool1")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = [int(line) for line in (tmp_path / "counts").read_text().split()]
    assert len(counts) == 6
    assert max(counts) <= 2, counts
    done = _finished(tmp_path / ".planrun", "pool1")
    assert {e["state"] for e in done.values()} == {"succeeded"}


def test_a_step_waiting_for_its_pool_lets_other_steps_start(tmp_path: Path) -> None:
    """Two run slots, a pool of 1: ``free`` (after the pool members in the plan)
    starts while ``d1`` runs, instead of waiting behind ``d2``. ``d1`` waits until
    ``free`` has started, so this would time out if ``d2`` held the second slot."""
    plan = {
        "plan_id": "overtake",
        "globals": {"max_concurrency": 2, "pools": {"db": 1}},
        "steps": [
            sh("d1", "while [ ! -e free.started ]; do sleep 0.05; done", pool="db", timeout_sec=60),
            sh("d2", "test -e free.started", pool="db"),
            sh("free", "touch free.started"),
        ],
    }
    result = _run(tmp_path, plan, "pool2")
    assert result.returncode == 0, result.stdout + result.stderr
    done = _finished(tmp_path / ".planrun", "pool2")
    assert {k: e["state"] for k, e in done.items()} == {
        "d1": "succeeded",
        "d2": "succeeded",
        "free": "succeeded",
    }


def test_an_unknown_pool_is_rejected_with_its_location(tmp_path: Path) -> None:
    """A pool that globals.pools does not declare: exit 2, the JSON path, a
    did-you-mean; nothing runs."""
    plan = {
        "plan_id": "badpool",
        "globals": {"pools": {"database": 2}},
        "steps": [sh("a", "touch ran", pool="databse")],
    }
    path = write_json(tmp_path / "plan.json", plan)
    result = planrun("run", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "$.steps[0].pool" in text
    assert "unknown pool 'databse'" in text
    assert "did you mean 'database'?" in text
    assert not (tmp_path / "ran").exists()


# --- skip_exit_codes ----------------------------------------------------------------


def test_a_skip_exit_code_ends_the_step_skipped_without_retry(tmp_path: Path) -> None:
    """Exit 3 with ``skip_exit_codes: [3]``: the step is skipped (not failed, not
    retried despite retries), its dependent is skipped, a none_failed step runs, and
    the run succeeds."""
    plan = {
        "plan_id": "skip",
        "steps": [
            sh("check", "echo try >> tries; exit 3", skip_exit_codes=[3], retries=2),
            sh("build", "touch built", depends_on=["check"]),
            sh("report", "touch reported", depends_on=["check"], when="none_failed"),
        ],
    }
    result = _run(tmp_path, plan, "skip1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "tries").read_text().split() == ["try"]
    done = _finished(tmp_path / ".planrun", "skip1")
    assert done["check"]["state"] == "skipped"
    assert done["check"]["reason"] == "exit code 3 means skip (skip_exit_codes)"
    assert done["check"]["exit_code"] == 3
    assert done["build"]["state"] == "skipped"
    assert done["report"]["state"] == "succeeded"
    assert not (tmp_path / "built").exists()
    attempts = [
        e for e in read_events(tmp_path / ".planrun", "skip1") if e["type"] == "attempt_finished"
    ]
    assert [(a["step_id"], a["state"]) for a in attempts if a["step_id"] == "check"] == [
        ("check", "skipped")
    ]
    assert "check skipped" in result.stdout
    # show --json reads the same from the store.
    shown = planrun("show", "skip1", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert steps["check"]["state"] == "skipped"
    assert [a["state"] for a in steps["check"]["attempts"]] == ["skipped"]


def test_an_exit_code_both_success_and_skip_is_rejected(tmp_path: Path) -> None:
    """A code in success_exit_codes and skip_exit_codes: exit 2 with its location."""
    plan = {
        "plan_id": "both",
        "steps": [sh("a", "true", success_exit_codes=[0, 3], skip_exit_codes=[4, 3])],
    }
    path = write_json(tmp_path / "plan.json", plan)
    result = planrun("validate", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "$.steps[0].skip_exit_codes[1]" in text
    assert "exit code 3 is in both success_exit_codes and skip_exit_codes" in text


# --- stop_signal --------------------------------------------------------------------

#: Traps INT (writes a marker, stops its sleep, exits 3) and TERM (another marker).
_TRAPS_INT = (
    "trap 'echo INT > got; kill $!; exit 3' INT; trap 'echo TERM > got; kill $!; exit 4' TERM; "
    "touch ready; sleep 60 & wait"
)


def test_stop_signal_is_sent_on_timeout(tmp_path: Path) -> None:
    """A timed-out step with ``stop_signal: SIGINT`` gets SIGINT, not SIGTERM, and
    stops at once (well before the 30 s grace)."""
    plan = {
        "plan_id": "stopsig",
        "globals": {"kill_grace_sec": 30},
        "steps": [sh("a", _TRAPS_INT, stop_signal="SIGINT", timeout_sec=1)],
    }
    begin = time.monotonic()
    result = _run(tmp_path, plan, "sig1")
    assert time.monotonic() - begin < 20
    assert result.returncode == 1, result.stdout + result.stderr
    assert (tmp_path / "got").read_text().strip() == "INT"
    assert _finished(tmp_path / ".planrun", "sig1")["a"]["state"] == "timed_out"


def test_without_stop_signal_a_timeout_sends_sigterm(tmp_path: Path) -> None:
    """The same step without ``stop_signal`` gets SIGTERM (the control for the above)."""
    plan = {
        "plan_id": "stopsig",
        "globals": {"kill_grace_sec": 30},
        "steps": [sh("a", _TRAPS_INT, timeout_sec=1)],
    }
    result = _run(tmp_path, plan, "sig2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (tmp_path / "got").read_text().strip() == "TERM"


def test_stop_signal_is_sent_on_cancel(tmp_path: Path) -> None:
    """Cancelling the run (SIGTERM to planrun) sends the step its ``stop_signal``
    (``INT``, written without ``SIG``)."""
    plan = {
        "plan_id": "stopsig",
        "globals": {"kill_grace_sec": 30},
        "steps": [sh("a", _TRAPS_INT, stop_signal="INT")],
    }
    path = write_json(tmp_path / "plan.json", plan)
    proc = subprocess.Popen(
        [*PLANRUN, "run", str(path), "--run-id", "sig3", "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until((tmp_path / "ready").exists, 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"Traceback" not in err
    assert proc.returncode == 130
    assert (tmp_path / "got").read_text().strip() == "INT"
    assert _finished(tmp_path / ".planrun", "sig3")["a"]["state"] == "cancelled"


def test_a_step_that_ignores_its_stop_signal_is_killed_after_the_grace(
    tmp_path: Path,
) -> None:
    """A step that ignores SIGINT (and would note a SIGTERM) is SIGKILLed after
    ``kill_grace_sec``: it ends timed out, killed by signal 9, having seen no TERM."""
    script = (
        "trap '' INT; trap 'echo TERM > got' TERM; echo $$ > pid; "
        "python3 -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "time.sleep(60)'"
    )
    plan = {
        "plan_id": "stopsig",
        "globals": {"kill_grace_sec": 1},
        "steps": [sh("a", script, stop_signal="SIGINT", timeout_sec=1)],
    }
    result = _run(tmp_path, plan, "sig4")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (tmp_path / "got").exists()
    attempts = [
        e for e in read_events(tmp_path / ".planrun", "sig4") if e["type"] == "attempt_finished"
    ]
    assert [(a["state"], a["exit_code"]) for a in attempts] == [("timed_out", -9)]
    pid = int((tmp_path / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or _zombie_or_gone(pid)


def _zombie_or_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_bad_stop_signal_is_rejected_with_location_and_hint(tmp_path: Path) -> None:
    """SIGKILL (cannot be caught) and an unknown name: exit 2, each with its path."""
    plan = {
        "plan_id": "badsig",
        "steps": [
            sh("a", "true", stop_signal="SIGKILL"),
            sh("b", "true", stop_signal="SIGINTT"),
            sh("c", "true", stop_signal="STOP"),
        ],
    }
    path = write_json(tmp_path / "plan.json", plan)
    result = planrun("validate", path, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "$.steps[0].stop_signal" in text
    assert "SIGKILL cannot be caught" in text
    assert "$.steps[1].stop_signal" in text
    assert "unknown signal SIGINTT" in text
    assert "did you mean 'SIGINT'?" in text
    assert "$.steps[2].stop_signal" in text
    assert "SIGSTOP cannot be caught" in text


# --- trigger rules ------------------------------------------------------------------


def test_the_new_trigger_rules(tmp_path: Path) -> None:
    """one_success starts while another dependency still runs (``slow`` waits for it),
    none_failed_min_one_success needs a success and no failure, all_failed needs every
    dependency failed; the failures are non-critical, so the run succeeds."""
    plan = {
        "plan_id": "rules",
        "steps": [
            sh("ok", "true"),
            sh("bad", "exit 1", critical=False, on_failure="skip_dependents"),
            sh("bad2", "exit 1", critical=False, on_failure="skip_dependents"),
            sh("skipper", "exit 3", skip_exit_codes=[3]),
            sh("slow", "while [ ! -e any.ran ]; do sleep 0.05; done", timeout_sec=60),
            sh("any", "touch any.ran", depends_on=["ok", "slow"], when="one_success"),
            sh("any_none", "true", depends_on=["bad", "skipper"], when="one_success"),
            sh("min1", "true", depends_on=["ok", "skipper"], when="none_failed_min_one_success"),
            sh("min1_skips", "true", depends_on=["skipper"], when="none_failed_min_one_success"),
            sh("min1_bad", "true", depends_on=["ok", "bad"], when="none_failed_min_one_success"),
            sh("allf", "true", depends_on=["bad", "bad2"], when="all_failed"),
            sh("allf_ok", "true", depends_on=["bad", "ok"], when="all_failed"),
        ],
    }
    result = _run(tmp_path, plan, "rules1")
    assert result.returncode == 0, result.stdout + result.stderr
    done = _finished(tmp_path / ".planrun", "rules1")
    got = {k: (e["state"], e["reason"]) for k, e in done.items()}
    assert got["any"] == ("succeeded", None)
    assert got["slow"] == ("succeeded", None)
    assert got["any_none"] == ("skipped", "no dependency succeeded (when: one_success)")
    assert got["min1"] == ("succeeded", None)
    assert got["min1_skips"] == (
        "skipped",
        "no dependency succeeded (when: none_failed_min_one_success)",
    )
    assert got["min1_bad"] == ("skipped", "dependency 'bad' failed")
    assert got["allf"] == ("succeeded", None)
    assert got["allf_ok"] == ("skipped", "dependency 'ok' succeeded, not failed (when: all_failed)")


def test_all_failed_runs_during_an_abort_and_the_others_do_not(tmp_path: Path) -> None:
    """A critical failure aborts the run: an all_failed rollback still runs (a cleanup
    rule), one_success and none_failed_min_one_success steps end cancelled."""
    plan = {
        "plan_id": "abort",
        "steps": [
            sh("ok", "true"),
            sh("boom", "exit 1", depends_on=["ok"]),
            sh("rollback", "touch rolled-back", depends_on=["boom"], when="all_failed"),
            sh("any", "true", depends_on=["boom"], when="one_success"),
            sh("min1", "true", depends_on=["boom"], when="none_failed_min_one_success"),
        ],
    }
    result = _run(tmp_path, plan, "rules2")
    assert result.returncode == 1, result.stdout + result.stderr
    done = _finished(tmp_path / ".planrun", "rules2")
    assert done["rollback"]["state"] == "succeeded"
    assert (tmp_path / "rolled-back").exists()
    assert done["any"]["state"] == "cancelled"
    assert done["min1"]["state"] == "cancelled"


# --- dry run ------------------------------------------------------------------------


def test_dry_run_shows_the_runtime_knobs(tmp_path: Path) -> None:
    """--dry-run (text and JSON) shows pools, pool, skip codes, stop signal and rule."""
    plan = {
        "plan_id": "dry",
        "globals": {"pools": {"db": 2}},
        "steps": [
            sh("a", "true", pool="db", skip_exit_codes=[3, 4], stop_signal="INT"),
            sh("b", "true", depends_on=["a"], when="one_success"),
        ],
    }
    path = write_json(tmp_path / "plan.json", plan)
    result = planrun("run", path, "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "pools: db (at most 2 at once)" in out
    assert "pool db; skip on exit 3, 4; stop with SIGINT" in out
    assert "when one_success" in out
    doc = json.loads(planrun("run", path, "--dry-run", "--json", cwd=tmp_path).stdout)
    assert doc["pools"] == {"db": 2}
    a = doc["steps"][0]
    assert (a["pool"], a["skip_exit_codes"], a["stop_signal"]) == ("db", [3, 4], "SIGINT")
    assert doc["steps"][1]["stop_signal"] == "SIGTERM"
    assert not (tmp_path / ".planrun").exists()
    assert os.listdir(tmp_path) == ["plan.json"]
