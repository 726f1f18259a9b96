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

import functools
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import msgspec

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


class _Context(msgspec.Struct, frozen=True):
    """What a step's paths are resolved against."""

    values: Mapping[str, str]
    base: Path
    here: Path
    environ: Mapping[str, str]
    #: Answers already looked up, so that a plan of 100,000 steps running a handful
    #: of programs asks the file system a handful of times: template -> its text,
    #: (program, PATH) -> found, path -> its kind (see :func:`_kind`).
    known: dict[str, str | None] = msgspec.field(default_factory=dict)
    found: dict[tuple[str, str], bool] = msgspec.field(default_factory=dict)
    kinds: dict[Path, str] = msgspec.field(default_factory=dict)
    #: (program, step cwd, step PATH) -> why it would not start (see _check_step).
    programs: dict[tuple[str, str | None, str | None], tuple[str, str] | None] = msgspec.field(
        default_factory=dict
    )


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


def _known_in(template: str, ctx: _Context) -> str | None:
    """:func:`_known`, remembered per template."""
    if template not in ctx.known:
        literal = template and "$" not in template
        ctx.known[template] = template if literal else _known(template, ctx.values)
    return ctx.known[template]


def _kind(path: Path, ctx: _Context) -> str:
    """What ``path`` is, remembered: ``dir``, ``exec`` (an executable file), ``file``
    or ``missing``."""
    if path not in ctx.kinds:
        if path.is_dir():
            kind = "dir"
        elif not path.exists():
            kind = "missing"
        else:
            kind = "exec" if os.access(path, os.X_OK) else "file"
        ctx.kinds[path] = kind
    return ctx.kinds[path]


def _on_path(program: str, search: str, ctx: _Context) -> bool:
    """Whether ``program`` is found on ``search``, remembered."""
    key = (program, search)
    if key not in ctx.found:
        ctx.found[key] = shutil.which(program, path=search) is not None
    return ctx.found[key]


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
    text = _known_in(template, ctx)
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
        if directory is None or _kind(directory, ctx) == "dir":
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
    program = _known_in(step.command, ctx)
    if not program:
        return []
    problems: list[Problem] = []
    # What decides the answer: the program, the step's cwd and PATH (the plan's are
    # the same for every step). Steps alike share one look-up.
    key = (program, step.cwd, step.env.get("PATH"))
    if key not in ctx.programs:
        ctx.programs[key] = _program_problem(plan, step, program, _step_cwd(plan, step, ctx), ctx)
    found = ctx.programs[key]
    if found is not None:
        message, hint = found
        problems.append(Problem(f"$.steps[{i}].command", message, step.id, hint, warning=True))
    inline = _inline_options(program)
    if inline is not None:
        cwd = _step_cwd(plan, step, ctx)
        script = _script(step, ctx, inline)
        if script is not None and cwd is not None and _kind(cwd / script[1], ctx) == "missing":
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
    plan: Plan, step: Step, program: str, cwd: Path | None, ctx: _Context
) -> tuple[str, str] | None:
    """Why ``program`` would not start (message, hint), if it would not (None: fine,
    or not known)."""
    if "/" not in program:
        search, own = _step_path(plan, step, ctx)
        if search is None or _on_path(program, search, ctx):
            return None
        which = f"on the step's PATH ({search})" if own else "on PATH"
        return (
            f"program '{program}' is not {which} on this host",
            "install it, give its full path, or set PATH in the step's env",
        )
    if cwd is None:
        return None
    full = cwd / program
    kind = _kind(full, ctx)
    if kind == "missing":
        message = f"program '{full}' does not exist on this host"
    elif kind != "exec":
        message = f"program '{full}' is not an executable file"
    else:
        return None
    return message, "fix the path (a relative one is taken from the step's working directory)"


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
            return _known_in(env["PATH"], ctx), True
    return ctx.environ.get("PATH", os.defpath), False


@functools.lru_cache(maxsize=256)
def _inline_options(program: str) -> str | None:
    """The short options that make ``program`` take inline code (None: it is not an
    interpreter that reads a script file). Cached: the same few programs, per step."""
    name = os.path.basename(program)
    return next((letters for kind, letters in _INTERPRETERS if kind.fullmatch(name)), None)


def _script(step: Step, ctx: _Context, inline: str) -> tuple[int, str] | None:
    """The script operand of an interpreter command (its index in ``args`` and its
    value) when it is a known path with a slash; None otherwise."""
    for j, template in enumerate(step.args):
        short = template[:1] == "-" and template[1:2] != "-"
        if template in _NO_SCRIPT or (short and any(c in inline for c in template[1:])):
            return None
        if template.startswith(("-", "+")):
            continue
        text = _known_in(template, ctx)
        return (j, text) if text is not None and "/" in text else None
    return None
