"""Variables through the real CLI: undeclared ``--var`` (did-you-mean,
``--allow-undeclared``), every variable problem at once, ``validate`` without values
for required variables, and the ``$${`` hint for shell forms such as ``${X:-y}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli import REPO, clean_env, planrun, sh, write_json

PLANS = sorted((REPO / "plans").glob("*.json"))
SHIPPED = [p for p in PLANS if p.name != "plan.schema.json"]


def _plan(tmp_path: Path, *steps: dict[str, object], **top: object) -> Path:
    return write_json(tmp_path / "plan.json", {"plan_id": "vars", **top, "steps": list(steps)})


def test_undeclared_var_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    """``--var TARGT=x`` is a typo of TARGET: exit 2 before anything is written, naming
    the plan file, the --var and the declared variable it is closest to."""
    plan = _plan(
        tmp_path,
        sh("a", 'echo "$TARGET"'),
        variables={"TARGET": "main", "REMOTE": "origin"},
    )
    state = tmp_path / "state"
    result = planrun("run", plan, "--var", "TARGT=x", "--state-dir", state, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{plan}: --var TARGT: variable 'TARGT' is not declared in the plan" in result.stderr
    assert "did you mean 'TARGET'?" in result.stderr
    assert "--allow-undeclared" in result.stderr
    assert not state.exists()  # nothing half-written


def test_undeclared_var_without_a_close_match_lists_the_declared_ones(tmp_path: Path) -> None:
    """No close match: the hint lists the plan's variables instead."""
    plan = _plan(tmp_path, sh("a", "true"), variables={"TARGET": "main", "REMOTE": "o"})
    result = planrun("validate", plan, "--var", "ZZZ=1", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "the plan's variables are REMOTE, TARGET" in result.stderr


def test_allow_undeclared_lets_the_variable_reach_the_steps_environment(tmp_path: Path) -> None:
    """``--allow-undeclared``: validate and run accept it, and the step sees it."""
    out = tmp_path / "out.txt"
    plan = _plan(tmp_path, sh("a", f'printf %s "$EXTRA" > {out}'))
    checked = planrun("validate", plan, "--var", "EXTRA=1", "--allow-undeclared", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    result = planrun(
        "run", plan, "--var", "EXTRA=hello", "--allow-undeclared", "--plain", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == "hello"


def test_a_variable_the_plan_uses_counts_as_declared(tmp_path: Path) -> None:
    """``${X}`` in the plan with X given by --var alone still works (the format allows it)."""
    out = tmp_path / "out.txt"
    step: dict[str, object] = {
        "id": "a",
        "command": "sh",
        "args": ["-c", f'printf %s "$X" > {out}', "${X}"],
    }
    plan = _plan(tmp_path, step)
    result = planrun("run", plan, "--var", "X=used", "--plain", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == "used"


def test_resume_accepts_the_runs_own_undeclared_variables(tmp_path: Path) -> None:
    """A run started with --allow-undeclared resumes without the flag (its variables
    were accepted then); a new undeclared --var on resume is refused, and the flag
    exists on resume."""
    flag = tmp_path / "ok"
    plan = _plan(tmp_path, sh("a", f'test -e {flag} && test "$EXTRA" = 1'))
    state = tmp_path / "state"
    common = ("--state-dir", state)
    first = planrun(
        "run", plan, "--var", "EXTRA=1", "--allow-undeclared", "--run-id", "r1", "--plain",
        *common, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 1, first.stdout + first.stderr
    typo = planrun("resume", "r1", "--var", "EXTAR=1", *common, cwd=tmp_path)
    assert typo.returncode == 2, typo.stderr
    assert "did you mean 'EXTRA'?" in typo.stderr
    flag.touch()
    resumed = planrun("resume", "r1", "--plain", *common, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    again = planrun(
        "resume", "r1", "--var", "NEW=1", "--allow-undeclared", "--allow-changed", *common,
        cwd=tmp_path,
    )  # fmt: skip
    assert "No such option" not in again.stderr
    assert again.returncode == 0, again.stderr  # nothing to rerun


def test_every_variable_problem_is_reported_at_once(tmp_path: Path) -> None:
    """Two required variables without values, an undeclared one, a malformed name, a
    value that is not UTF-8 and a missing secret: one error, each listed with its
    location and hint."""
    plan = _plan(
        tmp_path,
        sh("a", 'echo "$A $B $C"'),
        variables={"A": None, "B": None, "C": None},
        secrets=["TOKEN_XYZ"],
    )
    result = planrun(
        "run", plan, "--var", "TYPO=1", "--var", "1x=2", "--var", "C=a\udcffb",
        cwd=tmp_path, env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert "invalid plan (6 problems)" in err, err
    for line in (
        f"{plan}: $.variables.A: variable 'A' has no default and no value; pass --var A=...",
        f"{plan}: $.variables.B: variable 'B' has no default and no value; pass --var B=...",
        f"{plan}: --var TYPO: variable 'TYPO' is not declared in the plan;",
        f"{plan}: --var 1x: invalid variable name '1x'; use letters",
        f"{plan}: --var C: variable 'C' is not valid UTF-8",
        f"{plan}: $.secrets[0]: secret 'TOKEN_XYZ' is not set; export TOKEN_XYZ=...",
    ):
        assert line in err, err


def test_every_malformed_var_is_named(tmp_path: Path) -> None:
    """Two ``--var`` without ``=``: both are named in one error."""
    plan = _plan(tmp_path, sh("a", "true"))
    result = planrun("validate", plan, "--var", "one", "--var", "two", cwd=tmp_path)
    assert result.returncode == 2
    assert "got 'one'" in result.stderr
    assert "got 'two'" in result.stderr


@pytest.mark.parametrize("plan", SHIPPED, ids=[p.name for p in SHIPPED])
def test_validate_passes_every_shipped_plan_without_values(plan: Path, tmp_path: Path) -> None:
    """Every plan in plans/ validates with no --var (CI can lint them), with no
    warning; required variables are listed as a note, and nothing is written."""
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid plan" in result.stdout
    assert "warning" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_validate_lists_required_variables_and_run_still_needs_them(tmp_path: Path) -> None:
    """safe_merge.json: validate says BRANCH is required at run time; run without it
    still fails (exit 2) as before; validate --var still checks the values given."""
    plan = REPO / "plans" / "safe_merge.json"
    checked = planrun("validate", plan, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"{plan}: note: required at run time: BRANCH" in checked.stderr
    run = planrun("run", plan, "--dry-run", cwd=tmp_path)
    assert run.returncode == 2
    assert "variable 'BRANCH' has no default and no value" in run.stderr
    given = planrun("validate", plan, "--var", "BRANCH=x", cwd=tmp_path)
    assert given.returncode == 0, given.stderr
    assert "required at run time" not in given.stderr
    bad = planrun("validate", plan, "--var", "BRANCH=a\udcffb", "--var", "BRANH=x", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--var BRANCH: variable 'BRANCH' is not valid UTF-8" in bad.stderr
    assert "did you mean 'BRANCH'?" in bad.stderr


def test_shell_default_form_hints_at_the_escape_and_the_hint_works(tmp_path: Path) -> None:
    """``${X:-default}`` in ``sh -c``: the error says ``$${`` writes a literal ``${``
    and gives the exact form, which then runs with the shell's own expansion."""
    out = tmp_path / "out.txt"
    script = f"printf %s ${{X:-fallback}} > {out}"
    plan = _plan(tmp_path, sh("a", script))
    result = planrun("validate", plan, cwd=tmp_path)
    assert result.returncode == 2
    fixed = f"printf %s $${{X:-fallback}} > {out}"
    assert "invalid variable name 'X:-fallback'" in result.stderr
    assert "'$${' writes a literal '${'" in result.stderr
    assert f'"{fixed}"' in result.stderr, result.stderr
    _plan(tmp_path, sh("a", fixed))
    ran = planrun("run", plan, "--plain", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert out.read_text() == "fallback"
