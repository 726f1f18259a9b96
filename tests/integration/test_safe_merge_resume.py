"""Resuming a failed safe merge through the real CLI: its ``worktree`` step is marked
``"resume": "ephemeral"`` (cleanup removes the work tree), so a resume after the tests
were fixed creates the work tree again, merges, tests, and lands."""

from __future__ import annotations

from pathlib import Path

from ..acceptance._cli import planrun
from .test_safe_merge import (
    SAFE_MERGE,
    add_feature,
    assert_no_leftover_worktree,
    feature_vars,
    make_repos,
    planrun_run,
    show,
    step_states,
)


def test_resume_of_a_failed_safe_merge_completes_after_the_fix(tmp_path: Path) -> None:
    """TEST_CMD fails while a marker file exists; once it is removed, ``resume`` (which
    ``--explain`` says reruns ``worktree`` because ``test`` reruns) merges and pushes."""
    repos = make_repos(tmp_path)
    feature = add_feature(repos)
    pre = repos.sha("main")
    broken = tmp_path / "broken"
    broken.touch()
    variables = {**feature_vars(repos), "TEST_CMD": f"test ! -e {broken}"}

    failed = planrun_run(repos, SAFE_MERGE, "sm-fix", variables)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert step_states(show(repos, "sm-fix"))["test"] == "failed"
    assert_no_leftover_worktree(repos)  # cleanup removed it
    broken.unlink()

    state = ["--state-dir", str(repos.state)]
    explain = planrun("resume", "sm-fix", "--explain", *state, cwd=repos.root, env=repos.env)
    assert explain.returncode == 0, explain.stderr
    lines = {line.split()[0]: line for line in explain.stdout.splitlines()[1:]}
    assert lines["worktree"].split()[1] == "rerun"
    assert "resume: ephemeral" in lines["worktree"]
    assert "'test'" in lines["worktree"]
    assert lines["merge"].split()[1] == "rerun"
    for reused in ("preflight", "fetch", "record"):
        assert lines[reused].split()[1] == "reuse", lines[reused]

    resumed = planrun(
        "resume", "sm-fix", "--plain", *state, cwd=repos.root, env=repos.env, timeout=60
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    merge = repos.sha("main")
    assert repos.git("rev-list", "--parents", "-n", "1", merge).split() == [merge, pre, feature]
    assert repos.sha("main", where=repos.remote) == merge
    assert repos.state_file("safe_merge", "runs", "sm-fix", "result.env")["result"] == "merged"
    shown = show(repos, "sm-fix")
    states = step_states(shown)
    assert (states["test"], states["push"], states["rollback"]) == (
        "succeeded",
        "succeeded",
        "skipped",
    )
    worktree = next(s for s in shown["steps"] if s["step_id"] == "worktree")
    assert len(worktree["attempts"]) == 2
    assert_no_leftover_worktree(repos)
