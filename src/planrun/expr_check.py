"""An ``if`` expression (:mod:`planrun.expr`) in a plan: its names checked against the
plan before anything runs (:func:`check`), and its values bound for a run
(:class:`Condition`). Pure: no I/O."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from .expr import ExprError, Node, Operand, Value, evaluate, operands, parse, truthy

__all__ = ["Condition", "Issue", "Scope", "StepValues", "check"]

#: How the engine gives a step's values: (step id, ``outputs``/``state``/``exit_code``,
#: output key or None) -> the value (None when there is none).
StepValues = Callable[[str, str, str | None], Value]


@dataclass(frozen=True, slots=True)
class Condition:
    """A step's ``if``, parsed, with the values known before the run bound (variables,
    the instance's ``matrix``/``item`` values); steps' values are asked at run time."""

    text: str
    tree: Node = field(repr=False)
    bound: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def compile(cls, text: str, names: Mapping[str, str]) -> Condition:
        """Parse ``text`` (:class:`ExprError` if malformed) and keep the values of the
        names it uses from ``names`` (keyed as in ``${...}``: ``X``, ``matrix.K``,
        ``item``, ``item.KEY``)."""
        tree = parse(text)
        used = {op.bound_name for op in operands(tree) if op.kind != "steps"}
        return cls(text, tree, {name: names[name] for name in used if name in names})

    @property
    def uses_item(self) -> bool:
        """It reads ``item`` or ``item.KEY`` (so it is one instance's condition)."""
        return any(op.kind == "item" for op in operands(self.tree))

    def holds(self, steps: StepValues) -> bool:
        """Whether the condition is true now (a missing value is ``null``)."""

        def lookup(op: Operand) -> Value:
            if op.kind == "steps":
                assert op.what is not None
                return steps(op.name, op.what, op.key)
            return self.bound.get(op.bound_name)

        return truthy(evaluate(self.tree, lookup))


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem of an expression: what, at which column, and what to do."""

    message: str
    column: int
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """What the names of one step's condition may refer to."""

    #: The step whose condition it is.
    step_id: str
    #: The defined variables (declared, given, built in, secrets).
    variables: Collection[str]
    #: Every step id of the plan, and the ancestors of this step.
    steps: Collection[str]
    ancestors: Collection[str]
    #: The matrix axes of this step (None: it is not a matrix step).
    axes: Collection[str] | None = None
    #: The step runs once per item (``for_each``).
    for_each: bool = False
    #: Steps that run as several instances (a matrix): no single value.
    multi: Collection[str] = ()
    #: ``for_each`` steps: a state (and exit code), but no outputs of their own.
    groups: Collection[str] = ()


def check(text: str, scope: Scope) -> list[Issue]:
    """The problems of ``text`` as the condition of ``scope.step_id``: a syntax error
    (one: nothing else is checked then), or each name it cannot have a value for."""
    try:
        tree = parse(text)
    except ExprError as exc:
        return [Issue(exc.message, exc.column, "fix the expression (strings are quoted)")]
    issues = [_name_issue(op, scope) for op in operands(tree)]
    return [i for i in issues if i is not None]


def _name_issue(op: Operand, scope: Scope) -> Issue | None:
    if op.kind == "vars":
        if op.name in scope.variables:
            return None
        close = difflib.get_close_matches(op.name, list(scope.variables), n=1)
        hint = (
            f"did you mean 'vars.{close[0]}'?"
            if close
            else f'declare it under "variables" or pass --var {op.name}=...'
        )
        return Issue(f"unknown variable '{op.name}'", op.column, hint)
    if op.kind == "matrix":
        if scope.axes is None:
            return Issue(f"'{op.text}': step '{scope.step_id}' has no matrix", op.column)
        if op.name in scope.axes:
            return None
        close = difflib.get_close_matches(op.name, list(scope.axes), n=1)
        hint = f"did you mean 'matrix.{close[0]}'?" if close else f"axes: {', '.join(scope.axes)}"
        return Issue(f"'{op.text}': '{op.name}' is not an axis of the matrix", op.column, hint)
    if op.kind == "item":
        if scope.for_each:
            return None
        return Issue(
            f"'{op.text}' outside a for_each step", op.column, "add for_each, or remove it"
        )
    return _step_issue(op, scope)


def _step_issue(op: Operand, scope: Scope) -> Issue | None:
    sid = op.name
    if sid == scope.step_id:
        return Issue(f"'{op.text}' refers to the step itself", op.column)
    if sid not in scope.steps:
        close = difflib.get_close_matches(sid, list(scope.steps), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "check the step ids"
        return Issue(f"'{op.text}' names an unknown step '{sid}'", op.column, hint)
    if sid not in scope.ancestors:
        return Issue(
            f"'{op.text}': step '{sid}' is not an ancestor of '{scope.step_id}'",
            op.column,
            f"add '{sid}' to depends_on, so it finishes first",
        )
    if sid in scope.groups and op.what == "outputs":
        return Issue(
            f"'{op.text}': step '{sid}' is a for_each step, whose instances have the "
            "outputs, not the step",
            op.column,
            f"use steps.{sid}.state, or read the outputs in a step its instances feed",
        )
    if sid in scope.multi:
        return Issue(
            f"'{op.text}': step '{sid}' runs as several instances, so it has no single value",
            op.column,
            "refer to a step that runs once",
        )
    return None
