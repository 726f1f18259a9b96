"""``${NAME}`` substitution, done inside one string and never through a shell.

Grammar: ``${NAME}`` is a reference; ``${matrix.K}``, ``${item}`` and ``${item.KEY}``
are references too (the values of one instance of a matrix or ``for_each`` step, given
to that step only); ``${steps.ID.outputs.KEY}`` and ``${steps.ID.exit_code}`` refer to
an earlier step's results (bound when the using step starts), and may carry a default
used when the value is missing (``${steps.ID.outputs.KEY:-fallback}``: nothing else
takes one); ``$${`` is a literal ``${``; any other ``$`` is itself. Substituted values
are not re-expanded, so a value containing ``${X}`` or ``; rm -rf /`` arrives verbatim.
Substitution works on one argv element at a time, so a value can never split into
several arguments or reach an interpreter as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

import msgspec

__all__ = [
    "KEY_PATTERN",
    "Ref",
    "StepRef",
    "SubstError",
    "parse",
    "references",
    "partial",
    "render",
    "step_references",
    "is_instance_name",
    "substitute",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Output keys are names that may also hold ``-`` (GitHub's ``cache-hit``).
KEY_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
#: ``matrix.K``, ``item`` and ``item.KEY``: an instance's own values.
_INSTANCE_NAME = re.compile(rf"matrix\.{_NAME.pattern}|item(?:\.{KEY_PATTERN})?")
_STEP_OUTPUT = re.compile(rf"steps\.(?P<id>.+)\.outputs\.(?P<key>{KEY_PATTERN})")
_STEP_EXIT = re.compile(r"steps\.(?P<id>.+)\.exit_code")


class SubstError(ValueError):
    """A template is malformed (unterminated ``${`` or an invalid name)."""


class Ref(msgspec.Struct, frozen=True):
    """A ``${name}`` reference found in a template (``name`` may be ``matrix.K``,
    ``item`` or ``item.KEY``: see :func:`is_instance_name`)."""

    name: str


class StepRef(msgspec.Struct, frozen=True):
    """A ``${steps.ID.outputs.KEY}`` (``key`` set) or ``${steps.ID.exit_code}``
    (``key`` None) reference."""

    step_id: str
    key: str | None = None
    #: Used when the value is missing (``${steps.ID.outputs.KEY:-fallback}``).
    default: str | None = None

    @property
    def text(self) -> str:
        what = f"outputs.{self.key}" if self.key is not None else "exit_code"
        fallback = f":-{self.default}" if self.default is not None else ""
        return f"${{steps.{self.step_id}.{what}{fallback}}}"


def is_instance_name(name: str) -> bool:
    """``matrix.K``, ``item`` or ``item.KEY``: a name an instance gives its step."""
    return _INSTANCE_NAME.fullmatch(name) is not None


Piece = str | Ref | StepRef


def _reference(name: str) -> Ref | StepRef:
    if _NAME.fullmatch(name) or is_instance_name(name):
        return Ref(name)
    if name.startswith("steps."):
        # A step id holds no ':', so the first ':-' starts the default.
        body, sep, default = name.partition(":-")
        found = _STEP_OUTPUT.fullmatch(body)
        if found:
            return StepRef(found["id"], found["key"], default if sep else None)
        found = _STEP_EXIT.fullmatch(body)
        if found:
            return StepRef(found["id"], None, default if sep else None)
        raise SubstError(
            f"invalid step reference '${{{name}}}': use '${{steps.ID.outputs.KEY}}' or "
            "'${steps.ID.exit_code}' (either may end in ':-DEFAULT')"
        )
    raise SubstError(
        f"invalid variable name {name!r} in '${{{name}}}': use letters, digits "
        "and '_', not starting with a digit"
    )


def parse(template: str) -> list[Piece]:
    """Split ``template`` into literal strings, :class:`Ref` and :class:`StepRef` items.

    Raises :class:`SubstError` for an unterminated ``${``, a name that is not
    ``[A-Za-z_][A-Za-z0-9_]*`` or a malformed ``steps.`` reference.
    """
    pieces: list[Piece] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        dollar = template.find("$", i)
        if dollar < 0:
            literal.append(template[i:])
            break
        if dollar > i:
            literal.append(template[i:dollar])
        if template.startswith("$${", dollar):
            literal.append("${")
            i = dollar + 3
        elif template.startswith("${", dollar):
            end = template.find("}", dollar + 2)
            if end < 0:
                raise SubstError(
                    f"unterminated '${{' at offset {dollar}; write '$${{' for a literal '${{'"
                )
            ref = _reference(template[dollar + 2 : end])
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(ref)
            i = end + 1
        else:
            literal.append("$")
            i = dollar + 1
    if literal:
        pieces.append("".join(literal))
    return pieces


def references(template: str) -> Iterator[str]:
    """The names ``template`` refers to, in order (raises :class:`SubstError`)."""
    for piece in parse(template):
        if isinstance(piece, Ref):
            yield piece.name


def step_references(template: str) -> Iterator[StepRef]:
    """The step references in ``template``, in order (raises :class:`SubstError`)."""
    for piece in parse(template):
        if isinstance(piece, StepRef):
            yield piece


def partial(template: str, values: Mapping[str, str]) -> tuple[str | StepRef, ...]:
    """Substitute variables now, keep step references for later (:func:`render`).

    Adjacent literals are merged, so a template without step references becomes a
    1-tuple holding the finished string.
    """
    out: list[str | StepRef] = []
    for piece in parse(template) if "$" in template else [template]:
        if isinstance(piece, StepRef):
            out.append(piece)
            continue
        text = values[piece.name] if isinstance(piece, Ref) else piece
        if out and isinstance(out[-1], str):
            out[-1] += text
        else:
            out.append(text)
    return tuple(out) or ("",)


def render(pieces: tuple[str | StepRef, ...], lookup: Callable[[StepRef], str]) -> str:
    """Join what :func:`partial` returned, asking ``lookup`` for each step reference
    (whose errors propagate)."""
    return "".join(p if isinstance(p, str) else lookup(p) for p in pieces)


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace every variable reference by its value, once (no re-expansion).

    Raises ``KeyError`` for a name missing from ``values`` (validation reports those
    before a run starts), :class:`SubstError` for a malformed template and
    ``ValueError`` for a step reference (see :func:`partial`).
    """
    pieces = partial(template, values)
    if len(pieces) != 1 or not isinstance(pieces[0], str):
        raise ValueError(f"{template!r} refers to a step's results: bind it with render()")
    return pieces[0]
