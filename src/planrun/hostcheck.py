"""Would a plan's programs, scripts and working directories be found on this host?

``planrun validate`` (and ``run --dry-run``) warn, before any run, about a step whose
program is not on the ``PATH`` the step would get, whose program or script path does
not exist, or whose ``cwd`` does not exist. These are warnings, never errors: the run
may happen on another host, or an earlier step may create what is missing.

Only values fully known before the run are checked: a field that still holds a step
reference (``${steps.ID...}``), a variable without a value or a secret is skipped. The
paths are resolved as the executor resolves them: ``cwd`` against the plan's
directory; a program or script with a slash against the step's working directory
(planrun's own when the step has none); a program without one through ``PATH`` (the
step's, if its ``env`` or a variable sets one). This module reads the file system; the
pure core (:mod:`planrun.plan`) does not.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from . import subst
from .errors import Problem
from .model import Plan, Step

__all__ = ["check_host"]

_STEP_PATH = re.compile(r"\$\.steps\[(\d+)\]")

#: Interpreters whose first operand is a script file (``sh x.sh``, ``python3 x.py``),
#: with the short options after which no operand is one (the code is inline, as in
#: ``sh -ec CODE``, or a module, as in ``python -m MOD``).
_INTERPRETERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:sh|bash|dash|zsh|ksh|ash|mksh)"), "c"),
    (re.compile(r"(?:python|pypy)[0-9.]*"), "cm"),
    (re.compile(r"(?:node|ruby|perl)"), "eEp"),
)
#: Long options and operands after which no operand names a script file.
_NO_SCRIPT = frozenset({"--eval", "--print", "--command", "--", "-"})


@dataclass(frozen=True, slots=True)
class _Context:
    """What a step's paths are resolved against."""

    values: Mapping[str, str]
    base: Path
    here: Path
    environ: Mapping[str, str]


def check_host(
    plan: Plan,
    values: Mapping[str, str],
    base_dir: Path | None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[Problem]:
    """Warnings (``Problem(warning=True)``) for programs, scripts and working
    directories that would not be found on this host.

    ``values`` are the variables known now (a template using any other name is
    skipped); ``base_dir`` the plan's directory (default ``cwd``); ``environ`` the
    environment planrun runs in (default ``os.environ``); ``cwd`` planrun's working
    directory (default the current one), where a step without ``cwd`` runs.
    """
    here = cwd if cwd is not None else Path.cwd()
    ctx = _Context(values, base_dir or here, here, os.environ if environ is None else environ)
    problems = _check_cwds(plan, ctx)
    for i, step in enumerate(plan.steps):
        problems += _check_step(plan, i, step, ctx)
    return sorted(problems, key=_step_order)


def _step_order(problem: Problem) -> int:
    """Top-level problems first, then by step position (stable otherwise)."""
    found = _STEP_PATH.match(problem.path)
    return int(found[1]) if found else -1


def _known(template: str, values: Mapping[str, str]) -> str | None:
    """``template`` with its variables filled in, or None when it is not known yet
    (a step reference, a variable without a value, a secret, a malformed template)."""
    try:
        pieces = subst.partial(template, values)
    except (KeyError, subst.SubstError):
        return None
    return pieces[0] if len(pieces) == 1 and isinstance(pieces[0], str) else None


def _cwd_of(plan: Plan, step: Step) -> tuple[str, str | None]:
    """The JSON path of the step's working directory template, and the template."""
    if step.cwd is not None:
        return "", step.cwd
    return "$.globals.cwd", plan.globals.cwd


def _step_cwd(plan: Plan, step: Step, ctx: _Context) -> Path | None:
    """The directory the step runs in, or None when it is not known before the run."""
    _, template = _cwd_of(plan, step)
    if template is None:
        return ctx.here
    text = _known(template, ctx.values)
    return ctx.base / text if text is not None else None


def _check_cwds(plan: Plan, ctx: _Context) -> list[Problem]:
    """A working directory that does not exist: once for ``globals.cwd`` (naming the
    steps that use it), once per step for a step's own ``cwd``."""
    users: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for i, step in enumerate(plan.steps):
        where, template = _cwd_of(plan, step)
        if template is None:
            continue
        directory = _step_cwd(plan, step, ctx)
        if directory is None or directory.is_dir():
            continue
        if where:
            users.setdefault(str(directory), []).append(step.id)
            continue
        problems.append(_missing_dir(f"$.steps[{i}].cwd", directory, step.id))
    for shared, ids in users.items():
        problem = _missing_dir("$.globals.cwd", Path(shared), None)
        used = f" (the working directory of step{'s' if len(ids) > 1 else ''} {', '.join(ids)})"
        problems.append(Problem(problem.path, problem.message + used, None, problem.hint, True))
    return problems


def _missing_dir(path: str, directory: Path, step_id: str | None) -> Problem:
    what = "is not a directory" if directory.exists() else "does not exist"
    return Problem(
        path,
        f"working directory '{directory}' {what} on this host",
        step_id,
        "create it before the run, or fix 'cwd' (a relative cwd is taken from the "
        "plan's directory)",
        warning=True,
    )


def _check_step(plan: Plan, i: int, step: Step, ctx: _Context) -> list[Problem]:
    """The step's program, and the script its interpreter would read."""
    if step.command is None:  # a ``uses`` step: its plan is checked by validation
        return []
    program = _known(step.command, ctx.values)
    if not program:
        return []
    cwd = _step_cwd(plan, step, ctx)
    problems: list[Problem] = []
    found = _program_problem(plan, f"$.steps[{i}].command", step, program, cwd, ctx)
    if found is not None:
        problems.append(found)
    inline = _inline_options(program)
    if inline is not None:
        script = _script(step, ctx.values, inline)
        if script is not None and cwd is not None and not (cwd / script[1]).exists():
            problems.append(
                Problem(
                    f"$.steps[{i}].args[{script[0]}]",
                    f"script '{cwd / script[1]}' does not exist on this host",
                    step.id,
                    "fix the path: a relative one is taken from the step's working "
                    "directory; write ${PLAN_DIR}/... for a file beside the plan",
                    warning=True,
                )
            )
    return problems


def _program_problem(
    plan: Plan, path: str, step: Step, program: str, cwd: Path | None, ctx: _Context
) -> Problem | None:
    """Why ``program`` would not start, if it would not (None: fine, or not known)."""
    if "/" not in program:
        search, own = _step_path(plan, step, ctx)
        if search is None or shutil.which(program, path=search) is not None:
            return None
        which = f"on the step's PATH ({search})" if own else "on PATH"
        return Problem(
            path,
            f"program '{program}' is not {which} on this host",
            step.id,
            "install it, give its full path, or set PATH in the step's env",
            warning=True,
        )
    if cwd is None:
        return None
    full = cwd / program
    if not full.exists():
        message = f"program '{full}' does not exist on this host"
    elif full.is_dir() or not os.access(full, os.X_OK):
        message = f"program '{full}' is not an executable file"
    else:
        return None
    hint = "fix the path (a relative one is taken from the step's working directory)"
    return Problem(path, message, step.id, hint, warning=True)


def _step_path(plan: Plan, step: Step, ctx: _Context) -> tuple[str | None, bool]:
    """The ``PATH`` the step would be started with (None: not known before the run),
    and whether the plan sets it (else it is planrun's own).

    As the executor builds it: planrun's environment, then ``globals.env``, the step's
    ``env``, then the variables (the later wins).
    """
    if "PATH" in ctx.values:
        return ctx.values["PATH"], True
    for env in (step.env, plan.globals.env):
        if "PATH" in env:
            return _known(env["PATH"], ctx.values), True
    return ctx.environ.get("PATH", os.defpath), False


def _inline_options(program: str) -> str | None:
    """The short options that make ``program`` take inline code (None: it is not an
    interpreter that reads a script file)."""
    name = os.path.basename(program)
    return next((letters for kind, letters in _INTERPRETERS if kind.fullmatch(name)), None)


def _script(step: Step, values: Mapping[str, str], inline: str) -> tuple[int, str] | None:
    """The script operand of an interpreter command (its index in ``args`` and its
    value) when it is a known path with a slash; None otherwise."""
    for j, template in enumerate(step.args):
        short = template[:1] == "-" and template[1:2] != "-"
        if template in _NO_SCRIPT or (short and any(c in inline for c in template[1:])):
            return None
        if template.startswith(("-", "+")):
            continue
        text = _known(template, values)
        return (j, text) if text is not None and "/" in text else None
    return None
