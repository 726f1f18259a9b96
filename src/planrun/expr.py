"""The ``if`` expression language: a tokenizer, a recursive-descent parser and an
evaluator. Pure: no I/O, and nothing is ever ``eval``-ed.

Grammar (lowest precedence first)::

    expr       := and ( "||" and )*
    and        := comparison ( "&&" comparison )*
    comparison := unary ( ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) unary
                        | "in" ( list | unary ) )?
    unary      := "!" unary | primary
    primary    := STRING | NUMBER | "true" | "false" | "null" | OPERAND | "(" expr ")"
    list       := "[" ( literal ( "," literal )* )? "]"

Strings are ``'single'`` or ``"double"`` quoted, with the escapes ``\\\\ \\' \\" \\n
\\t \\r``; numbers are ``-?DIGITS(.DIGITS)?``. Operands: ``vars.NAME``,
``steps.ID.outputs.KEY``, ``steps.ID.state``, ``steps.ID.exit_code``, ``matrix.K``,
``item`` and ``item.KEY``. A comparison does not chain (``a == b == c`` is an error:
use ``&&``); a list literal is only the right side of ``in``.

Semantics (documented in the README, "Conditions"):

- values are strings, numbers, ``true``/``false`` and ``null``; variables, matrix
  values, items and outputs are strings, ``exit_code`` a number, ``state`` a string
  (``succeeded``, ``failed``, ``skipped``, ...); a missing output, or the exit code of
  a step that has none, is ``null``;
- ``==``/``!=``: a number and a string that looks like a number (``'3'``, ``'-1.5'``)
  compare as numbers, as in GitHub Actions; otherwise values of different types are
  never equal (``null`` equals only ``null``); strings compare case-sensitively;
- ``< <= > >=``: numbers (or a number and a numeric string) compare as numbers, two
  strings compare by code point; anything else is false;
- ``x in [...]``: ``x`` equals an element (as ``==``); ``x in s`` (a string): ``x`` is
  a substring of ``s``; anything else is false;
- ``!``, ``&&``, ``||`` use truthiness: ``false``, ``null``, ``0`` and ``''`` are false,
  everything else (``'0'`` and ``'false'`` too: they are non-empty strings) is true;
  ``&&`` and ``||`` short-circuit and give ``true``/``false``. The condition holds when
  its value is truthy.

Syntax errors (:class:`ExprError`) carry the 1-based column;
:func:`planrun.expr_check.check` reports the names a plan cannot give a value (unknown
variable, a step that is not an ancestor, ``matrix.K`` not an axis, ``item`` outside
``for_each``) before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ExprError",
    "Operand",
    "Value",
    "evaluate",
    "operands",
    "parse",
    "truthy",
]

#: A value an expression computes with (lists only appear as ``in``'s right side).
Value = str | int | float | bool | None

#: The longest condition accepted (far beyond a real one; bounds the parser's work).
MAX_LENGTH = 4096
_MAX_DEPTH = 64

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_KEY = r"[A-Za-z_][A-Za-z0-9_-]*"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_NUMERIC = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*")
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_VARS = re.compile(rf"vars\.(?P<name>{_NAME})")
_MATRIX = re.compile(rf"matrix\.(?P<name>{_NAME})")
_ITEM = re.compile(rf"item(?:\.(?P<key>{_KEY}))?")
_STEP = re.compile(rf"steps\.(?P<id>.+?)\.(?:outputs\.(?P<key>{_KEY})|(?P<what>state|exit_code))")
_OPERAND_FORMS = (
    "vars.NAME, steps.ID.outputs.KEY, steps.ID.state, steps.ID.exit_code, matrix.K, item "
    "or item.KEY"
)


class ExprError(ValueError):
    """A malformed expression; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


# --- the tree ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal_:
    value: Value
    column: int


@dataclass(frozen=True, slots=True)
class ListLiteral:
    items: tuple[Value, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Operand:
    """A name: ``kind`` says which form, ``name`` the variable/axis/step id, ``key``
    the output or item key, ``what`` for a step: ``outputs``, ``state``, ``exit_code``."""

    kind: Literal["vars", "matrix", "item", "steps"]
    name: str
    column: int
    text: str
    key: str | None = None
    what: str | None = None

    @property
    def bound_name(self) -> str:
        """The name its value is given under (as in ``${...}``: ``X``, ``matrix.K``,
        ``item``, ``item.KEY``); steps' values come at run time instead."""
        if self.kind == "vars":
            return self.name
        if self.kind == "matrix":
            return f"matrix.{self.name}"
        return "item" if self.key is None else f"item.{self.key}"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    column: int


@dataclass(frozen=True, slots=True)
class Logical:
    op: Literal["&&", "||"]
    left: Node
    right: Node
    column: int


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node | ListLiteral
    column: int


Node = Literal_ | Operand | Not | Logical | Compare


# --- tokens --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["string", "number", "word", "op", "end"]
    text: str
    column: int
    value: Value = None


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "'\"":
            value, end = _string(text, i)
            out.append(_Token("string", text[i:end], i + 1, value))
            i = end
        elif (number := _NUMBER.match(text, i)) is not None:
            literal = number[0]
            value_n: int | float = float(literal) if "." in literal else int(literal)
            out.append(_Token("number", literal, i + 1, value_n))
            i = number.end()
        elif (word := _WORD.match(text, i)) is not None:
            out.append(_Token("word", word[0], i + 1))
            i = word.end()
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                hint = " (use '==' to compare)" if c == "=" else ""
                hint = " (use '&&' or '||')" if c in "&|" else hint
                hint = " (write the expression itself, without '${{ }}')" if c == "$" else hint
                raise ExprError(f"unexpected character {c!r}{hint}", i + 1)
            out.append(_Token("op", op, i + 1))
            i += len(op)
    out.append(_Token("end", "", n + 1))
    return out


def _string(text: str, start: int) -> tuple[str, int]:
    """The string literal opening at ``start``: its value and the index after it."""
    quote = text[start]
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(chars), i + 1
        if c == "\\":
            if i + 1 >= len(text):
                break
            escaped = _ESCAPES.get(text[i + 1])
            if escaped is None:
                raise ExprError(f"unknown escape '\\{text[i + 1]}' in a string", i + 1)
            chars.append(escaped)
            i += 2
            continue
        chars.append(c)
        i += 1
    raise ExprError(f"unterminated string (no closing {quote})", start + 1)


# --- the parser ----------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, *ops: str) -> bool:
        token = self.peek
        return (token.kind == "op" and token.text in ops) or (
            token.kind == "word" and token.text in ops
        )

    def parse(self) -> Node:
        node = self.expr()
        token = self.peek
        if token.kind != "end":
            raise ExprError(
                f"unexpected {_describe(token)}; expected an operator or the end", token.column
            )
        return node

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ExprError(f"nested deeper than {_MAX_DEPTH} levels", self.peek.column)
        node = self.conjunction()
        while self.at("||"):
            op = self.take()
            node = Logical("||", node, self.conjunction(), op.column)
        self.depth -= 1
        return node

    def conjunction(self) -> Node:
        node = self.comparison()
        while self.at("&&"):
            op = self.take()
            node = Logical("&&", node, self.comparison(), op.column)
        return node

    def comparison(self) -> Node:
        left = self.unary()
        if not self.at("==", "!=", "<", "<=", ">", ">=", "in"):
            return left
        op = self.take()
        right: Node | ListLiteral = (
            self.list_literal() if op.text == "in" and self.at("[") else self.unary()
        )
        if self.at("==", "!=", "<", "<=", ">", ">=", "in"):
            raise ExprError(
                "comparisons do not chain: join them with '&&' (and parentheses)",
                self.peek.column,
            )
        return Compare(op.text, left, right, op.column)

    def unary(self) -> Node:
        if self.at("!"):
            op = self.take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ExprError(f"nested deeper than {_MAX_DEPTH} levels", op.column)
            node = Not(self.unary(), op.column)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind in ("string", "number"):
            return Literal_(token.value, token.column)
        if token.kind == "op" and token.text == "(":
            node = self.expr()
            close = self.take()
            if not (close.kind == "op" and close.text == ")"):
                raise ExprError(
                    f"expected ')' to close the '(' at column {token.column}, "
                    f"found {_describe(close)}",
                    close.column,
                )
            return node
        if token.kind == "op" and token.text == "[":
            raise ExprError("a list literal can only follow 'in'", token.column)
        if token.kind == "word":
            return _word(token)
        raise ExprError(f"expected a value, found {_describe(token)}", token.column)

    def list_literal(self) -> ListLiteral:
        open_ = self.take()
        items: list[Value] = []
        while not self.at("]"):
            token = self.take()
            if token.kind in ("string", "number"):
                items.append(token.value)
            elif token.kind == "word" and token.text in _KEYWORDS:
                items.append(_KEYWORDS[token.text])
            else:
                raise ExprError(
                    f"a list holds literals only (strings, numbers, true, false, null), "
                    f"found {_describe(token)}",
                    token.column,
                )
            if self.at(","):
                self.take()
            elif not self.at("]"):
                found = self.peek
                raise ExprError(f"expected ',' or ']', found {_describe(found)}", found.column)
        self.take()
        return ListLiteral(tuple(items), open_.column)


_KEYWORDS: dict[str, Value] = {"true": True, "false": False, "null": None}


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "the end of the expression"
    return f"'{token.text}'"


def _word(token: _Token) -> Node:
    """A keyword or an operand."""
    text, column = token.text, token.column
    if text in _KEYWORDS:
        return Literal_(_KEYWORDS[text], column)
    if text == "in":
        raise ExprError("expected a value before 'in'", column)
    if (found := _VARS.fullmatch(text)) is not None:
        return Operand("vars", found["name"], column, text)
    if (found := _MATRIX.fullmatch(text)) is not None:
        return Operand("matrix", found["name"], column, text)
    if (found := _ITEM.fullmatch(text)) is not None:
        return Operand("item", "item", column, text, key=found["key"])
    if (found := _STEP.fullmatch(text)) is not None and not found["id"].endswith("."):
        what = found["what"] or "outputs"
        return Operand("steps", found["id"], column, text, key=found["key"], what=what)
    if text.startswith("steps."):
        raise ExprError(
            f"invalid step reference '{text}': use steps.ID.outputs.KEY, steps.ID.state "
            "or steps.ID.exit_code",
            column,
        )
    hint = ""
    if re.fullmatch(_NAME, text):
        hint = f" (a variable is vars.{text}; a string is quoted: '{text}')"
    raise ExprError(f"unknown name '{text}'{hint}; use {_OPERAND_FORMS}", column)


def parse(text: str) -> Node:
    """The expression's tree; :class:`ExprError` (with the column) if malformed."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if not text.strip():
        raise ExprError("empty expression", 1)
    return _Parser(text).parse()


def operands(node: Node | ListLiteral) -> Iterator[Operand]:
    """Every operand of the tree, in order."""
    if isinstance(node, Operand):
        yield node
    elif isinstance(node, Not):
        yield from operands(node.operand)
    elif isinstance(node, (Logical, Compare)):
        yield from operands(node.left)
        yield from operands(node.right)


# --- evaluation ----------------------------------------------------------------------


def truthy(value: Value) -> bool:
    """``false``, ``null``, ``0`` and ``''`` are false; everything else is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0
    return value != ""


def _number(value: Value) -> float | None:
    """``value`` as a number: a number, or a string that looks like one; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if _NUMERIC.fullmatch(value):
        return float(value)
    return None


def _equal(a: Value, b: Value) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    x, y = _number(a), _number(b)
    return x is not None and y is not None and x == y


def _order(op: str, a: Value, b: Value) -> bool:
    pair: tuple[float, float] | tuple[str, str]
    if isinstance(a, str) and isinstance(b, str):
        pair = (a, b)
    else:
        x, y = _number(a), _number(b)
        if x is None or y is None:
            return False
        pair = (x, y)
    left, right = pair
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def _contains(a: Value, b: Value | ListLiteral) -> bool:
    if isinstance(b, ListLiteral):
        return any(_equal(a, item) for item in b.items)
    return isinstance(a, str) and isinstance(b, str) and a in b


def evaluate(node: Node, lookup: Callable[[Operand], Value]) -> Value:
    """The value of ``node``, asking ``lookup`` for each operand it needs."""
    if isinstance(node, Literal_):
        return node.value
    if isinstance(node, Operand):
        return lookup(node)
    if isinstance(node, Not):
        return not truthy(evaluate(node.operand, lookup))
    if isinstance(node, Logical):
        left = truthy(evaluate(node.left, lookup))
        if node.op == "&&":
            return left and truthy(evaluate(node.right, lookup))
        return left or truthy(evaluate(node.right, lookup))
    a = evaluate(node.left, lookup)
    b = node.right if isinstance(node.right, ListLiteral) else evaluate(node.right, lookup)
    if node.op == "in":
        return _contains(a, b)
    assert not isinstance(b, ListLiteral)  # the parser allows a list only after 'in'
    if node.op == "==":
        return _equal(a, b)
    if node.op == "!=":
        return not _equal(a, b)
    return _order(node.op, a, b)
