"""Two safe merges of one repository: the lock keeps them apart (exit 3, or wait)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tests.acceptance._cli import PLANRUN, planrun, wait_until

from .test_safe_merge import PLANS, SAFE_MERGE, Repos, make_repos, planrun_run


def _start(
    repos: Repos, plan: Path, run_id: str, test_cmd: str, branch: str = "feature"
) -> subprocess.Popen[str]:
    args = [
        *PLANRUN,
        "run",
        str(plan),
        "--state-dir",
        str(repos.state),
        "--plain",
        "--run-id",
        run_id,
        "--var",
        f"REPO={repos.repo}",
        "--var",
        f"BRANCH={branch}",
        "--var",
        f"TEST_CMD={test_cmd}",
    ]
    return subprocess.Popen(
        args,
        cwd=repos.root,
        env=repos.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _two_features(repos: Repos) -> None:
    repos.git("switch", "-q", "-c", "feature", "main")
    repos.commit("feature", {"feature.txt": "feature\n"}, "add feature")
    repos.git("switch", "-q", "-c", "other", "main")
    repos.commit("other", {"other.txt": "other\n"}, "add other")


def test_second_safe_merge_exits_3_and_the_first_completes(tmp_path: Path) -> None:
    """While one safe merge runs its tests, a second one on the same repo exits 3 at once
    naming the holder, and the first finishes unharmed."""
    repos = make_repos(tmp_path)
    _two_features(repos)
    marker = tmp_path / "testing"
    first = _start(repos, SAFE_MERGE, "sm-first", f"touch {marker}; sleep 2")
    try:
        assert wait_until(marker.exists, 30)
        began = time.monotonic()
        second = planrun_run(
            repos, SAFE_MERGE, "sm-second", {"REPO": str(repos.repo), "BRANCH": "other"}
        )
        assert second.returncode == 3, second.stdout + second.stderr
        assert time.monotonic() - began < 10
        assert "sm-first" in second.stderr
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    merge = repos.sha("main")
    assert repos.sha("main", where=repos.remote) == merge
    assert repos.git("rev-list", "--parents", "-n", "1", merge).split()[2] == repos.sha("feature")


def test_waiting_safe_merge_runs_after_the_first(tmp_path: Path) -> None:
    """With on_lock_conflict wait, the second merge starts after the first and both land."""
    repos = make_repos(tmp_path)
    _two_features(repos)
    plans = tmp_path / "plans"
    shutil.copytree(PLANS / "safe_merge", plans / "safe_merge")
    shutil.copytree(PLANS / "lib", plans / "lib")
    plan = json.loads(SAFE_MERGE.read_text())
    plan["globals"]["on_lock_conflict"] = "wait"
    waiting = plans / "safe_merge.json"
    waiting.write_text(json.dumps(plan))
    marker = tmp_path / "testing"
    first = _start(repos, waiting, "sm-first", f"touch {marker}; sleep 2")
    try:
        assert wait_until(marker.exists, 30)
        second = _start(repos, waiting, "sm-second", "true", branch="other")
        assert first.wait(timeout=60) == 0
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, out + err
        assert "waiting for lock" in err
    finally:
        first.kill()
    main = repos.sha("main")
    parents = repos.git("rev-list", "--parents", "-n", "1", main).split()
    assert parents[2] == repos.sha("other")
    assert repos.sha("main", where=repos.remote) == main


def test_every_spelling_of_the_repository_is_one_lock(tmp_path: Path) -> None:
    """A safe merge started from the repository with REPO '.' (its own .planrun/) holds
    the lock against merges that spell the repository otherwise — from a subdirectory,
    as an absolute path, through a symlink, from another work tree — each with another
    state dir: every one exits 3 naming the holder, and the first lands."""
    repos = make_repos(tmp_path)
    _two_features(repos)
    (tmp_path / "link").symlink_to(repos.repo)
    linked = tmp_path / "linked-worktree"
    repos.git("worktree", "add", "-q", "--detach", str(linked), "main")
    marker, release = tmp_path / "testing", tmp_path / "release"
    # The first merge holds the lock until the test releases it: a fixed sleep ran out
    # under CI's parallel load before the fifth spelling was tried (it then landed).
    hold = f"touch {marker}; while [ ! -e {release} ]; do sleep 0.05; done"
    first = subprocess.Popen(
        [*PLANRUN, "run", str(SAFE_MERGE), "--plain", "--run-id", "sm-first",
         "--var", "BRANCH=feature", "--var", f"TEST_CMD={hold}"],
        cwd=repos.repo, env=repos.env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert wait_until(marker.exists, 30)
        spellings = [
            (repos.repo / "lib", "."),  # a subdirectory: lib/.planrun would be its store
            (tmp_path, str(repos.repo)),
            (tmp_path, "link"),
            (tmp_path, "link/lib/.."),
            (linked, "."),
        ]
        for n, (cwd, spelling) in enumerate(spellings):
            # The first from the subdirectory uses a store of its own there (lib/.planrun;
            # by default it would find the holder's, repo/.planrun, as git finds .git).
            store = ["--state-dir", str(tmp_path / f"state-{n}") if n else ".planrun"]
            second = planrun(
                "run", SAFE_MERGE, "--run-id", f"sm-second-{n}", *store,
                "--var", f"REPO={spelling}", "--var", "BRANCH=other",
                cwd=cwd, env=repos.env,
            )  # fmt: skip
            assert second.returncode == 3, (spelling, second.stdout + second.stderr)
            assert "lock 'safe-merge' on " in second.stderr
            assert "is held by run sm-first" in second.stderr, second.stderr
            assert f"pid {first.pid}" in second.stderr
            assert str(repos.repo / ".planrun") in second.stderr  # the holder's state dir
        release.touch()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
    finally:
        first.kill()
    merge = repos.sha("main")
    assert repos.sha("main", where=repos.remote) == merge
    assert repos.git("rev-list", "--parents", "-n", "1", merge).split()[2] == repos.sha("feature")
    assert (repos.repo / "lib" / ".planrun" / "runs.db").exists()  # another store
