"""The restore plan (plans/restore.json) run through the real CLI on real git
repositories, after a real safe merge (plans/safe_merge.json) where it needs one."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_safe_merge import (
    PLANS,
    SAFE_MERGE,
    Repos,
    assert_no_leftover_worktree,
    make_repos,
    planrun_run,
    show,
    step_log,
    step_states,
)

RESTORE = PLANS / "restore.json"


@pytest.fixture
def merged(tmp_path: Path) -> Repos:
    """Repos where a safe merge of ``rework`` (edits lib/util.txt, adds lib/extra.txt,
    edits app.txt) into main went through; ``rework`` is checked out."""
    repos = make_repos(tmp_path)
    repos.git("switch", "-q", "-c", "rework", "main")
    files = {"lib/util.txt": "util v2\n", "lib/extra.txt": "extra\n", "app.txt": "app v2\n"}
    repos.commit("rework", files, "rework lib and app")
    result = planrun_run(
        repos, SAFE_MERGE, "sm-setup", {"REPO": str(repos.repo), "BRANCH": "rework"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return repos


def test_restore_from_last_safe_merge(merged: Repos) -> None:
    """Without FROM_REF, a directory is restored exactly as it was before the last safe
    merge (a file the merge added is gone) on a new branch off main; the rest of main,
    the user's checkout and the other branches are untouched."""
    repos = merged
    pre = repos.state_file("safe_merge", "last_merge.env")["pre_sha"]
    main = repos.sha("main")
    assert pre != main

    variables = {"REPO": str(repos.repo), "PATH_SPEC": "lib", "NEW_BRANCH": "restore-lib"}
    result = planrun_run(repos, RESTORE, "rs-ok", variables)

    assert result.returncode == 0, result.stdout + result.stderr
    assert set(step_states(show(repos, "rs-ok")).values()) == {"succeeded"}
    new = repos.sha("restore-lib")
    assert repos.git("rev-list", "--parents", "-n", "1", new).split() == [new, main]
    assert repos.git("diff", "--name-only", pre, new, "--", "lib") == ""
    assert repos.git("ls-tree", "--name-only", "-r", new, "--", "lib").split() == ["lib/util.txt"]
    assert repos.git("diff", "--name-only", main, new).split() == ["lib/extra.txt", "lib/util.txt"]
    assert repos.git("show", f"{new}:app.txt") == "app v2"
    assert repos.sha("main") == main
    assert repos.git("symbolic-ref", "HEAD") == "refs/heads/rework"
    assert repos.git("status", "--porcelain", "--untracked-files=no") == ""
    state = repos.state_file("restore", "runs", "rs-ok", "result.env")
    expected = {
        "result": "restored",
        "run_id": "rs-ok",
        "path": "lib",
        "from_ref": pre,
        "from_sha": pre,
        "base": "main",
        "base_sha": main,
        "new_branch": "restore-lib",
        "commit_sha": new,
    }
    assert {k: state[k] for k in expected} == expected
    assert repos.state_file("restore", "last.env") == state
    assert f"new branch 'restore-lib' at {new}" in step_log(repos, "rs-ok", "report")
    assert_no_leftover_worktree(repos)


def test_missing_from_ref_fails_in_preflight(tmp_path: Path) -> None:
    """A FROM_REF that names no commit fails preflight: no branch, state or work tree."""
    repos = make_repos(tmp_path)
    main = repos.sha("main")

    variables = {
        "REPO": str(repos.repo),
        "PATH_SPEC": "app.txt",
        "FROM_REF": "no-such-ref",
        "NEW_BRANCH": "restored",
    }
    result = planrun_run(repos, RESTORE, "rs-missing", variables)

    assert result.returncode == 1, result.stdout + result.stderr
    states = step_states(show(repos, "rs-missing"))
    assert states["preflight"] == "failed"
    assert states["cleanup"] == "succeeded"
    assert {states[s] for s in ("worktree", "restore", "verify", "commit", "report")} == {
        "cancelled"
    }
    assert "FROM_REF 'no-such-ref' is not a commit" in step_log(repos, "rs-missing", "preflight")
    assert repos.git("branch", "--list", "restored") == ""
    assert repos.sha("main") == main
    assert not (repos.repo / ".state").exists()
    assert_no_leftover_worktree(repos)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FROM_REF", "--output=x"),
        ("NEW_BRANCH", "$(touch x)"),
        ("NEW_BRANCH", "-b"),
        ("PATH_SPEC", "../x"),
    ],
)
def test_hostile_input_is_refused(tmp_path: Path, name: str, value: str) -> None:
    """Option-like or malformed inputs are refused by preflight and create nothing."""
    repos = make_repos(tmp_path)
    variables = {
        "REPO": str(repos.repo),
        "PATH_SPEC": "app.txt",
        "FROM_REF": "main",
        "NEW_BRANCH": "restored",
        name: value,
    }

    result = planrun_run(repos, RESTORE, "rs-hostile", variables)

    assert result.returncode == 1, result.stdout + result.stderr
    assert step_states(show(repos, "rs-hostile"))["preflight"] == "failed"
    assert f"restore: {name} '{value}'" in step_log(repos, "rs-hostile", "preflight")
    assert repos.git("for-each-ref", "--format=%(refname)", "refs/heads") == "refs/heads/main"
    assert list(repos.root.rglob("x")) == []
    assert not (repos.repo / ".state").exists()
    assert_no_leftover_worktree(repos)
