"""The safe_merge plan (plans/safe_merge.json) run through the real CLI on real git
repositories: a bare repository as the remote and a clone of it as REPO, no network.

The helpers here (``Repos``, ``make_repos``, ``planrun_run``, ``show``, ...) are shared
with test_restore.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..acceptance._cli import clean_env, planrun

PLANS = Path(__file__).resolve().parents[2] / "plans"
SAFE_MERGE = PLANS / "safe_merge.json"

#: Step ids of the safe_merge plan, in plan order.
STEPS = (
    "preflight",
    "fetch",
    "record",
    "worktree",
    "merge",
    "test",
    "fast-forward",
    "push",
    "finish",
    "rollback",
    "cleanup",
)


@dataclass(frozen=True)
class Repos:
    """A test world: ``remote`` (bare), ``repo`` (its clone), a private HOME and TMPDIR,
    and the environment every git and planrun process of the test uses."""

    root: Path
    remote: Path
    repo: Path
    tmpdir: Path
    state: Path
    env: dict[str, str]

    def git(self, *args: str, where: Path | None = None) -> str:
        """Run git in ``where`` (default: the clone) and return its stripped stdout."""
        result = subprocess.run(
            ["git", "-C", str(where or self.repo), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.strip()

    def sha(self, ref: str, where: Path | None = None) -> str:
        """The commit ``ref`` names in ``where`` (default: the clone)."""
        return self.git("rev-parse", "--verify", f"{ref}^{{commit}}", where=where)

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        """Check out ``branch`` in the clone, write ``files``, commit them; the new sha."""
        self.git("switch", "-q", branch)
        for name, text in files.items():
            path = self.repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        self.git("add", "-A", "--", *files)
        self.git("commit", "-q", "-m", message)
        return self.sha("HEAD")

    def worktrees(self) -> list[str]:
        """Paths of every work tree of the clone (its own checkout first)."""
        lines = self.git("worktree", "list", "--porcelain").splitlines()
        return [line.removeprefix("worktree ") for line in lines if line.startswith("worktree ")]

    def state_file(self, plan: str, *parts: str) -> dict[str, str]:
        """A KEY=VALUE state file under REPO/.state/PLAN/, as a dict."""
        text = self.repo.joinpath(".state", plan, *parts).read_text(encoding="utf-8")
        return dict(line.split("=", 1) for line in text.splitlines())


def make_repos(tmp_path: Path) -> Repos:
    """A bare remote with ``main`` (app.txt, lib/util.txt) and a clone of it, with
    ``origin`` pointing at the bare repository and user.name/email set locally."""
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    env = {k: v for k, v in clean_env().items() if not k.startswith("GIT_")}
    env.pop("XDG_CONFIG_HOME", None)
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", TMPDIR=str(tmpdir))
    repos = Repos(
        tmp_path, tmp_path / "remote.git", tmp_path / "repo", tmpdir, tmp_path / "state", env
    )
    seed = tmp_path / "seed"
    repos.git("init", "-q", "-b", "main", str(seed), where=tmp_path)
    repos.git("config", "user.name", "Test", where=seed)
    repos.git("config", "user.email", "test@example.invalid", where=seed)
    (seed / "app.txt").write_text("app v1\n", encoding="utf-8")
    (seed / "lib").mkdir()
    (seed / "lib" / "util.txt").write_text("util v1\n", encoding="utf-8")
    repos.git("add", "-A", where=seed)
    repos.git("commit", "-q", "-m", "initial", where=seed)
    repos.git("init", "-q", "--bare", "-b", "main", str(repos.remote), where=tmp_path)
    repos.git("push", "-q", str(repos.remote), "main", where=seed)
    repos.git("clone", "-q", str(repos.remote), str(repos.repo), where=tmp_path)
    repos.git("config", "user.name", "Test")
    repos.git("config", "user.email", "test@example.invalid")
    return repos


def add_feature(repos: Repos) -> str:
    """Branch ``feature`` off main with one new file, left checked out; its sha."""
    repos.git("switch", "-q", "-c", "feature", "main")
    return repos.commit("feature", {"feature.txt": "feature\n"}, "add feature")


def planrun_run(
    repos: Repos,
    plan: Path,
    run_id: str,
    variables: Mapping[str, str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m planrun run PLAN --var K=V... --state-dir --plain --run-id RUN_ID``."""
    args: list[str] = ["run", str(plan), "--state-dir", str(repos.state), "--plain"]
    args += ["--run-id", run_id]
    for name, value in variables.items():
        args += ["--var", f"{name}={value}"]
    return planrun(*args, cwd=cwd or repos.root, env=env or repos.env, timeout=60)


def feature_vars(repos: Repos) -> dict[str, str]:
    """Variables to safe-merge ``feature`` into main in the clone."""
    return {"REPO": str(repos.repo), "BRANCH": "feature"}


def show(repos: Repos, run_id: str) -> dict[str, Any]:
    """``planrun show RUN_ID --json``: the run, every step, every attempt."""
    result = planrun("show", run_id, "--json", "--state-dir", repos.state, cwd=repos.root)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def step_states(shown: dict[str, Any]) -> dict[str, str]:
    """Step id -> final state, from ``show --json``."""
    return {s["step_id"]: s["state"] for s in shown["steps"]}


def step_log(repos: Repos, run_id: str, step: str) -> str:
    """The output of a step's last attempt (``planrun logs RUN STEP``)."""
    result = planrun("logs", run_id, step, "--state-dir", repos.state, cwd=repos.root)
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_no_leftover_worktree(repos: Repos) -> None:
    """Only the user's checkout is a work tree and the temp dir holds nothing."""
    assert repos.worktrees() == [str(repos.repo)]
    assert list(repos.tmpdir.iterdir()) == []


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    """A remote, its clone, and a ``feature`` branch (checked out) ready to merge."""
    made = make_repos(tmp_path)
    add_feature(made)
    return made


def test_clean_merge(repos: Repos) -> None:
    """A clean merge (REPO defaulting to the current directory) advances main locally and
    on the remote to a two-parent merge tested in the work tree, records it, cleans up."""
    pre, feature = repos.sha("main"), repos.sha("feature")
    seen = repos.root / "seen"
    env = {**repos.env, "SEEN": str(seen)}
    test_cmd = 'test -f feature.txt && git rev-parse HEAD > "$SEEN"'

    variables = {"BRANCH": "feature", "TEST_CMD": test_cmd}  # REPO: the default, "."
    result = planrun_run(repos, SAFE_MERGE, "sm-clean", variables, cwd=repos.repo, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    merge = repos.sha("main")
    assert repos.git("rev-list", "--parents", "-n", "1", merge).split() == [merge, pre, feature]
    assert repos.sha("main", where=repos.remote) == merge
    assert seen.read_text(encoding="utf-8").strip() == merge
    result_env = repos.state_file("safe_merge", "runs", "sm-clean", "result.env")
    expected = {
        "result": "merged",
        "run_id": "sm-clean",
        "target": "main",
        "branch": "feature",
        "remote": "origin",
        "pre_sha": pre,
        "branch_sha": feature,
        "merge_sha": merge,
    }
    assert {k: result_env[k] for k in expected} == expected
    assert result_env["finished_at"].endswith("Z")
    assert repos.state_file("safe_merge", "last_merge.env") == result_env
    assert repos.state_file("safe_merge", "runs", "sm-clean", "record.env")["pre_sha"] == pre
    assert_no_leftover_worktree(repos)
    assert repos.git("symbolic-ref", "HEAD") == "refs/heads/feature"
    assert repos.git("status", "--porcelain", "--untracked-files=no") == ""
    states = step_states(show(repos, "sm-clean"))
    assert states == {s: "skipped" if s == "rollback" else "succeeded" for s in STEPS}


def test_merge_conflict_rolls_back(repos: Repos) -> None:
    """A conflicting merge fails the run; rollback runs and main stays where it was,
    locally and on the remote, and the work tree is removed."""
    repos.commit("feature", {"app.txt": "app from feature\n"}, "feature edits app")
    pre = repos.commit("main", {"app.txt": "app from main\n"}, "main edits app")
    repos.git("push", "-q", "origin", "main")
    repos.git("switch", "-q", "feature")

    result = planrun_run(repos, SAFE_MERGE, "sm-conflict", feature_vars(repos))

    assert result.returncode == 1, result.stdout + result.stderr
    states = step_states(show(repos, "sm-conflict"))
    assert states["merge"] == "failed"
    assert states["rollback"] == "succeeded"
    assert states["cleanup"] == "succeeded"
    assert {states[s] for s in ("test", "fast-forward", "push", "finish")} == {"cancelled"}
    assert "CONFLICT" in step_log(repos, "sm-conflict", "merge")
    assert repos.sha("main") == pre
    assert repos.sha("main", where=repos.remote) == pre
    result_env = repos.state_file("safe_merge", "runs", "sm-conflict", "result.env")
    assert (result_env["result"], result_env["rollback"]) == ("failed", "unchanged")
    assert not (repos.repo / ".state" / "safe_merge" / "last_merge.env").exists()
    assert_no_leftover_worktree(repos)


def test_failing_test_cmd_pushes_nothing(repos: Repos) -> None:
    """When TEST_CMD fails, main is neither moved nor pushed and the work tree goes."""
    pre = repos.sha("main")
    test_cmd = 'echo "2 tests failed" >&2; exit 3'

    variables = {"REPO": str(repos.repo), "BRANCH": "feature", "TEST_CMD": test_cmd}
    result = planrun_run(repos, SAFE_MERGE, "sm-red", variables)

    assert result.returncode == 1, result.stdout + result.stderr
    shown = show(repos, "sm-red")
    test_step = next(s for s in shown["steps"] if s["step_id"] == "test")
    assert (test_step["state"], test_step["exit_code"]) == ("failed", 3)
    states = step_states(shown)
    assert (states["fast-forward"], states["push"]) == ("cancelled", "cancelled")
    assert states["rollback"] == "succeeded"
    assert "2 tests failed" in step_log(repos, "sm-red", "test")
    assert repos.sha("main") == pre
    assert repos.sha("main", where=repos.remote) == pre
    assert_no_leftover_worktree(repos)


def test_rejected_push_restores_target(repos: Repos) -> None:
    """When the remote rejects the push after main was fast-forwarded, rollback moves
    main back to the recorded sha; a rejection (exit 1) is not retried."""
    pre = repos.sha("main")
    hook = repos.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n", encoding="utf-8")
    hook.chmod(0o755)

    result = planrun_run(repos, SAFE_MERGE, "sm-rejected", feature_vars(repos))

    assert result.returncode == 1, result.stdout + result.stderr
    shown = show(repos, "sm-rejected")
    states = step_states(shown)
    assert (states["fast-forward"], states["push"], states["rollback"]) == (
        "succeeded",
        "failed",
        "succeeded",
    )
    push = next(s for s in shown["steps"] if s["step_id"] == "push")
    assert [a["exit_code"] for a in push["attempts"]] == [1]
    assert "pushes are frozen" in step_log(repos, "sm-rejected", "push")
    assert repos.sha("main") == pre
    assert repos.sha("main", where=repos.remote) == pre
    result_env = repos.state_file("safe_merge", "runs", "sm-rejected", "result.env")
    assert (result_env["result"], result_env["rollback"]) == ("failed", "restored")
    assert_no_leftover_worktree(repos)


def test_flaky_fetch_is_retried(repos: Repos) -> None:
    """A fetch that fails twice (the remote's upload-pack, wrapped by
    remote.origin.uploadpack, refuses twice) succeeds on the third attempt."""
    counter = repos.root / "fetch-count"
    wrapper = repos.root / "flaky-upload-pack"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"n=$(cat '{counter}' 2>/dev/null || echo 0)\n"
        "n=$((n + 1))\n"
        f"echo \"$n\" > '{counter}'\n"
        'if [ "$n" -le 2 ]; then echo "flaky: refusing attempt $n" >&2; exit 1; fi\n'
        'exec git upload-pack "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    repos.git("config", "remote.origin.uploadpack", str(wrapper))

    result = planrun_run(repos, SAFE_MERGE, "sm-flaky", feature_vars(repos))

    assert result.returncode == 0, result.stdout + result.stderr
    fetch = next(s for s in show(repos, "sm-flaky")["steps"] if s["step_id"] == "fetch")
    attempts = [(a["attempt"], a["state"], a["exit_code"]) for a in fetch["attempts"]]
    assert attempts == [(1, "failed", 128), (2, "failed", 128), (3, "succeeded", 0)]
    assert fetch["state"] == "succeeded"
    assert counter.read_text(encoding="utf-8").strip() == "3"
    assert repos.sha("main", where=repos.remote) == repos.sha("main")


HOSTILE = [
    ("BRANCH", "--upload-pack=touch x"),
    ("BRANCH", "; touch x"),
    ("BRANCH", "$(touch x)"),
    ("BRANCH", "-b"),
    ("BRANCH", "$(touch${IFS}x)"),  # a valid ref name: refused as a missing branch
    ("TARGET", "--upload-pack=touch x"),
    ("REMOTE", "--upload-pack=touch x"),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE)
def test_hostile_input_is_refused_in_preflight(repos: Repos, name: str, value: str) -> None:
    """A hostile BRANCH, TARGET or REMOTE is refused by preflight: nothing runs after it
    (but cleanup), no state or work tree is created, no file 'x' appears, main stays."""
    pre = repos.sha("main")
    variables = {"REPO": str(repos.repo), "BRANCH": "feature", name: value}

    result = planrun_run(repos, SAFE_MERGE, "sm-hostile", variables)

    assert result.returncode == 1, result.stdout + result.stderr
    states = step_states(show(repos, "sm-hostile"))
    assert states["preflight"] == "failed"
    assert states["rollback"] == "skipped"
    assert states["cleanup"] == "succeeded"
    assert {states[s] for s in STEPS[1:-2]} == {"cancelled"}
    assert f"safe_merge: {name}" in step_log(repos, "sm-hostile", "preflight")
    assert not (repos.repo / ".state").exists()
    assert list(repos.root.rglob("x")) == []
    assert repos.sha("main") == pre
    assert repos.sha("main", where=repos.remote) == pre
    assert_no_leftover_worktree(repos)


def test_checked_out_target_is_refused(tmp_path: Path) -> None:
    """With TARGET checked out in REPO, preflight refuses: moving it with update-ref
    would leave that checkout out of sync."""
    repos = make_repos(tmp_path)
    add_feature(repos)
    repos.git("switch", "-q", "main")
    pre = repos.sha("main")

    result = planrun_run(repos, SAFE_MERGE, "sm-busy", feature_vars(repos))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "'main' is checked out in" in step_log(repos, "sm-busy", "preflight")
    assert repos.sha("main") == pre
    assert not (repos.repo / ".state").exists()
    assert os.listdir(repos.tmpdir) == []


@pytest.mark.parametrize("where", [".", "lib"])
def test_a_safe_merge_leaves_git_status_clean(repos: Repos, where: str) -> None:
    """Run from the repository's top or from a subdirectory with the default store
    (``.planrun/`` there) and REPO '.', a safe merge leaves ``git status --porcelain``
    empty: .planrun/ and .state/ ignore themselves. TEST_CMD gets REPO_DIR (the user's
    repository, absolute) and the summary says what the merge did."""
    cwd = repos.repo / where
    seen = repos.root / "repo-dir"
    test_cmd = f'printf %s "$REPO_DIR" > {seen}; test "$PWD" != "$REPO_DIR"'
    result = planrun(
        "run", SAFE_MERGE, "--plain", "--var", "BRANCH=feature", "--var", f"TEST_CMD={test_cmd}",
        cwd=cwd, env=repos.env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert repos.git("status", "--porcelain", "--ignored=no") == ""
    assert (cwd / ".planrun" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (repos.repo / ".state" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (repos.repo / ".state" / "safe_merge" / "last_merge.env").is_file()
    assert seen.read_text() == str(repos.repo.resolve())
    assert f"finish: merged feature into main: {repos.sha('main^1')} -> " in result.stdout


def test_an_existing_gitignore_is_kept(repos: Repos) -> None:
    """A .gitignore the user already has in .planrun/ or .state/ is never overwritten."""
    for name in (".planrun", ".state"):
        (repos.repo / name).mkdir()
        (repos.repo / name / ".gitignore").write_text("# mine\n*\n")
    result = planrun(
        "run", SAFE_MERGE, "--var", "BRANCH=feature", cwd=repos.repo, env=repos.env, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (".planrun", ".state"):
        assert (repos.repo / name / ".gitignore").read_text() == "# mine\n*\n"


def test_the_summary_says_what_rollback_did(repos: Repos) -> None:
    """A failed merge's run summary has a line from rollback saying what it did to main."""
    pre = repos.sha("main")
    variables = {**feature_vars(repos), "TEST_CMD": "exit 1"}
    result = planrun_run(repos, SAFE_MERGE, "sm-red", variables)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"  rollback: main was not moved (still at {pre}): nothing to restore" in result.stdout


def test_origin_ahead_gives_the_command_that_fixes_it(repos: Repos) -> None:
    """When origin/main has commits main lacks, record fails with the command that
    updates main; after running that very command, the merge goes through."""
    other = repos.root / "other"
    repos.git("clone", "-q", str(repos.remote), str(other), where=repos.root)
    (other / "ahead.txt").write_text("ahead\n")
    repos.git("add", "ahead.txt", where=other)
    repos.git("-c", "user.name=O", "-c", "user.email=o@x.invalid", "commit", "-qm", "ahead",
              where=other)  # fmt: skip
    repos.git("push", "-q", "origin", "main", where=other)

    failed = planrun_run(repos, SAFE_MERGE, "sm-behind", feature_vars(repos))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    log = step_log(repos, "sm-behind", "record")
    top = repos.git("rev-parse", "--show-toplevel")
    command = f"git -C '{top}' fetch 'origin' 'main:main'"
    assert command in log, log
    subprocess.run(command, shell=True, check=True, env=repos.env, capture_output=True)

    again = planrun_run(repos, SAFE_MERGE, "sm-after", feature_vars(repos))
    assert again.returncode == 0, again.stdout + again.stderr
    assert repos.sha("main", where=repos.remote) == repos.sha("main")
    assert repos.git("show", "main:ahead.txt") == "ahead"
