"""The public API is what ``planrun/__init__.py`` re-exports, and ``__all__`` says so."""

from __future__ import annotations

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
