"""``${NAME}`` substitution, done inside one string and never through a shell.

Grammar: ``${NAME}`` is a reference; ``$${`` is a literal ``${``; any other ``$`` is
itself. Substituted values are not re-expanded, so a value containing ``${X}`` or
``; rm -rf /`` arrives verbatim. Substitution works on one argv element at a time, so a
value can never split into several arguments or reach an interpreter as code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Ref", "SubstError", "parse", "references", "substitute"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SubstError(ValueError):
    """A template is malformed (unterminated ``${`` or an invalid name)."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A ``${name}`` reference found in a template."""

    name: str


Piece = str | Ref


def parse(template: str) -> list[Piece]:
    """Split ``template`` into literal strings and :class:`Ref` items.

    Raises :class:`SubstError` for an unterminated ``${`` or a name that is not
    ``[A-Za-z_][A-Za-z0-9_]*``.
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
            name = template[dollar + 2 : end]
            if not _NAME.fullmatch(name):
                raise SubstError(
                    f"invalid variable name {name!r} in '${{{name}}}': use letters, digits "
                    "and '_', not starting with a digit"
                )
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(Ref(name))
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


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace every reference by its value, once (no re-expansion).

    Raises ``KeyError`` for a name missing from ``values`` (validation reports those
    before a run starts) and :class:`SubstError` for a malformed template.
    """
    if "$" not in template:
        return template
    return "".join(
        values[piece.name] if isinstance(piece, Ref) else piece for piece in parse(template)
    )
