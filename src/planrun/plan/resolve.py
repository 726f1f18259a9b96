"""Resolving a valid plan into ready-to-run steps: variables substituted, and the
fields that use another step's results kept as typed late bindings. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .. import fanout, subst
from ..model import Plan, Step
from . import expand

if TYPE_CHECKING:
    from .. import expr_check

__all__ = [
    "ArgBinding",
    "CwdBinding",
    "EnvBinding",
    "LateBinding",
    "Pieces",
    "ResolvedStep",
    "parse_var",
    "resolve_step",
    "resolve_steps",
    "resolve_variables",
]

#: A template with its variables substituted: literal text and step references.
Pieces = tuple[str | subst.StepRef, ...]


class ArgBinding(msgspec.Struct, frozen=True):
    """``argv[index]`` uses a step's results (index 0 is the command)."""

    index: int
    pieces: Pieces


class EnvBinding(msgspec.Struct, frozen=True):
    """The environment variable ``name`` uses a step's results."""

    name: str
    pieces: Pieces


class CwdBinding(msgspec.Struct, frozen=True):
    """The working directory uses a step's results (relative to the plan's directory)."""

    pieces: Pieces


#: Where a step reference is filled in when the step starts.
LateBinding = ArgBinding | EnvBinding | CwdBinding


def parse_var(text: str) -> tuple[str, str]:
    """Split a ``NAME=VALUE`` command-line assignment (``ValueError`` without ``=``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--var expects NAME=VALUE, got {text!r}")
    return name, value


def _stringify(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_variables(
    plan: Plan, given: Mapping[str, str], plan_dir: Path | None
) -> dict[str, str]:
    """Plan defaults overridden by ``given``, plus the built-in ``PLAN_DIR``."""
    values = {k: _stringify(v) for k, v in plan.variables.items() if v is not None}
    values.update(given)
    values["PLAN_DIR"] = str(plan_dir or Path.cwd())
    return values


@dataclass(frozen=True, slots=True)
class ResolvedStep:
    """A step with every variable substituted: what the executor is given.

    ``env`` holds only what the plan adds (``globals.env``, step ``env``, variables);
    the executor lays it over the caller's environment. Fields that use another step's
    results (``${steps.ID...}``) are in ``late`` and filled in by :meth:`bind` when the
    step starts; ``argv``/``env``/``cwd`` hold them unbound until then.

    A ``uses`` step starts no process: its ``argv`` is the child plan's absolute path
    alone and its ``env`` the ``with`` values (the child's variables), bound like any
    env entry.
    """

    step: Step
    index: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    cwd: str | None
    timeout: float | None
    late: tuple[LateBinding, ...] = ()
    base_dir: Path | None = None
    #: The step's ``max_log_bytes``, else the global one (None: logs are not capped).
    max_log_bytes: int | None = None
    #: Its ``if``, parsed, with the variables and the instance's values bound (None:
    #: it has none). The engine evaluates it once the trigger rule lets the step run.
    condition: expr_check.Condition | None = None
    #: A ``for_each`` step: its template with the variables substituted (rendered when
    #: it may start), and how to make the instance of one item (``instance``).
    for_each: Pieces | None = None
    instantiate: Callable[[str, Mapping[str, str]], ResolvedStep] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def step_refs(self) -> list[subst.StepRef]:
        """The step references this step uses, once each, in order (its ``for_each``
        template's too)."""
        pieces = [p for late in self.late for p in late.pieces]
        pieces += self.for_each or ()
        return list(dict.fromkeys(p for p in pieces if isinstance(p, subst.StepRef)))

    def instance(self, step_id: str, item: Mapping[str, str]) -> ResolvedStep:
        """The instance ``step_id`` of this ``for_each`` step for an item whose values
        (``item``, ``item.KEY``) are ``item``: a step like any other, ``${item...}``
        substituted (a key the item lacks stays as written: the caller fails it)."""
        assert self.instantiate is not None, "not a for_each step"
        return self.instantiate(step_id, item)

    def bind(
        self, lookup: Callable[[subst.StepRef], str]
    ) -> tuple[tuple[str, ...], dict[str, str], str | None]:
        """argv, env and cwd with step references filled in by ``lookup`` (whose
        errors propagate: a missing output must fail the step, not become "")."""
        if not self.late:
            return self.argv, self.env, self.cwd
        argv, env, cwd = list(self.argv), dict(self.env), self.cwd
        for late in self.late:
            value = subst.render(late.pieces, lookup)
            if isinstance(late, ArgBinding):
                argv[late.index] = value
            elif isinstance(late, EnvBinding):
                env[late.name] = value
            else:
                cwd = str((self.base_dir or Path.cwd()) / value)
        return tuple(argv), env, cwd


def resolve_steps(
    plan: Plan, values: Mapping[str, str], plan_dir: Path | None
) -> list[ResolvedStep]:
    """Substitute variables into every step (validate first: unknown names raise).

    ``values`` are the variables and secrets; every one is also put in the step's
    environment. A matrix step becomes one resolved step per instance (see
    :mod:`.expand`; an already expanded plan stays as it is), each given its own
    ``matrix.K`` values.
    """
    expanded = expand.expand(plan)
    # What steps alike share, built once: the same environment dict for every step
    # without an env of its own, the same argv tuple for the same command line (a plan
    # of 100,000 steps holds a handful of each). Nothing changes them after: ``bind``
    # and the executors copy before adding.
    global_env = _global_env(expanded, values)
    shared = _Shared(global_env, global_env | dict(values), {})
    return [
        resolve_step(
            expanded, step, values, plan_dir, expand.matrix_values(step), index=i, shared=shared
        )
        for i, step in enumerate(expanded.steps)
    ]


class _Shared(msgspec.Struct):
    """Values :func:`resolve_steps` gives every step that needs no copy of its own."""

    #: ``globals.env`` with the variables substituted (worked out once, not per step).
    global_env: dict[str, str]
    #: ``globals.env`` and the variables: the env of a step without ``env``.
    env: dict[str, str]
    #: Each argv seen, by itself: equal ones become one tuple.
    argvs: dict[tuple[str, ...], tuple[str, ...]]


def _global_env(plan: Plan, values: Mapping[str, str]) -> dict[str, str]:
    """``globals.env`` with the variables substituted (it can use no step's results)."""
    return {k: subst.substitute(v, values) for k, v in plan.globals.env.items()}


def resolve_step(
    plan: Plan,
    step: Step,
    values: Mapping[str, str],
    plan_dir: Path | None,
    extra: Mapping[str, str] | None = None,
    *,
    index: int = 0,
    shared: _Shared | None = None,
) -> ResolvedStep:
    """Resolve one step of ``plan`` (validated first: unknown names raise).

    ``values`` are the variables and secrets: substituted, and put in the step's
    environment. ``extra`` are the values of one instance of a matrix or ``for_each``
    step, keyed by the names that use them (``matrix.K``, ``item``, ``item.KEY``):
    substituted (and seen by its ``if``) but never put in the environment. ``index``
    is the step's position (``ResolvedStep.index``). A ``for_each`` step itself is
    resolved with its ``${item...}`` as written and can make its instances
    (:meth:`ResolvedStep.instance`).
    """
    base = plan_dir or Path.cwd()
    global_env = shared.global_env if shared is not None else _global_env(plan, values)
    for_each: Pieces | None = None
    instantiate = None
    if step.for_each is not None:
        for_each = subst.partial(step.for_each, values)
        names = fanout.item_names(step)
        extra = fanout.placeholders(names) | dict(extra or {})

        def instantiate(step_id: str, item: Mapping[str, str]) -> ResolvedStep:
            one = msgspec.structs.replace(
                step, id=step_id, name=fanout.instance_name(step, step_id), for_each=None
            )
            given = fanout.placeholders(names) | dict(item)
            return resolve_step(plan, one, values, plan_dir, given, index=index)

    names_values = {**values, **extra} if extra else values
    late: list[LateBinding] = []
    argv, env, cwd = _process(plan, step, values, names_values, global_env, base, late)
    if shared is not None:
        argv = shared.argvs.setdefault(argv, argv)
        if not step.env and step.uses is None and env == shared.env:
            env = shared.env
    timeout = step.timeout_sec
    max_log_bytes = step.max_log_bytes
    return ResolvedStep(
        step=step,
        index=index,
        argv=argv,
        env=env,
        cwd=cwd,
        timeout=timeout if timeout is not None else plan.globals.default_timeout_sec,
        late=tuple(late),
        base_dir=base,
        max_log_bytes=max_log_bytes if max_log_bytes is not None else plan.globals.max_log_bytes,
        condition=_condition(step, names_values),
        for_each=for_each,
        instantiate=instantiate,
    )


def _process(
    plan: Plan,
    step: Step,
    values: Mapping[str, str],
    names_values: Mapping[str, str],
    global_env: Mapping[str, str],
    base: Path,
    late: list[LateBinding],
) -> tuple[tuple[str, ...], dict[str, str], str | None]:
    """A step's argv, env and cwd; for a ``uses`` step, the child plan's path alone,
    its ``with`` values and no cwd."""
    if step.uses is not None:
        child = (base / subst.substitute(step.uses, values)).resolve()
        return (str(child),), _resolve_with(step, names_values, late), None
    env = _resolve_env(step, names_values, global_env, late)
    env.update(values)  # every variable, never an instance's own values
    cwd_template = step.cwd if step.cwd is not None else plan.globals.cwd
    cwd = _resolve_cwd(cwd_template, names_values, base, late)
    return _resolve_argv(step, names_values, late), env, cwd


def _resolve_env(
    step: Step, values: Mapping[str, str], global_env: Mapping[str, str], late: list[LateBinding]
) -> dict[str, str]:
    """``globals.env`` and the step's ``env`` (the caller adds the variables, which
    win)."""
    env = dict(global_env)
    for key, template in step.env.items():
        pieces = subst.partial(template, values)
        text = _finished(pieces)
        if text is None:
            if key not in values:  # a variable of that name wins, as below
                late.append(EnvBinding(key, pieces))
            text = _placeholder(pieces)
        env[key] = text
    return env


def _resolve_with(step: Step, values: Mapping[str, str], late: list[LateBinding]) -> dict[str, str]:
    """A ``uses`` step's ``with`` values, substituted (step references bound later)."""
    out: dict[str, str] = {}
    for key, template in step.with_.items():
        pieces = subst.partial(template, values)
        text = _finished(pieces)
        if text is None:
            late.append(EnvBinding(key, pieces))
            text = _placeholder(pieces)
        out[key] = text
    return out


def _resolve_cwd(
    template: str | None, values: Mapping[str, str], base: Path, late: list[LateBinding]
) -> str | None:
    if template is None:
        return None
    pieces = subst.partial(template, values)
    text = _finished(pieces)
    if text is None:
        late.append(CwdBinding(pieces))
        return None
    return str(base / text)


def _resolve_argv(
    step: Step, values: Mapping[str, str], late: list[LateBinding]
) -> tuple[str, ...]:
    argv: list[str] = []
    assert step.command is not None  # validation: a step has a command or ``uses``
    for i, template in enumerate((step.command, *step.args)):
        pieces = subst.partial(template, values)
        text = _finished(pieces)
        if text is None:
            late.append(ArgBinding(i, pieces))
            text = _placeholder(pieces)
        argv.append(text)
    return tuple(argv)


def _finished(pieces: Pieces) -> str | None:
    """The finished string, or None when ``pieces`` still holds step references."""
    if len(pieces) == 1 and isinstance(pieces[0], str):
        return pieces[0]
    return None


def _placeholder(pieces: Pieces) -> str:
    """How an unbound field reads until the step starts (``--dry-run`` shows it)."""
    return subst.render(pieces, lambda ref: ref.text)


def _condition(step: Step, names: Mapping[str, str]) -> expr_check.Condition | None:
    """The step's ``if``, compiled (validated first: a syntax error raises). A
    ``for_each`` step's own condition is the one of the fan-out as a whole (false: no
    instance is made), unless it uses ``item``: then each instance has it instead."""
    if step.if_ is None:
        return None
    from .. import expr_check  # only for a plan with conditions (start-up)

    condition = expr_check.Condition.compile(step.if_, names)
    if step.for_each is not None and condition.uses_item:
        return None
    return condition
