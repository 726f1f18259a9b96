"""Embedding planrun in a typed service (issue 13, item 10): the package is typed for
a user's ``mypy --strict`` (``py.typed``), ``run_plan`` says which variable is not a
string, and the result types say what each field is."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import planrun
from planrun import AttemptResult, StepResult, UsageError

PLAN = {"plan_id": "p", "steps": [{"id": "a", "command": "true"}]}


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"variables": {"N": 3}}, "variable 'N' is an int, not a string"),
        ({"variables": {"OK": "1", "F": 1.5}}, "variable 'F' is a float, not a string"),
        ({"variables": {7: "x"}}, "variable name 7 is an int, not a string"),
        ({"secrets": {"TOKEN": 123456}}, "secret 'TOKEN' is an int, not a string"),
    ],
)
def test_run_plan_names_a_variable_that_is_not_a_string(
    tmp_path: Path, given: dict[str, Any], words: str
) -> None:
    """A UsageError naming the variable (not a raw TypeError); nothing is written."""
    state = tmp_path / "state"

    async def run() -> None:
        await planrun.run_plan(PLAN, state_dir=state, **given)

    with pytest.raises(UsageError) as caught:
        anyio.run(run)
    assert words in str(caught.value)
    assert "123456" not in str(caught.value)  # a secret's value is never shown
    assert not state.exists()


def test_run_plan_options_variables_are_checked_too(tmp_path: Path) -> None:
    options = planrun.RunOptions(state_dir=tmp_path / "state", variables={"N": 3})  # type: ignore[dict-item]

    async def run() -> None:
        await planrun.run_plan(PLAN, options=options)

    with pytest.raises(UsageError, match="variable 'N' is an int"):
        anyio.run(run)


def test_result_fields_are_documented() -> None:
    """Every field of StepResult and AttemptResult has a docstring (what it holds)."""
    for cls in (StepResult, AttemptResult):
        assert cls.__doc__
        source = Path(sys.modules[cls.__module__].__file__ or "").read_text()
        body = source.split(f"class {cls.__name__}(", 1)[1].split("\nclass ", 1)[0]
        for field in msgspec.structs.fields(cls):
            after = body.split(f"\n    {field.name}: ", 1)[1].split("\n", 1)[1]
            assert after.lstrip().startswith('"""'), f"{cls.__name__}.{field.name}"


USER_CODE = """
    import anyio
    import planrun
    from planrun import AttemptResult, RunResult, StepResult


    async def main() -> int:
        result: RunResult = await planrun.run_plan(
            {"plan_id": "x", "steps": [{"id": "a", "command": "true"}]}, {"N": "3"}
        )
        step: StepResult = result.steps["a"]
        attempt: AttemptResult = step.attempts[-1]
        code: int | None = attempt.exit_code
        return result.exit_code if code is None else code


    print(anyio.run(main))
"""


def test_a_users_mypy_strict_sees_planrun_typed(tmp_path: Path) -> None:
    """``mypy --strict`` of a user's file importing the installed planrun passes (no
    "missing library stubs or py.typed marker"), and catches a wrong variable type."""
    pytest.importorskip("mypy", reason="mypy is installed by the nox tests session")
    good = tmp_path / "service.py"
    good.write_text(textwrap.dedent(USER_CODE))
    bad = tmp_path / "wrong.py"
    bad.write_text(textwrap.dedent(USER_CODE).replace('{"N": "3"}', '{"N": 3}'))

    def mypy(path: Path) -> subprocess.CompletedProcess[str]:
        # From the temp dir: the project's own mypy settings (mypy_path = src) do not
        # apply; planrun is found where it is installed, as for any user.
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "c"), path],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    checked = mypy(good)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "py.typed" not in checked.stdout
    wrong = mypy(bad)
    assert wrong.returncode == 1, wrong.stdout
    assert "[dict-item]" in wrong.stdout or "[arg-type]" in wrong.stdout, wrong.stdout
