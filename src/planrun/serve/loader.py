"""Which plans ``serve`` serves: each file given, and every plan with triggers in
each directory given; loading one validates and prepares it (a bad one is an error
that names the file and JSON path)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PlanError, PlanrunError, Problem, UsageError
from ..model import Plan
from ..prepare import PreparedRun, prepare

__all__ = ["PLAN_SUFFIXES", "LoadedPlan", "load_plan_file", "plan_files"]

PLAN_SUFFIXES = (".json", ".yaml", ".yml", ".toml")


@dataclass(frozen=True)
class LoadedPlan:
    """A plan ``serve`` fires: its file, the prepared run (its last good version)
    and a digest of the file's bytes (a reload restarts only plans that changed)."""

    path: Path
    prepared: PreparedRun
    digest: str

    @property
    def plan_key(self) -> str:
        """The key of its triggers' stored state: the plan id."""
        return self.prepared.plan.plan_id

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def plan_files(targets: Sequence[Path]) -> list[tuple[Path, bool]]:
    """(file, given by name) for each target: a file as given, a directory's plan
    files (by suffix, not recursive, sorted)."""
    found: list[tuple[Path, bool]] = []
    for target in targets:
        if target.is_dir():
            files = sorted(p for p in target.iterdir() if p.suffix in PLAN_SUFFIXES)
            found += [(p.resolve(), False) for p in files if p.is_file()]
        else:
            found.append((target.resolve(), True))
    return found


def load_plan_file(path: Path) -> LoadedPlan:
    """Validate and prepare ``path`` (raises ``PlanError``, or another
    ``PlanrunError`` for a missing variable or secret)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    prepared = prepare(path)
    problems = host_problems(prepared.plan, path.parent)
    if problems:
        raise PlanError(problems, str(path))
    return LoadedPlan(path, prepared, hashlib.sha256(data).hexdigest())


def host_problems(plan: Plan, base_dir: Path) -> list[Problem]:
    """What this host lacks for the plan's triggers: a watched directory or a git
    repository that is not there (the plan itself may be valid elsewhere)."""
    problems = []
    for index, trigger in enumerate(plan.triggers):
        at = f"$.triggers[{index}]"
        if trigger.watch is not None:
            root = base_dir / (trigger.cwd or ".")
            if not root.is_dir():
                problems.append(
                    Problem(
                        f"{at}.cwd",
                        f"the watched directory {root} does not exist",
                        hint="create it, or fix 'cwd'",
                    )
                )
        if trigger.git is not None:
            repo = base_dir / trigger.git.repo
            if not repo.is_dir():
                problems.append(
                    Problem(
                        f"{at}.git.repo",
                        f"the repository {repo} does not exist",
                        hint="'repo' is relative to the plan's directory",
                    )
                )
    return problems


def describe_error(exc: PlanrunError) -> str:
    """The first two problems of a ``PlanError`` on one line, or the error's message."""
    if isinstance(exc, PlanError):
        errors = [p.render(exc.source) for p in exc.problems if not p.warning]
        more = f" (and {len(errors) - 2} more problems)" if len(errors) > 2 else ""
        return "; ".join(errors[:2]) + more
    return str(exc)
