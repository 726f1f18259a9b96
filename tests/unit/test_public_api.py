"""The public API is what ``planrun/__init__.py`` re-exports, and ``__all__`` says so."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import planrun


def test_all_names_exist() -> None:
    """Every name in ``__all__`` is an attribute of the package."""
    missing = [name for name in planrun.__all__ if not hasattr(planrun, name)]
    assert missing == []


def test_all_is_complete() -> None:
    """Every public attribute defined by planrun (not a submodule) is listed in ``__all__``."""
    public = {
        name
        for name, value in vars(planrun).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("planrun")
    }
    assert public - set(planrun.__all__) == set()


def test_entry_points_are_exported() -> None:
    """The embedding entry points named in the README are importable from the package."""
    from planrun import PlanError, RunResult, load_plan, run_plan

    assert callable(run_plan)
    assert callable(load_plan)
    assert issubclass(PlanError, planrun.PlanrunError)
    assert RunResult.__name__ == "RunResult"


PUBLIC_SUBMODULES = ["planrun.monitor", "planrun.testing"]


@pytest.mark.parametrize("name", PUBLIC_SUBMODULES)
def test_public_submodules_export_what_they_define(name: str) -> None:
    """A public submodule's ``__all__`` names exist, and list every public class or
    function it defines."""
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert {n for n in exported if not hasattr(module, n)} == set()
    defined = {
        n
        for n, value in vars(module).items()
        if not n.startswith("_") and getattr(value, "__module__", None) == name
    }
    assert defined - exported == set()


def test_testing_is_documented_for_users() -> None:
    """The scripted executor is public: named in the README's testing section."""
    from planrun.testing import ScriptedExecutor

    assert ScriptedExecutor.__doc__
    readme = Path(planrun.__file__).parents[2] / "README.md"
    assert "planrun.testing" in readme.read_text()
