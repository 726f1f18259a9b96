"""The checks of a decoded plan: ids and dependencies, values, step references.

Each check returns the problems it found (empty when none) and never raises; the
variable and secret rules are in :mod:`.variables`. Every template (a string that
takes ``${...}``) is parsed once, into a :class:`Template`, and the rules share it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import cast

import msgspec

from .. import graph, subst
from ..errors import Problem
from ..model import VAR_NAME_PATTERN, Plan, Step
from .text import shown

__all__ = [
    "BUILTIN_VARIABLES",
    "VAR_NAME",
    "Indexed",
    "Template",
    "check_conditions",
    "check_graph",
    "check_instance_names",
    "check_values",
    "check_step_refs",
    "condition_uses",
    "envs",
    "parsed_templates",
    "templates",
]

#: Variables planrun defines itself (they may not be declared or passed).
BUILTIN_VARIABLES = ("PLAN_DIR",)
VAR_NAME = re.compile(VAR_NAME_PATTERN)

#: The steps that decoded, with their position in ``steps``.
Indexed = Sequence[tuple[int, Step]]


class Template(msgspec.Struct, frozen=True):
    """A string that takes ``${...}`` and holds a ``$``: where it is and what it uses."""

    path: str
    #: The step it belongs to (None: it is in ``globals``).
    step_id: str | None
    #: The variables it refers to, in order, repeats kept.
    names: tuple[str, ...]
    #: The step references it holds, in order, repeats kept.
    refs: tuple[subst.StepRef, ...]
    #: Why it is malformed (then ``names`` and ``refs`` are empty), else None.
    error: str | None = None
    #: The string itself.
    text: str = ""


# --- templates -----------------------------------------------------------------------


def templates(
    plan: Plan, indexed: Indexed, having: str = ""
) -> Iterator[tuple[str, str | None, str]]:
    """Every string that takes ``${...}`` (only those holding ``having``, when given):
    (path, step id, template). The filter comes first: a plan of 100,000 steps builds
    the paths of the few strings that matter only."""
    for key, value in plan.globals.env.items():
        if having in value:
            yield f"$.globals.env.{key}", None, value
    if plan.globals.cwd is not None and having in plan.globals.cwd:
        yield "$.globals.cwd", None, plan.globals.cwd
    for path, template in plan.globals.lock_templates():
        if having in template:
            yield path, None, template
    for i, step in indexed:
        # Most steps: nothing but a command line, without ``having``. One joined string
        # tests all its parts in C (a match across two parts only costs the exact tests).
        if _only_argv(step) and having not in "".join((step.command or "", *step.args)):
            continue
        sid = step.id
        if step.command is not None and having in step.command:
            yield f"$.steps[{i}].command", sid, step.command
        if step.uses is not None and having in step.uses:
            yield f"$.steps[{i}].uses", sid, step.uses
        for key, value in step.with_.items():
            if having in value:
                yield f"$.steps[{i}].with.{key}", sid, value
        for j, arg in enumerate(step.args):
            if having in arg:
                yield f"$.steps[{i}].args[{j}]", sid, arg
        for key, value in step.env.items():
            if having in value:
                yield f"$.steps[{i}].env.{key}", sid, value
        if step.cwd is not None and having in step.cwd:
            yield f"$.steps[{i}].cwd", sid, step.cwd
        if step.for_each is not None and having in step.for_each:
            yield f"$.steps[{i}].for_each", sid, step.for_each


def _only_argv(step: Step) -> bool:
    """Whether the step's only templates are its command and args."""
    return (
        step.uses is None
        and not step.with_
        and not step.env
        and step.cwd is None
        and step.for_each is None
    )


def parsed_templates(plan: Plan, indexed: Indexed) -> list[Template]:
    """The templates that can refer to anything (they hold a ``$``), parsed once."""
    return [_parse(path, sid, text) for path, sid, text in templates(plan, indexed, "$")]


def _parse(path: str, sid: str | None, text: str) -> Template:
    try:
        pieces = subst.parse(text)
    except subst.SubstError as exc:
        return Template(path, sid, (), (), str(exc), text)
    names = tuple(p.name for p in pieces if isinstance(p, subst.Ref))
    refs = tuple(p for p in pieces if isinstance(p, subst.StepRef))
    return Template(path, sid, names, refs, None, text)


# --- ids and dependencies ------------------------------------------------------------


def check_graph(ids: Sequence[str | None], steps: Sequence[Step | None]) -> list[Problem]:
    """Duplicate ids, self/unknown dependencies and cycles.

    ``ids`` are the raw ids of every step (None where a step has no usable one) and
    ``steps`` the decoded steps (None where a step did not decode), by position.
    """
    problems, first = _duplicate_ids(ids)
    deps: dict[str, Sequence[str]] = {}
    known = list(first)
    known_ids = first.keys()
    # Whether every step comes after its dependencies (the ids ``seen`` before it):
    # then there is no cycle to look for. Most plans are written so.
    in_order = not problems
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if step is None:
            continue
        sid, depends_on = step.id, step.depends_on
        # The check's own loop only for a list that may hold a problem: no unknown id,
        # no repeat, not itself (a plan of 100,000 steps has a million edges).
        itself = False
        if depends_on:
            unique = set(depends_on)
            itself = sid in unique
            earlier = seen >= unique
            if itself or len(unique) != len(depends_on) or not (earlier or known_ids >= unique):
                problems += _check_depends_on(i, step, first, known)
                in_order = False
            elif not earlier:
                in_order = False
        seen.add(sid)
        if first.get(sid) == i:
            deps[sid] = [d for d in depends_on if d != sid] if itself else depends_on
    return problems if in_order else problems + _check_cycles(deps, first)


def _duplicate_ids(ids: Sequence[str | None]) -> tuple[list[Problem], dict[str, int]]:
    """Problems for ids used twice, and where each id is first used."""
    positions = dict(zip(ids, range(len(ids)), strict=True))
    if len(positions) == len(ids) and None not in positions:
        return [], cast(dict[str, int], positions)  # the common case, in C: each id once
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, sid in enumerate(ids):
        if sid is None:
            continue
        if sid in first:
            problems.append(
                Problem(
                    f"$.steps[{i}].id",
                    f"duplicate step id '{sid}' (first used at $.steps[{first[sid]}])",
                    sid,
                    "give every step a unique id",
                )
            )
        else:
            first[sid] = i
    return problems, first


def _check_depends_on(
    i: int, step: Step, first: Mapping[str, int], known: Sequence[str]
) -> list[Problem]:
    """A step's dependencies on itself, on unknown steps, or listed twice."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for j, dep in enumerate(step.depends_on):
        where = f"$.steps[{i}].depends_on[{j}]"
        if dep == step.id:
            problems.append(Problem(where, "a step cannot depend on itself", step.id, "remove it"))
        elif dep not in first:
            close = difflib.get_close_matches(dep, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "check the step ids"
            problems.append(Problem(where, f"unknown dependency '{dep}'", step.id, hint))
        elif dep in seen:
            problems.append(Problem(where, f"'{dep}' is listed twice", step.id, "remove one", True))
        seen.add(dep)
    return problems


def _check_cycles(deps: Mapping[str, Sequence[str]], first: Mapping[str, int]) -> list[Problem]:
    problems: list[Problem] = []
    for cycle in graph.find_cycles(deps):
        if len(cycle) == 2 and cycle[0] == cycle[1]:
            continue  # reported by _check_depends_on as a self-dependency
        head = cycle[0]
        problems.append(
            Problem(
                f"$.steps[{first[head]}].depends_on",
                "dependency cycle: " + " -> ".join(cycle),
                head,
                "remove one of these dependencies",
            )
        )
    return problems


# --- values --------------------------------------------------------------------------


def check_values(plan: Plan, indexed: Indexed) -> list[Problem]:
    """Bad variable names, bad env names, empty or shell-like commands, NUL bytes."""
    return [
        *_bad_variable_names(plan),
        *_bad_env_names(plan, indexed),
        *_check_commands(indexed),
        *_nul_bytes(plan, indexed),
    ]


def _bad_variable_names(plan: Plan) -> list[Problem]:
    return [
        Problem(
            f"$.variables.{shown(name)}",
            f"invalid variable name '{shown(name)}'",
            hint="use letters, digits and '_' (not starting with a digit); "
            f"{', '.join(BUILTIN_VARIABLES)} is built in",
        )
        for name in plan.variables
        if not VAR_NAME.match(name) or name in BUILTIN_VARIABLES
    ]


Env = tuple[str, str | None, dict[str, str]]


def envs(plan: Plan, indexed: Indexed) -> list[Env]:
    """Every ``env`` object of the plan that is not empty: (path, step id, env)."""
    found: list[Env] = [("$.globals.env", None, plan.globals.env)]
    # Only the env objects that hold something: their callers look at the entries.
    found += [(f"$.steps[{i}].env", s.id, s.env) for i, s in indexed if s.env]
    return found


def _bad_env_names(plan: Plan, indexed: Indexed) -> list[Problem]:
    return [
        Problem(f"{base}.{key}", f"invalid environment variable name {key!r}", sid)
        for base, sid, env in envs(plan, indexed)
        for key in env
        if not key or "=" in key or "\0" in key
    ]


def _check_commands(indexed: Indexed) -> list[Problem]:
    """Empty commands, and commands that look like a shell line (a warning)."""
    problems: list[Problem] = []
    for i, step in indexed:
        if step.command is None:
            continue  # a ``uses`` step, or neither: see ``plan.uses``
        if not step.command.strip():
            problems.append(
                Problem(f"$.steps[{i}].command", "empty command", step.id, "name a program")
            )
        elif " " in step.command.strip() and "$" not in step.command:
            first_word = step.command.split()[0]
            problems.append(
                Problem(
                    f"$.steps[{i}].command",
                    f"command {step.command!r} contains a space; planrun runs no shell",
                    step.id,
                    f"put the program in 'command' ({first_word!r}) and the rest in 'args'",
                    warning=True,
                )
            )
    return problems


def _nul_bytes(plan: Plan, indexed: Indexed) -> list[Problem]:
    return [
        Problem(path, "contains a NUL byte", sid, "remove it")
        for path, sid, template in templates(plan, indexed, "\0")
    ]


# --- step references -----------------------------------------------------------------


def check_step_refs(indexed: Indexed, parsed: Collection[Template]) -> list[Problem]:
    """``${steps.ID...}``: only in a step's args/env/cwd, naming an ancestor."""
    problems: list[Problem] = []
    if not any(template.refs for template in parsed):
        return problems  # no look-up tables for 100,000 steps that refer to none
    deps = {s.id: s.depends_on for _, s in indexed}
    ids = list(deps)
    multi = _multi(indexed)
    for template in parsed:
        refs = list(dict.fromkeys(template.refs))
        if not refs:
            continue
        sid = template.step_id
        if sid is None or template.path.endswith((".command", ".uses")):
            problems.append(
                Problem(
                    template.path,
                    f"'{refs[0].text}': a step's results can be used only in the args, env "
                    "and cwd of a later step",
                    sid,
                )
            )
            continue
        above = graph.ancestors(deps, sid)
        problems += [
            _not_an_ancestor(template.path, sid, ref, deps, ids)
            for ref in refs
            if ref.step_id not in above
        ]
        problems += [
            Problem(
                template.path,
                f"'{ref.text}': step '{ref.step_id}' runs as several instances (a "
                "matrix), so it has no single value",
                sid,
                "refer to a step that runs once",
            )
            for ref in refs
            if ref.step_id in above and ref.step_id in multi
        ]
    return problems


def _multi(indexed: Indexed) -> set[str]:
    """The matrix steps: they run as several instances, and have no results of their
    own (a ``for_each`` step's rules are in :mod:`.fanout_checks`)."""
    return {s.id for _, s in indexed if s.matrix is not None}


# --- conditions and instance values --------------------------------------------------


def check_conditions(indexed: Indexed, defined: Collection[str]) -> list[Problem]:
    """Each step's ``if``: its syntax (with the column) and every name it uses
    (``defined``: the variables a run has), at ``$.steps[i].if``."""
    if all(step.if_ is None for _, step in indexed):
        return []  # nothing to check: no look-up tables for 100,000 steps
    from .. import expr_check  # only for a plan with conditions (start-up)

    deps = {s.id: s.depends_on for _, s in indexed}
    multi = _multi(indexed)
    ids = deps.keys()  # a set-like view: `in` without a scan
    groups = {s.id for _, s in indexed if s.for_each is not None}
    problems: list[Problem] = []
    for i, step in indexed:
        if step.if_ is None:
            continue
        axes = (
            None
            if step.matrix is None
            else [k for k in step.matrix if k not in ("include", "exclude")]
        )
        scope = expr_check.Scope(
            step.id,
            defined,
            ids,
            graph.ancestors(deps, step.id),
            axes=_with_included(step, axes),
            for_each=step.for_each is not None,
            multi=multi,
            groups=groups,
        )
        problems += [
            Problem(
                f"$.steps[{i}].if", f"column {issue.column}: {issue.message}", step.id, issue.hint
            )
            for issue in expr_check.check(step.if_, scope)
        ]
    return problems


def _with_included(step: Step, axes: list[str] | None) -> list[str] | None:
    """The axes and the keys ``include`` adds (each is a ``matrix.K`` too)."""
    if axes is None or step.matrix is None:
        return axes
    added = [
        str(k)
        for entry in step.matrix.get("include", [])
        if isinstance(entry, dict)
        for k in entry
        if k not in axes
    ]
    return list(dict.fromkeys([*axes, *added]))


def condition_uses(indexed: Indexed) -> list[Template]:
    """Stand-in templates naming the variables each ``if`` uses (a variable given for
    a condition only is not undeclared)."""
    out = []
    for i, step in indexed:
        if step.if_ is None:
            continue
        from .. import expr  # only for a plan with conditions (start-up)

        try:
            tree = expr.parse(step.if_)
        except expr.ExprError:
            continue
        names = tuple(op.name for op in expr.operands(tree) if op.kind == "vars")
        out.append(Template(f"$.steps[{i}].if", step.id, names, ()))
    return out


def check_instance_names(indexed: Indexed, parsed: Collection[Template]) -> list[Problem]:
    """``${matrix.K}`` only in a matrix step, K one of its axes (``${item...}`` has
    the rules of :mod:`.fanout_checks`)."""
    if not any(template.names for template in parsed):
        return []
    steps = {s.id: s for _, s in indexed}
    problems: list[Problem] = []
    for template in parsed:
        step = steps.get(template.step_id) if template.step_id is not None else None
        for name in dict.fromkeys(template.names):
            problem = _instance_name_problem(template, step, name)
            if problem is not None:
                problems.append(problem)
    return problems


def _instance_name_problem(template: Template, step: Step | None, name: str) -> Problem | None:
    ref = f"${{{name}}}"
    if name.startswith("matrix."):
        if step is None or step.matrix is None:
            return Problem(
                template.path,
                f"'{ref}' is used outside a matrix step",
                template.step_id,
                'give the step a "matrix", or remove it',
            )
        axes = (
            _with_included(step, [k for k in step.matrix if k not in ("include", "exclude")]) or []
        )
        key = name.removeprefix("matrix.")
        if key in axes:
            return None
        close = difflib.get_close_matches(key, axes, n=1)
        hint = f"did you mean '${{matrix.{close[0]}}}'?" if close else f"axes: {', '.join(axes)}"
        return Problem(
            template.path, f"'{ref}': '{key}' is not an axis of the matrix", template.step_id, hint
        )
    return None


def _not_an_ancestor(
    path: str, sid: str, ref: subst.StepRef, deps: Collection[str], ids: Sequence[str]
) -> Problem:
    """Why step ``sid`` cannot use ``ref`` (whose step is not one of its ancestors)."""
    hint: str | None
    if ref.step_id == sid:
        message, hint = f"'{ref.text}' refers to the step itself", None
    elif ref.step_id not in deps:
        close = difflib.get_close_matches(ref.step_id, ids, n=1)
        message = f"'{ref.text}' names an unknown step '{ref.step_id}'"
        hint = f"did you mean '{close[0]}'?" if close else "check the step ids"
    else:
        message = f"'{ref.text}': step '{ref.step_id}' is not an ancestor of '{sid}'"
        hint = f"add '{ref.step_id}' to depends_on, so it finishes first"
    return Problem(path, message, sid, hint)
