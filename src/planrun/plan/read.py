"""Reading plan files: JSON, YAML or TOML text into plain Python data, within limits.

Syntax errors are located by ``line:column``; the limits (README "Limits") are checked
before anything recurses into the data, so that no input ends in a RecursionError, a
MemoryError or a conversion error. The only module of the plan package that does I/O:
:func:`read_document` reads the file it is given, :func:`read_stream` the stream.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import PlanError, Problem
from .text import encodable, shown

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_PLAN_BYTES",
    "MAX_VALUES",
    "check_limits",
    "duplicate_keys",
    "quick_scan",
    "STDIN_SOURCE",
    "parse_document",
    "read_document",
    "read_stream",
    "sniff_suffix",
]

#: Limits of a plan document (README "Limits").
MAX_PLAN_BYTES = 16 * 1024 * 1024
#: How a plan read from standard input is named in messages.
STDIN_SOURCE = "<stdin>"
MAX_DEPTH = 64  # levels of nested arrays/objects, the top-level object being level 1
MAX_VALUES = 1_000_000  # strings, numbers, arrays, ... counted over the whole document
MAX_INT_DIGITS = 4300  # Python's own limit for int <-> str conversion
_INT_BOUND = 10**MAX_INT_DIGITS
_MAX_DOCUMENT_PROBLEMS = 20  # enough to act on; a million of them helps nobody
_SPLIT = "split it into smaller plans"
_UNENCODABLE = "contains a lone surrogate (such as \\ud800), which is not valid UTF-8"
_FIX_TEXT = "remove it or write the character it was meant to be"


class _DupKeys(dict[str, Any]):
    """A JSON object that saw the same key more than once (``dups`` lists them)."""

    dups: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    dups = _DupKeys(pairs)
    # Counter, not keys.count: a huge object with one repeated key stays linear. key=str:
    # YAML keys may be numbers and strings at once.
    dups.dups = sorted((k for k, n in Counter(k for k, _ in pairs).items() if n > 1), key=str)
    return dups


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlValueError(Exception):
    """A YAML scalar that Python could not convert, at ``(line, column)``."""

    def __init__(self, at: tuple[int, int], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.at = at
        self.cause = cause


def _yaml_loader() -> type[Any]:
    """A ``SafeLoader`` whose mappings report duplicate keys, as JSON ones do."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            # A scalar Python cannot convert (a 5,000-digit int, February 30th) raises
            # ValueError without a position: give it the node's.
            try:
                return super().construct_object(node, deep)
            except (ValueError, OverflowError) as exc:
                mark = node.start_mark
                raise _YamlValueError((mark.line + 1, mark.column + 1), exc) from None

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
        # Merge keys (``<<: *cell``, ``<<: [*a, *b]``) by the YAML merge spec, not by
        # PyYAML's flatten_mapping (whose precedence differs between versions): the
        # mapping's own keys override merged ones, of these the first source listed
        # wins, and only its own keys can be duplicates.
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        merged: dict[Any, Any] = {}
        for source in _merge_sources(node):
            for key, value in loader.construct_object(source, deep=True).items():
                merged.setdefault(key, value)
        pairs: list[tuple[Any, Any]] = []
        for key_node, value_node in own:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # "? [a, b]: c" is valid YAML
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    "found a key that is a list or an object",
                    node.start_mark,
                )
            pairs.append((key, loader.construct_object(value_node, deep=True)))
        out = _pairs_hook(pairs)
        if not merged:
            return out
        combined = type(out)(merged)
        combined.update(out)
        if isinstance(out, _DupKeys) and isinstance(combined, _DupKeys):
            combined.dups = out.dups
        return combined

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _merge_sources(node: Any) -> list[Any]:
    """The mappings a YAML mapping node merges (``<<: *a``, ``<<: [*a, *b]``), in order."""
    import yaml

    sources: list[Any] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            continue
        items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for item in items:
            if not isinstance(item, yaml.MappingNode):
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"'<<' merges a mapping or a list of mappings, not a {item.id}",
                    item.start_mark,
                )
            sources.append(item)
    return sources


def _syntax(source: str, line: int, col: int, message: str, hint: str) -> PlanError:
    return PlanError([Problem(f"{line}:{col}", f"syntax error: {message}", hint=hint)], source)


def _beyond_limit(source: str, at: tuple[int, int], message: str, hint: str) -> PlanError:
    """A document the parser could not finish (too deep, a number Python cannot convert),
    located by ``line:column`` when ``at`` knows it (``(0, 0)``: it does not)."""
    path = f"{at[0]}:{at[1]}" if at != (0, 0) else "$"
    return PlanError([Problem(path, message, hint=hint)], source)


def read_document(path: str | os.PathLike[str]) -> Any:
    """Read a plan file into plain Python data (JSON, YAML or TOML by extension).

    Raises :class:`PlanError` for a missing or unreadable file or a syntax error
    (located by ``line:column``).
    """
    p = Path(path)
    # Printable however it was spelled (an API caller may pass "\ud800.json").
    source = str(p).encode("utf-8", "backslashreplace").decode("utf-8")
    if source != str(p):  # the run store records the path: it must be text
        raise PlanError(
            [Problem("$", "the plan file's path is not valid UTF-8", hint="rename the file")],
            source,
        )
    try:
        with p.open("rb") as file:
            data = file.read(MAX_PLAN_BYTES + 1)  # never more: /dev/zero is a "file" too
        if len(data) > MAX_PLAN_BYTES:
            raise PlanError([_too_big()], source)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise PlanError(
            [Problem("$", f"plan file not found: {source}", hint="check the path")], source
        ) from None
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        why = shown(exc, 1000) if str(exc) else type(exc).__name__
        raise PlanError([Problem("$", f"cannot read plan file: {why}")], source) from None
    return parse_document(text, p.suffix.lower(), source)


def read_stream(stream: BinaryIO, source: str = STDIN_SOURCE) -> Any:
    """Read a plan from ``stream`` (``planrun run -``: standard input) into plain data,
    within the same limits as a file; the format is sniffed (:func:`sniff_suffix`).

    Raises :class:`PlanError` (named ``source``) for unreadable or non-UTF-8 input, an
    empty stream or a syntax error.
    """
    try:
        data = stream.read(MAX_PLAN_BYTES + 1)
        if len(data) > MAX_PLAN_BYTES:
            raise PlanError([_too_big()], source)
        text = data.decode("utf-8")
    except (OSError, UnicodeError, ValueError) as exc:
        why = shown(exc, 1000) if str(exc) else type(exc).__name__
        raise PlanError([Problem("$", f"cannot read the plan: {why}")], source) from None
    if not text.strip():
        empty = Problem("$", "no plan on standard input (it was empty)", hint=_PIPE_IT)
        raise PlanError([empty], source)
    return parse_document(text, sniff_suffix(text), source)


_PIPE_IT = "pipe a plan in: planrun run - < plan.yaml"
#: A TOML first line: ``key = ...`` (bare, dotted or quoted key) or a ``[table]`` header.
_TOML_START = re.compile(r"""^\s*(\[|[A-Za-z0-9_\-."']+\s*=)""")


def sniff_suffix(text: str) -> str:
    """The format of plan text without a file name, as a suffix for
    :func:`parse_document`: ``.json`` when the first character that is not white space
    is ``{``; ``.toml`` when the first line that is not blank or a ``#`` comment is a
    ``key = value`` or a ``[table]`` header (a plan is a mapping, so a ``[`` cannot
    start a JSON or YAML plan); else ``.yaml``."""
    if text.lstrip().startswith("{"):
        return ".json"
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return ".toml" if _TOML_START.match(line) else ".yaml"
    return ".yaml"


def parse_document(text: str, suffix: str = ".json", source: str = "<plan>") -> Any:
    """Parse plan text; ``suffix`` (``.json``, ``.yaml``/``.yml``, ``.toml``) picks the format.

    Raises :class:`PlanError` for a syntax error, a document over ``MAX_PLAN_BYTES``,
    nesting the parser cannot follow, or a number Python cannot convert.
    """
    if len(text) > MAX_PLAN_BYTES:  # characters, not bytes: cheap, and enough here
        raise PlanError([_too_big()], source)
    try:
        return _parse(text, suffix, source)
    except RecursionError:
        deep = f"nested deeper than {MAX_DEPTH} levels"
        raise _beyond_limit(source, _deep_at(text), deep, _FLATTEN) from None
    except (ValueError, OverflowError) as exc:  # JSON/TOML numbers Python cannot convert
        message, hint = _conversion_message(exc)
        raise _beyond_limit(source, _long_int_at(text), message, hint) from None


def _too_big() -> Problem:
    return Problem(
        "$",
        f"the plan is larger than {MAX_PLAN_BYTES // 2**20} MiB",
        hint=_SPLIT,
    )


_TOO_LONG_INT = f"an integer with more than {MAX_INT_DIGITS} digits"
_FLATTEN = f"use at most {MAX_DEPTH} levels of nested arrays and objects"
_LONG_INT = re.compile(rf"[0-9_]{{{MAX_INT_DIGITS + 1},}}")
_BRACKETS = re.compile(r'"(?:[^"\\\n]|\\.)*"' + r"|'[^'\n]*'|[\[\]{}]")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _deep_at(text: str) -> tuple[int, int]:
    """Where brackets first nest deeper than ``MAX_DEPTH`` (quoted strings skipped);
    ``(0, 0)`` when they never do (deep YAML block nesting, say)."""
    depth = 0
    for token in _BRACKETS.finditer(text):
        kind = token[0]
        if kind in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _line_col(text, token.start())
        elif kind in "]}":
            depth -= 1
    return 0, 0


def _long_int_at(text: str) -> tuple[int, int]:
    """Where the first run of more than ``MAX_INT_DIGITS`` digits is, else ``(0, 0)``."""
    found = _LONG_INT.search(text)
    return _line_col(text, found.start()) if found else (0, 0)


def _conversion_message(exc: BaseException) -> tuple[str, str]:
    """A ValueError of a number or date conversion in planrun's words, and a hint."""
    if "integer string conversion" in str(exc):
        return _TOO_LONG_INT, "quote it to make it a string"
    return f"cannot convert this value: {exc}", "fix the value or quote it"


def _parse(text: str, suffix: str, source: str) -> Any:
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
        except _YamlValueError as exc:
            raise _beyond_limit(source, exc.at, *_conversion_message(exc.cause)) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise _syntax(source, line, col, str(exc.problem), "fix the YAML syntax") from None
        except yaml.YAMLError as exc:
            raise _syntax(source, 0, 0, str(exc), "fix the YAML syntax") from None
    if suffix == ".toml":
        import tomllib  # only for a TOML plan (start-up)

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            line, col = (int(found[1]), int(found[2])) if found else (0, 0)
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise _syntax(source, line, col, message, "fix the TOML syntax") from None
    fast = _json_fast(text)
    if fast is not _NOT_FAST:
        return fast
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        if not text.strip():  # an empty file: no syntax to fix
            raise _syntax(
                source,
                1,
                1,
                "the file is empty",
                'write a plan: {"plan_id": "...", "steps": [...]}',
            ) from None
        raise _syntax(
            source, exc.lineno, exc.colno, exc.msg, "fix the JSON syntax (is a comma missing?)"
        ) from None


_NOT_FAST = object()


def _json_fast(text: str) -> Any:
    """The JSON document parsed by msgspec (parse and re-encode: about half the time of
    ``json.loads`` with the duplicate-key hook on a 100,000-step plan, both with the GC
    paused as ``validate`` runs them), or ``_NOT_FAST`` when it might differ
    from what that slow path gives: then the slow path parses it and words any error.

    msgspec keeps the last of a repeated key silently, so a duplicate is detected by
    counting: without ``\\u`` escapes every ``:`` in the text is a key's or a literal
    one inside a string, and re-encoding keeps each kept key's and string's, so the
    counts are equal exactly when no key was dropped. Values msgspec refuses and
    ``json.loads`` takes (``NaN``, ``1e400``, huge integers) also take the slow path.
    """
    if "\\u" in text:  # an escape may spell a ':' (\u003a) or a lone surrogate
        return _NOT_FAST
    import msgspec  # the plan model imports it anyway

    try:
        doc = msgspec.json.decode(text)
        colons = msgspec.json.encode(doc).count(b":")
    except (msgspec.DecodeError, msgspec.EncodeError, RecursionError, ValueError):
        return _NOT_FAST
    return doc if colons == text.count(":") else _NOT_FAST


_SCALARS = (str, float, bool, type(None))


def quick_scan(doc: Any) -> tuple[bool, bool]:
    """(certainly within the limits, may hold a duplicate key): one pass over parsed
    plan data that builds no paths, so that a plan of 100,000 steps is checked in a
    fraction of :func:`check_limits`' time.

    "Not certainly within" is not "beyond": anything unusual (a tuple, a YAML date, a
    string that is not ASCII and not encodable, a value near a limit) stops the scan,
    and the caller then runs :func:`check_limits`, which locates every problem. A scan
    stopped early answers "may hold a duplicate key" too.
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    seen = 1
    dups = False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False, True
        if isinstance(node, dict):
            dups = dups or isinstance(node, _DupKeys)
            if not _all_text(node):  # the keys
                return False, True
            values: Any = node.values()
        elif type(node) is list:
            values = node
        else:
            return False, True
        seen += len(values)
        if seen > MAX_VALUES:
            return False, True
        if type(node) is list and _all_text(node):
            continue  # a list of strings (args, depends_on): checked in one C call
        for value in values:
            kind = type(value)
            if kind is str:
                if not value.isascii() and not encodable(value):
                    return False, True
            elif kind is list and depth < MAX_DEPTH and _all_text(value):
                seen += len(value)  # args, depends_on: checked here, never stacked
            elif kind is dict or kind is list or kind is _DupKeys:
                stack.append((value, depth + 1))
            elif kind is int:
                if not -_INT_BOUND < value < _INT_BOUND:
                    return False, True
            elif kind not in _SCALARS:
                return False, True
    return (True, dups) if seen <= MAX_VALUES else (False, True)


def _all_text(items: Any) -> bool:
    """Whether every item is a string that can be encoded (False: maybe not)."""
    try:
        joined = "".join(items)  # Python strings never merge two lone surrogates
    except TypeError:
        return False
    return joined.isascii() or encodable(joined)


def check_limits(doc: Any) -> list[Problem]:
    """The limits of parsed plan data, checked without recursion: nesting depth, number
    of values, integer size, and strings (keys too) that cannot be encoded.

    Runs before anything else looks at ``doc``: a recursive walk, msgspec, the store
    and the terminal could each fail on such data with an exception of their own.
    YAML aliases can make a small file a huge (or cyclic) tree: the value count and
    the depth bound both.
    """
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(doc, "$", 1)]
    seen = 0
    while stack and len(problems) < _MAX_DOCUMENT_PROBLEMS:
        node, path, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            problems.append(
                Problem("$", f"the plan holds more than {MAX_VALUES:,} values", hint=_SPLIT)
            )
            break
        if isinstance(node, str):
            if not encodable(node):
                problems.append(Problem(path, _UNENCODABLE, hint=_FIX_TEXT))
        elif isinstance(node, int) and not isinstance(node, bool):
            if not -_INT_BOUND < node < _INT_BOUND:
                problems.append(Problem(path, _TOO_LONG_INT, hint="quote it to make it a string"))
        elif isinstance(node, (dict, list, tuple, set, frozenset)):
            if depth > MAX_DEPTH:
                problems.append(
                    Problem(path, f"nested deeper than {MAX_DEPTH} levels", hint=_FLATTEN)
                )
                continue
            children: list[tuple[Any, str, int]] = []
            if isinstance(node, dict):
                for key, value in node.items():
                    where = f"{path}.{shown(key)}"
                    if isinstance(key, str) and not encodable(key):
                        problems.append(Problem(where, "the key " + _UNENCODABLE, hint=_FIX_TEXT))
                    children.append((value, where, depth + 1))
            else:
                children = [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
            stack.extend(reversed(children))  # popped in document order
    return problems


def duplicate_keys(node: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(path, key) of every key that appears more than once in an object of ``node``
    (parsed by this module; call after :func:`check_limits`: it recurses)."""
    if isinstance(node, dict):
        if isinstance(node, _DupKeys):
            for key in node.dups:
                yield f"{path}.{key}", key
        for key, value in node.items():
            yield from duplicate_keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from duplicate_keys(item, f"{path}[{i}]")
