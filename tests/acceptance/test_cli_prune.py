"""``planrun prune`` through the real CLI, on real SQLite files: it deletes exactly the
runs it lists (rows in every table, logs, events.jsonl), never a running run, child
runs with their parent, nothing under --dry-run; a prune killed at any point leaves no
half-deleted run (the next one removes the files it left); bad flags are exit 2 with
the hint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from ._cli import PLANRUN, PY, clean_env, planrun, query, sh, wait_until, write_json

TABLES = ("runs", "steps", "attempts", "events")


def _state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _run(tmp_path: Path, plan: Path, run_id: str, code: int = 0) -> None:
    result = planrun(
        "run", plan, "--state-dir", _state(tmp_path), "--run-id", run_id, "--plain", cwd=tmp_path
    )
    assert result.returncode == code, result.stdout + result.stderr


def _prune(tmp_path: Path, *args: str) -> dict[str, Any]:
    """``planrun prune ARGS --json`` (exit 0): its document."""
    result = planrun("prune", *args, "--state-dir", _state(tmp_path), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def _rows(tmp_path: Path, run_id: str) -> dict[str, int]:
    """How many rows each table has for ``run_id``."""
    db = _state(tmp_path) / "runs.db"
    count = "SELECT COUNT(*) FROM {} WHERE run_id = ?"
    return {t: query(db, count.format(t), run_id)[0][0] for t in TABLES}


def _gone(tmp_path: Path, run_id: str) -> bool:
    """No row of ``run_id`` in any table, and no directory (logs, events.jsonl)."""
    no_rows = _rows(tmp_path, run_id) == dict.fromkeys(TABLES, 0)
    return no_rows and not (_state(tmp_path) / "runs" / run_id).exists()


def _intact(tmp_path: Path, run_id: str) -> bool:
    """Rows in every table, its events.jsonl as long as its events rows, its logs."""
    rows = _rows(tmp_path, run_id)
    run_dir = _state(tmp_path) / "runs" / run_id
    jsonl = (run_dir / "events.jsonl").read_text().splitlines()
    return all(rows.values()) and len(jsonl) == rows["events"] and any((run_dir / "logs").iterdir())


def _consistent(tmp_path: Path) -> None:
    """SQLite's own checks, and no row of a run that is not in ``runs``."""
    db = _state(tmp_path) / "runs.db"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert query(db, "PRAGMA foreign_key_check") == []
    for table in TABLES[1:]:
        orphans = f"SELECT COUNT(*) FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)"  # noqa: S608
        assert query(db, orphans) == [(0,)], table
    children = "SELECT COUNT(*) FROM runs WHERE parent_run_id NOT IN (SELECT run_id FROM runs)"
    assert query(db, children) == [(0,)]


def _listed(tmp_path: Path) -> list[str]:
    result = planrun("list", "--json", "--state-dir", _state(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return [run["run_id"] for run in json.loads(result.stdout)]


def _plans(tmp_path: Path) -> tuple[Path, Path]:
    ok = write_json(tmp_path / "a.json", {"plan_id": "a", "steps": [sh("s", "echo hello")]})
    bad = write_json(tmp_path / "a-bad.json", {"plan_id": "a", "steps": [sh("s", "exit 1")]})
    return ok, bad


def test_prune_deletes_what_it_lists_never_a_running_run_and_resume_still_works(
    tmp_path: Path,
) -> None:
    """keep-last 1 of plan a deletes its two older runs (rows, logs, events), the dry
    run lists the same and deletes nothing; a real ``planrun run`` sleeping in another
    process is never deleted; once killed it is crashed, kept, and resumes."""
    ok, bad = _plans(tmp_path)
    _run(tmp_path, ok, "a1")
    _run(tmp_path, bad, "a2", code=1)
    _run(tmp_path, ok, "a3")
    slow = write_json(
        tmp_path / "slow.json",
        {"plan_id": "slow", "steps": [sh("nap", "[ -e done ] || { touch done; sleep 60; }")]},
    )
    proc = subprocess.Popen(
        [*PLANRUN, "run", slow, "--state-dir", _state(tmp_path), "--run-id", "s1", "--plain"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until((tmp_path / "done").exists, 20)
        dry = _prune(tmp_path, "--keep-last", "1", "--dry-run")
        assert [r["run_id"] for r in dry["runs"]] == ["a2", "a1"]
        assert dry["deleted_run_ids"] == []
        assert all(_intact(tmp_path, rid) for rid in ("a1", "a2", "a3"))

        doc = _prune(tmp_path, "--keep-last", "0", "--plan", "slow")
        assert doc["runs"] == []  # running: never deleted, whatever the policy
        doc = _prune(tmp_path, "--keep-last", "1")
        assert [(r["run_id"], r["state"]) for r in doc["runs"]] == [
            ("a2", "failed"),
            ("a1", "succeeded"),
        ]
        assert doc["deleted_run_ids"] == ["a2", "a1"]
        assert _gone(tmp_path, "a1")
        assert _gone(tmp_path, "a2")
        assert _intact(tmp_path, "a3")
        assert _rows(tmp_path, "s1")["runs"] == 1
        assert proc.poll() is None  # the running run went on
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # Its owner is gone: marked crashed (as `list` would), then the newest of its plan.
    doc = _prune(tmp_path, "--keep-last", "1", "--plan", "slow")
    assert doc["runs"] == []
    assert _listed(tmp_path) == ["s1", "a3"]
    show = planrun("show", "a3", "--state-dir", _state(tmp_path), cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "succeeded" in show.stdout
    resumed = planrun("resume", "s1", "--state-dir", _state(tmp_path), "--plain", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _consistent(tmp_path)


def test_child_runs_go_with_their_parent_and_older_than_counts_from_the_end(
    tmp_path: Path,
) -> None:
    """Two runs of a plan with a ``uses`` step; the older, ended 40 days ago, goes with
    its child run; a child run is never deleted on its own."""
    write_json(tmp_path / "child.json", {"plan_id": "child", "steps": [sh("c", "echo child")]})
    parent = write_json(
        tmp_path / "parent.json",
        {"plan_id": "parent", "steps": [{"id": "sub", "uses": "child.json"}]},
    )
    _run(tmp_path, parent, "p1")
    _run(tmp_path, parent, "p2")
    db = _state(tmp_path) / "runs.db"
    kids = dict(query(db, "SELECT parent_run_id, run_id FROM runs WHERE parent_run_id IS NOT NULL"))
    assert set(kids) == {"p1", "p2"}
    con = __import__("sqlite3").connect(db)
    with con:  # p1 and its child ended 40 days ago
        con.execute(
            "UPDATE runs SET started_at = '2000-01-01T00:00:00.000000Z', "
            "ended_at = '2000-01-01T00:01:00.000000Z' WHERE run_id IN (?, ?)",
            ("p1", kids["p1"]),
        )
    con.close()
    assert _prune(tmp_path, "--keep-last", "0", "--plan", "child")["runs"] == []
    doc = _prune(tmp_path, "--older-than", "30d")
    assert [(r["run_id"], r["child_run_ids"]) for r in doc["runs"]] == [("p1", [kids["p1"]])]
    assert doc["deleted_run_ids"] == ["p1", kids["p1"]]
    assert _gone(tmp_path, "p1")
    assert _gone(tmp_path, kids["p1"])
    assert _rows(tmp_path, "p2")["runs"] == 1
    assert _rows(tmp_path, kids["p2"])["runs"] == 1
    _consistent(tmp_path)


#: ``planrun prune ARGS...`` in this process, with one seam of the store replaced by a
#: kill -9 of the process itself (the real CLI code otherwise).
KILLED_PRUNE = textwrap.dedent(
    """
    import os, signal, sys
    import planrun.store.files as files
    import planrun.store.prune as prune

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[1] == "in-transaction":
        real = prune._delete_rows
        def half(conn, run_ids):
            from planrun.store import sql
            ids = __import__("json").dumps(list(run_ids))
            for statement in sql.DELETE_RUN_ROWS[:2]:  # events and attempts, not steps/runs
                conn.execute(statement, (ids,))
            die()
        prune._delete_rows = half
    else:
        files.remove_run_dir = die  # after the commit, before the first directory
    sys.argv = ["planrun", *sys.argv[2:]]
    from planrun.cli.app import main
    main()
    """
)


def _killed_prune(tmp_path: Path, seam: str, *args: str) -> None:
    result = subprocess.run(
        [PY, "-c", KILLED_PRUNE, seam, "prune", *args, "--state-dir", str(_state(tmp_path))],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr


def test_a_prune_killed_midway_leaves_no_half_deleted_run(tmp_path: Path) -> None:
    """kill -9 inside the transaction: nothing is deleted. kill -9 after the commit:
    the runs are gone from every table (list, show, resume do not see them), their
    directories are left, and the next prune removes them."""
    ok, _ = _plans(tmp_path)
    for run_id in ("a1", "a2", "a3"):
        _run(tmp_path, ok, run_id)
    before = {rid: _rows(tmp_path, rid) for rid in ("a1", "a2")}

    _killed_prune(tmp_path, "in-transaction", "--keep-last", "1")
    assert {rid: _rows(tmp_path, rid) for rid in ("a1", "a2")} == before
    assert _intact(tmp_path, "a1")
    assert _intact(tmp_path, "a2")

    _killed_prune(tmp_path, "after-commit", "--keep-last", "1")
    for rid in ("a1", "a2"):
        assert _rows(tmp_path, rid) == dict.fromkeys(TABLES, 0)
        assert (_state(tmp_path) / "runs" / rid / "events.jsonl").exists()  # left over
    _consistent(tmp_path)
    assert _listed(tmp_path) == ["a3"]
    show = planrun("show", "a1", "--state-dir", _state(tmp_path), cwd=tmp_path)
    assert show.returncode == 2
    assert "no run 'a1'" in show.stderr
    resume = planrun("resume", "a2", "--state-dir", _state(tmp_path), cwd=tmp_path)
    assert resume.returncode == 2, resume.stderr

    text = planrun("prune", "--keep-last", "1", "--state-dir", _state(tmp_path), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "removed the files of 2 run(s) deleted earlier" in text.stdout
    assert "nothing to delete" in text.stdout
    assert sorted(os.listdir(_state(tmp_path) / "runs")) == ["a3"]
    assert _intact(tmp_path, "a3")


def test_bad_flags_are_exit_2_with_the_hint(tmp_path: Path) -> None:
    state = _state(tmp_path)
    nothing = planrun("prune", "--state-dir", state, cwd=tmp_path)
    assert nothing.returncode == 2
    assert "--older-than DURATION (e.g. 30d) and/or --keep-last N" in nothing.stderr
    as_json = planrun("prune", "--plan", "a", "--json", "--state-dir", state, cwd=tmp_path)
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout.splitlines()[-1])["type"] == "error"
    unit = planrun("prune", "--older-than", "30x", "--state-dir", state, cwd=tmp_path)
    assert unit.returncode == 2
    assert "--older-than '30x'" in unit.stderr
    assert "s, m, h, d or w (e.g. 30d, 12h, 90m)" in unit.stderr
    negative = planrun("prune", "--keep-last", "-1", "--state-dir", state, cwd=tmp_path)
    assert negative.returncode == 2
    assert "--keep-last" in negative.stderr
    assert not state.exists()  # nothing created by a refused prune
