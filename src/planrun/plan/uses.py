"""The rules of sub-plans: a step with ``"uses": "child.json"`` runs that plan as a
child run instead of a command.

:func:`check_uses_fields` is pure: a step has exactly one of ``command`` and ``uses``;
a ``uses`` step takes no process fields (``args``, ``env``, ...); ``with`` and
``secrets`` belong to ``uses`` steps; ``secrets`` names the parent's secrets; no
secret goes through ``with`` (a variable is stored in clear).

:func:`check_children` reads the child plans (through the ``validate`` it is given, the
plan package's one way to read a file) and checks each with the step's ``with`` values
and secret names: its problems are reported under the parent step's ``uses``, naming
the child file; a ``with`` key the child does not declare, a child secret the step does
not pass, and a cycle of ``uses`` (``a.json -> b.json -> a.json``) are errors.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import subst
from ..errors import PlanError, Problem
from ..model import Plan, Step
from .checks import Indexed, Template
from .text import shown

__all__ = ["MAX_USES_DEPTH", "check_children", "check_uses_fields", "child_path"]

#: How deep ``uses`` may nest (a plan using a plan using a plan ...).
MAX_USES_DEPTH = 16

#: The fields a ``uses`` step does not take (it starts no process of its own), with
#: how each is told apart from its default.
_PROCESS_FIELDS: tuple[tuple[str, Callable[[Step], bool]], ...] = (
    ("args", lambda s: bool(s.args)),
    ("env", lambda s: bool(s.env)),
    ("cwd", lambda s: s.cwd is not None),
    ("success_exit_codes", lambda s: list(s.success_exit_codes) != [0]),
    ("retry_on_exit_codes", lambda s: s.retry_on_exit_codes is not None),
    ("skip_exit_codes", lambda s: bool(s.skip_exit_codes)),
    ("stop_signal", lambda s: s.stop_signal is not None),
    ("max_log_bytes", lambda s: s.max_log_bytes is not None),
)


def check_uses_fields(
    plan: Plan, indexed: Indexed, parsed: Sequence[Template], secrets: Collection[str] = ()
) -> list[Problem]:
    """The structural rules of ``command``/``uses``/``with``/``secrets`` (pure)."""
    secret_names = set(plan.secrets) | set(secrets)
    problems: list[Problem] = []
    for i, step in indexed:
        plain = step.uses is None and step.command is not None
        if plain and not step.with_ and not step.pass_secrets:
            continue  # the common case: a plain command step
        problems += _one_of(i, step)
        if step.uses is None:
            for name, given in (("with", bool(step.with_)), ("secrets", bool(step.pass_secrets))):
                if given:
                    problems.append(
                        Problem(
                            f"$.steps[{i}].{name}",
                            f"'{name}' is only for a step with 'uses'",
                            step.id,
                            "remove it, or run a plan with 'uses'",
                        )
                    )
            continue
        problems += _process_fields(i, step)
        problems += _passed_secrets(i, step, secret_names)
    return problems + _template_rules(parsed, secret_names)


def _one_of(i: int, step: Step) -> list[Problem]:
    if step.command is None and step.uses is None:
        return [
            Problem(
                f"$.steps[{i}]",
                "missing required field 'command'",
                step.id,
                "add 'command' (a program to run), or 'uses' (a plan to run as a child run)",
            )
        ]
    if step.command is not None and step.uses is not None:
        return [
            Problem(
                f"$.steps[{i}].uses",
                "a step has either 'command' or 'uses', not both",
                step.id,
                "split it into two steps",
            )
        ]
    return []


def _process_fields(i: int, step: Step) -> list[Problem]:
    return [
        Problem(
            f"$.steps[{i}].{name}",
            f"'{name}' does not apply to a 'uses' step (it starts no process itself)",
            step.id,
            "pass values to the child plan with 'with'"
            if name in ("args", "env")
            else "set it on the child plan's steps",
        )
        for name, is_set in _PROCESS_FIELDS
        if is_set(step)
    ]


def _passed_secrets(i: int, step: Step, secret_names: Collection[str]) -> list[Problem]:
    return [
        Problem(
            f"$.steps[{i}].secrets[{j}]",
            f"'{name}' is not a secret of this plan",
            step.id,
            "name one of the plan's 'secrets' (a child run gets only the secrets named here)",
        )
        for j, name in enumerate(step.pass_secrets)
        if name not in secret_names
    ]


def _template_rules(parsed: Sequence[Template], secret_names: Collection[str]) -> list[Problem]:
    """``uses`` takes variables only; ``with`` takes no secret."""
    problems: list[Problem] = []
    for template in parsed:
        if template.path.endswith(".uses"):
            late = [n for n in template.names if n == "item" or n.startswith(("item.", "matrix."))]
            if template.refs or late:
                what = template.refs[0].text if template.refs else "${" + late[0] + "}"
                problems.append(
                    Problem(
                        template.path,
                        f"'uses' cannot hold {what}: the child plan must be known before the "
                        "run starts",
                        template.step_id,
                        "use variables only in 'uses'; pass values in 'with'",
                    )
                )
        elif ".with." in template.path:
            secret = next((n for n in template.names if n in secret_names), None)
            if secret is not None:
                problems.append(
                    Problem(
                        template.path,
                        f"secret '{secret}' cannot be passed in 'with' (the child stores its "
                        "variables in clear)",
                        template.step_id,
                        f'name it in the step\'s "secrets": ["{secret}"] instead',
                    )
                )
    return problems


def child_path(template: str, values: Mapping[str, str], base_dir: Path | None) -> Path | None:
    """The child plan file of ``uses`` ``template``: variables filled in, relative to
    the plan's directory, resolved; None if a variable has no value here."""
    try:
        text = subst.substitute(template, values)
    except (ValueError, KeyError):  # SubstError is a ValueError
        return None
    return ((base_dir or Path.cwd()) / text).resolve()


#: ``validate`` as :func:`check_children` calls it for a child: (path, with values,
#: secret names, uses chain) -> its Validation (or the PlanError it raises).
ChildValidate = Callable[[Path, dict[str, str], list[str], tuple[Path, ...]], Any]


def check_children(
    plan: Plan,
    indexed: Indexed,
    values: Mapping[str, str],
    base_dir: Path | None,
    chain: tuple[Path, ...],
    validate_child: ChildValidate,
) -> list[Problem]:
    """Validate the plan of every ``uses`` step (see the module docstring). Every
    variable the child requires must be in ``with`` (it is known when the plan is
    written), whether or not the parent's own values are required yet.

    ``values`` are the variables known now (defaults, given ones, ``PLAN_DIR``),
    ``chain`` the plan files that led here, outermost first (this one last).
    """
    problems: list[Problem] = []
    for i, step in indexed:
        if step.uses is None:
            continue
        where = f"$.steps[{i}].uses"
        path = child_path(step.uses, values, base_dir)
        if path is None:
            continue  # a variable without a value yet: checked when the run starts
        if path in chain:
            loop = [*chain[chain.index(path) :], path]
            problems.append(
                Problem(
                    where,
                    "uses cycle: " + " -> ".join(_name(p, base_dir) for p in loop),
                    step.id,
                    "a plan cannot run itself as a child, directly or through others",
                )
            )
            continue
        if len(chain) >= MAX_USES_DEPTH:
            problems.append(
                Problem(where, f"'uses' nested deeper than {MAX_USES_DEPTH} plans", step.id)
            )
            continue
        problems += _child_problems(i, step, path, chain, validate_child, base_dir)
    return problems


def _child_problems(
    i: int,
    step: Step,
    path: Path,
    chain: tuple[Path, ...],
    validate_child: ChildValidate,
    base_dir: Path | None,
) -> list[Problem]:
    """The child's problems, reported under the step's ``uses`` with the child's name
    and location; then the child's secrets this step does not pass."""
    name = _name(path, base_dir)
    child: Plan | None = None
    try:
        validation = validate_child(path, dict(step.with_), list(step.pass_secrets), (*chain, path))
    except PlanError as exc:
        found: Sequence[Problem] = exc.problems
    else:
        found, child = validation.problems, validation.plan
    wrapped = [_wrapped(i, step, name, p) for p in found]
    return wrapped + (_unpassed(i, step, child, name) if child is not None else [])


def _wrapped(i: int, step: Step, name: str, problem: Problem) -> Problem:
    """A problem of the child plan ``name`` as a problem of the parent's step: under
    its ``uses``, or its ``with.KEY`` for a given value (``--var KEY`` to the child)."""
    where, message = f"$.steps[{i}].uses", f"{name}: {problem.path}: {problem.message}"
    if problem.path == "$":
        message = f"{name}: {problem.message}"
    elif problem.path.startswith("--var "):
        where = f"$.steps[{i}].with.{problem.path[len('--var ') :]}"
        message = f"{name}: {problem.message}"
    hint = problem.hint
    if hint is not None:  # the child's advice for the command line, worded for 'with'
        hint = hint.split("; or pass --allow-undeclared")[0]
        hint = hint.replace("pass --var ", "add to 'with': ").replace("--var", "'with'")
    return Problem(where, message, step.id, hint, warning=problem.warning)


def _unpassed(i: int, step: Step, child: Plan, name: str) -> list[Problem]:
    """The child's own secrets that the step does not pass (a child never reads
    secrets from the environment: it gets only what the parent names)."""
    return [
        Problem(
            f"$.steps[{i}].secrets",
            f"{name} needs secret '{secret}', which this step does not pass",
            step.id,
            f'add "{secret}" to the step\'s "secrets" (and to the plan\'s)',
        )
        for secret in child.secrets
        if secret not in step.pass_secrets
    ]


def _name(path: Path, base_dir: Path | None) -> str:
    """``path`` as short as it can be said: relative to the plan's directory if inside."""
    if base_dir is not None:
        try:
            return shown(str(path.relative_to(base_dir.resolve())), 300)
        except ValueError:
            pass
    return shown(str(path), 300)
