"""Read, decode and validate plans; resolve variables into ready-to-run steps.

Validation reports every problem in one pass, each with a location (a JSON path such
as ``$.steps[3].depends_on[0]``, or ``line:column`` for syntax errors), the step id
when there is one, and a hint. Pure except for :func:`read_document`, which reads the
file it is given.
"""

from __future__ import annotations

import contextlib
import difflib
import enum
import json
import os
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from . import graph, subst
from .errors import PlanError, Problem
from .model import VAR_NAME_PATTERN, Globals, Plan, Step

__all__ = [
    "BUILTIN_VARIABLES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_PLAN_BYTES",
    "MAX_VALUES",
    "ResolvedStep",
    "Validation",
    "decode_plan",
    "load_plan",
    "parse_var",
    "read_document",
    "resolve_steps",
    "resolve_variables",
    "validate",
]

#: Variables planrun defines itself (they may not be declared or passed).
BUILTIN_VARIABLES = ("PLAN_DIR",)
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "busybox"})
_VAR_NAME = re.compile(VAR_NAME_PATTERN)
_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_FIELD_OF_PATH = re.compile(r"^\$\.(?P<field>[A-Za-z_$][A-Za-z0-9_$]*)")
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<field>[^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `(?P<field>[^`]*)`")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

#: Limits of a plan document (README "Limits"), checked before anything recurses into
#: it, so that no input ends in a RecursionError, a MemoryError or a conversion error.
MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # levels of nested arrays/objects, the top-level object being level 1
MAX_VALUES = 1_000_000  # strings, numbers, arrays, ... counted over the whole document
MAX_INT_DIGITS = 4300  # Python's own limit for int <-> str conversion
_INT_BOUND = 10**MAX_INT_DIGITS
_MAX_DOCUMENT_PROBLEMS = 20  # enough to act on; a million of them helps nobody

T = TypeVar("T", bound=msgspec.Struct)


# --- reading -------------------------------------------------------------------------


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
        loader.flatten_mapping(node)
        pairs = loader.construct_pairs(node, deep=True)
        for key, _ in pairs:
            if not isinstance(key, Hashable):  # "? [a, b]: c" is valid YAML
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    "found a key that is a list or an object",
                    node.start_mark,
                )
        return _pairs_hook(pairs)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


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
        why = _shown(exc, 1000) if str(exc) else type(exc).__name__
        raise PlanError([Problem("$", f"cannot read plan file: {why}")], source) from None
    return parse_document(text, p.suffix.lower(), source)


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
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            line, col = (int(found[1]), int(found[2])) if found else (0, 0)
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise _syntax(source, line, col, message, "fix the TOML syntax") from None
    try:
        return json.loads(text, object_pairs_hook=_pairs_hook)
    except json.JSONDecodeError as exc:
        raise _syntax(
            source, exc.lineno, exc.colno, exc.msg, "fix the JSON syntax (is a comma missing?)"
        ) from None


# --- decoding ------------------------------------------------------------------------


def _fields(typ: type[msgspec.Struct]) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(typ)]


def _hint_for(message: str, typ: type[msgspec.Struct], fld: str | None) -> str | None:
    if (found := _UNKNOWN_FIELD.search(message)) is not None:
        close = difflib.get_close_matches(found["field"], _fields(typ), n=1)
        return (
            f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(_fields(typ))}"
        )
    if message.startswith("Invalid enum value") and fld is not None:
        for f in msgspec.structs.fields(typ):
            if f.encode_name == fld:
                kind = f.type
                is_enum = isinstance(kind, type) and issubclass(kind, enum.Enum)
                members = [m.value for m in kind] if is_enum else []
                return f"expected one of: {', '.join(members)}" if members else None
    if "matching regex" in message and fld == "id":
        return "use letters, digits, '.', '_' and '-', starting with a letter or digit (max 128)"
    return None


def _readable(message: str) -> str:
    """msgspec's message, lower-cased, with field names quoted like ours."""
    message = re.sub(r"Object contains unknown field `([^`]*)`", r"unknown field '\1'", message)
    message = re.sub(
        r"Object missing required field `([^`]*)`", r"missing required field '\1'", message
    )
    # Our patterns end in \Z (see model.py); users know the regex from the README/schema.
    message = message.replace("\\\\Z'", "$'")
    return message[0].lower() + message[1:]


def _bad_key(typ: type[msgspec.Struct], fld: str, value: Any) -> str:
    """The first key of mapping field ``fld`` whose value does not fit (msgspec says
    ``[...]``)."""
    kind = next(f.type for f in msgspec.structs.fields(typ) if f.encode_name == fld)
    for key, item in (value or {}).items():
        try:
            msgspec.convert({key: item}, kind)
        except msgspec.ValidationError:
            return str(key)
    return "[...]"


def _convert(
    data: Mapping[str, Any],
    typ: type[T],
    prefix: str,
    problems: list[Problem],
    step_id: str | None = None,
) -> T | None:
    """Convert ``data`` to ``typ``, reporting *every* bad field, not just the first.

    After each error the offending field is dropped and conversion retried, so one bad
    field does not hide the next. Returns None when a required field is unusable.
    """
    work = dict(data)
    dropped: set[str] = set()
    for _ in range(len(work) + 2):
        try:
            return msgspec.convert(work, typ, str_keys=True)
        except msgspec.ValidationError as exc:
            parts = _MSGSPEC_AT.match(str(exc))
            assert parts is not None
            message, path = parts["msg"], parts["path"] or "$"
            missing = _MISSING_FIELD.search(message)
            if missing is not None and missing["field"] in dropped:
                return None
            unknown = _UNKNOWN_FIELD.search(message)
            of_path = _FIELD_OF_PATH.match(path)
            fld = unknown["field"] if unknown else (of_path["field"] if of_path else None)
            where = prefix + path[1:]
            if fld is not None and path == f"$.{fld}[...]":
                where = f"{prefix}.{fld}.{_bad_key(typ, fld, work.get(fld))}"
            if unknown is not None:
                where = f"{prefix}.{fld}"
            hint = _hint_for(message, typ, fld)
            if unknown is not None and path != "$" and of_path is not None:
                # In a nested object (e.g. "lock": {...}): say where, drop the whole field.
                where = f"{prefix}{path[1:]}.{unknown['field']}"
                fld, hint = of_path["field"], None
            if missing is not None:
                hint = f"add '{missing['field']}'"
            problems.append(Problem(where, _readable(message), step_id, hint))
            if fld is None or fld not in work:
                return None
            del work[fld]
            dropped.add(fld)
    return None


def decode_plan(
    doc: Any, given: Mapping[str, str] | None = None, secrets: Collection[str] = ()
) -> tuple[Plan | None, list[Problem]]:
    """Turn parsed plan data into a :class:`Plan`, collecting every structural problem.

    Returns the plan (None if it could not be built) and the problems found, which
    include type, value, unknown-field and duplicate-key errors for every step.
    """
    given = given or {}
    problems = _check_document(doc)
    if problems:  # nothing below may recurse into, convert or print such data
        return None, problems
    ids = _raw_ids(doc.get("steps") if isinstance(doc, dict) else None)
    for path, key in _duplicate_keys(doc, "$"):
        at = re.match(r"\$\.steps\[(\d+)\]", path)
        sid = ids[int(at[1])] if at and int(at[1]) < len(ids) else None
        sid = _shown(sid, 200) if sid is not None else None
        problems.append(
            Problem(path, f"key '{key}' appears more than once", sid, hint="keep one of them")
        )
    if not isinstance(doc, dict):
        kind = type(doc).__name__ if doc is not None else "nothing"
        problems.append(Problem("$", f"a plan must be an object, got {kind}"))
        return None, problems
    raw_steps = doc.get("steps")
    top = {k: v for k, v in doc.items() if k not in ("steps", "globals")}
    top["steps"] = []
    shell = _convert(top, Plan, "$", problems)
    globals_ = Globals()
    if "globals" in doc:
        if isinstance(doc["globals"], dict):
            globals_ = _convert(doc["globals"], Globals, "$.globals", problems) or Globals()
        else:
            problems.append(Problem("$.globals", "expected an object"))
    steps: list[Step | None] = []
    if raw_steps is None:
        problems.append(Problem("$", "missing required field 'steps'", hint="add 'steps'"))
    elif not isinstance(raw_steps, list):
        problems.append(Problem("$.steps", "expected an array of steps"))
    else:
        for i, raw in enumerate(raw_steps):
            if not isinstance(raw, dict):
                problems.append(Problem(f"$.steps[{i}]", "expected an object (a step)"))
                steps.append(None)
                continue
            # Escaped: a bad id ("abc\n") must not break its message's line.
            sid = _shown(raw["id"], 200) if isinstance(raw.get("id"), str) else None
            steps.append(_convert(raw, Step, f"$.steps[{i}]", problems, sid))
        if not raw_steps:
            problems.append(Problem("$.steps", "a plan needs at least one step"))
    indexed = [(i, s) for i, s in enumerate(steps) if s is not None]
    problems += _check_graph(_raw_ids(raw_steps), steps)
    # Without a usable top level, check the steps against a stand-in so that their
    # problems are still reported in this pass.
    base = shell if shell is not None else _stand_in(doc.get("variables"))
    partial = msgspec.structs.replace(base, steps=[s for _, s in indexed], globals=globals_)
    problems += _check_values(partial, indexed)
    problems += _check_variables(partial, indexed, given, secrets)
    problems += _check_step_refs(partial, indexed)
    if shell is None or len(indexed) != len(steps) or raw_steps is None:
        return None, problems
    return partial, problems


def _shown(text: Any, limit: int = 80) -> str:
    """``text`` fit to print in a message on one line: escaped (``\\n``, ``\\ud800``)
    unless printable, at most ``limit`` characters."""
    shown = str(text)
    if not shown.isprintable():
        shown = shown.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _encodable(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (no lone surrogate such as ``\\ud800``,
    which a JSON escape or undecodable command-line bytes produce)."""
    return text.isascii() or _SURROGATE.search(text) is None


def _check_document(doc: Any) -> list[Problem]:
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
            if not _encodable(node):
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
                    where = f"{path}.{_shown(key)}"
                    if isinstance(key, str) and not _encodable(key):
                        problems.append(Problem(where, "the key " + _UNENCODABLE, hint=_FIX_TEXT))
                    children.append((value, where, depth + 1))
            else:
                children = [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
            stack.extend(reversed(children))  # popped in document order
    return problems


_SPLIT = "split it into smaller plans"
_UNENCODABLE = "contains a lone surrogate (such as \\ud800), which is not valid UTF-8"
_FIX_TEXT = "remove it or write the character it was meant to be"


def _stand_in(variables: Any) -> Plan:
    """A placeholder top level carrying the plan's variables if they are usable."""
    try:
        return msgspec.convert({"plan_id": "?", "steps": [], "variables": variables or {}}, Plan)
    except msgspec.ValidationError:
        return Plan(plan_id="?", steps=[])


def _duplicate_keys(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node, _DupKeys):
            for key in node.dups:
                yield f"{path}.{key}", key
        for key, value in node.items():
            yield from _duplicate_keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def _raw_ids(raw_steps: Any) -> list[str | None]:
    if not isinstance(raw_steps, list):
        return []
    return [
        s.get("id") if isinstance(s, dict) and isinstance(s.get("id"), str) else None
        for s in raw_steps
    ]


# --- semantic checks ----------------------------------------------------------------


def _check_graph(ids: Sequence[str | None], steps: Sequence[Step | None]) -> list[Problem]:
    """Duplicate ids, self/unknown dependencies and cycles."""
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
    known = list(first)
    deps: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        if step is None:
            continue
        seen: set[str] = set()
        for j, dep in enumerate(step.depends_on):
            where = f"$.steps[{i}].depends_on[{j}]"
            if dep == step.id:
                problems.append(
                    Problem(where, "a step cannot depend on itself", step.id, "remove it")
                )
            elif dep not in first:
                close = difflib.get_close_matches(dep, known, n=1)
                hint = f"did you mean '{close[0]}'?" if close else "check the step ids"
                problems.append(Problem(where, f"unknown dependency '{dep}'", step.id, hint))
            elif dep in seen:
                problems.append(
                    Problem(where, f"'{dep}' is listed twice", step.id, "remove one", True)
                )
            seen.add(dep)
        if first.get(step.id) == i:
            deps[step.id] = [d for d in step.depends_on if d != step.id]
    for cycle in graph.find_cycles(deps):
        if len(cycle) == 2 and cycle[0] == cycle[1]:
            continue  # reported above as a self-dependency
        head = cycle[0]
        index = first[head]
        problems.append(
            Problem(
                f"$.steps[{index}].depends_on",
                "dependency cycle: " + " -> ".join(cycle),
                head,
                "remove one of these dependencies",
            )
        )
    return problems


Indexed = Sequence[tuple[int, Step]]


def _templates(plan: Plan, indexed: Indexed) -> Iterator[tuple[str, str | None, str, Step | None]]:
    """Every string that takes ``${...}``: (path, step id, template, step)."""
    for key, value in plan.globals.env.items():
        yield f"$.globals.env.{key}", None, value, None
    if plan.globals.cwd is not None:
        yield "$.globals.cwd", None, plan.globals.cwd, None
    for path, template in plan.globals.lock_templates():
        yield path, None, template, None
    for i, step in indexed:
        base = f"$.steps[{i}]"
        yield f"{base}.command", step.id, step.command, step
        for j, arg in enumerate(step.args):
            yield f"{base}.args[{j}]", step.id, arg, step
        for key, value in step.env.items():
            yield f"{base}.env.{key}", step.id, value, step
        if step.cwd is not None:
            yield f"{base}.cwd", step.id, step.cwd, step


def _check_values(plan: Plan, indexed: Indexed) -> list[Problem]:
    """Empty commands, NUL bytes, bad env names, commands that look like shell lines."""
    problems: list[Problem] = []
    for name in plan.variables:
        if not _VAR_NAME.match(name) or name in BUILTIN_VARIABLES:
            problems.append(
                Problem(
                    f"$.variables.{_shown(name)}",
                    f"invalid variable name '{_shown(name)}'",
                    hint="use letters, digits and '_' (not starting with a digit); "
                    f"{', '.join(BUILTIN_VARIABLES)} is built in",
                )
            )
    envs: list[tuple[str, str | None, dict[str, str]]] = [("$.globals.env", None, plan.globals.env)]
    envs += [(f"$.steps[{i}].env", s.id, s.env) for i, s in indexed]
    for base, sid, env in envs:
        for key in env:
            if not key or "=" in key or "\0" in key:
                problems.append(
                    Problem(f"{base}.{key}", f"invalid environment variable name {key!r}", sid)
                )
    for i, step in indexed:
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
    for path, sid, template, _ in _templates(plan, indexed):
        if "\0" in template:
            problems.append(Problem(path, "contains a NUL byte", sid, "remove it"))
    return problems


def _shell_script_index(step: Step) -> int | None:
    """Index in ``args`` of the script of ``sh -c SCRIPT`` (None if not such a step)."""
    if os.path.basename(step.command) not in _SHELLS:
        return None
    takes_value = False
    for j, arg in enumerate(step.args):
        if takes_value:  # the value of -o/-O (e.g. "-o pipefail")
            takes_value = False
            continue
        if arg == "--" or not arg.startswith(("-", "+")) or len(arg) < 2:
            return None
        if arg.startswith("--"):
            continue  # long options such as --norc take no value
        letters = arg[1:]
        if "c" in letters and arg[0] == "-":
            return j + 1 if j + 1 < len(step.args) else None
        takes_value = letters[-1] in "oO"
    return None


def _check_secrets(plan: Plan, given: Mapping[str, str], secrets: Collection[str]) -> list[Problem]:
    """Secret names that clash with variables or built-ins, or feed the lock name."""
    problems: list[Problem] = []
    declared = [(f"$.secrets[{i}]", name) for i, name in enumerate(plan.secrets)]
    declared += [(f"--secret {name}", name) for name in secrets if name not in plan.secrets]
    for where, name in declared:
        if not _VAR_NAME.match(name):
            problems.append(Problem(_shown(where), f"invalid secret name '{_shown(name)}'"))
        elif name in BUILTIN_VARIABLES or name in plan.variables or name in given:
            problems.append(
                Problem(
                    where,
                    f"'{name}' is both a secret and a variable",
                    hint="rename one of them: a secret's value never comes from --var",
                )
            )
    names = set(plan.secrets) | set(secrets)
    for path, template in plan.globals.lock_templates():
        with contextlib.suppress(subst.SubstError):
            # dict.fromkeys: each secret once, in order of first use.
            for name in dict.fromkeys(subst.references(template)):
                if name in names:
                    problems.append(
                        Problem(
                            path,
                            f"the lock name uses secret '{name}'",
                            hint="lock names are stored and shown in clear: use a variable",
                        )
                    )
    return problems


def _check_variables(
    plan: Plan, indexed: Indexed, given: Mapping[str, str], secrets: Collection[str] = ()
) -> list[Problem]:
    """Undefined or malformed references, required variables without a value, secrets
    that clash, and variables spliced into ``sh -c`` scripts."""
    problems = _check_secrets(plan, given, secrets)
    defined = (
        set(plan.variables) | set(given) | set(BUILTIN_VARIABLES) | set(plan.secrets) | set(secrets)
    )
    for name, default in plan.variables.items():
        if default is None and name not in given:
            problems.append(
                Problem(
                    f"$.variables.{name}",
                    f"variable '{name}' has no default and no value",
                    hint=f"pass --var {name}=...",
                )
            )
    values = {k: v for k, v in plan.variables.items() if isinstance(v, str)} | dict(given)
    for name, value in values.items():
        problem = _bad_value(name, value)
        if problem is not None:
            where = f"--var {_shown(name)}" if name in given else f"$.variables.{name}"
            hint = "remove it: it cannot be passed to a program or stored"
            problems.append(Problem(where, problem, hint=hint))
    for name in given:
        if not isinstance(name, str) or not _VAR_NAME.match(name):
            problems.append(
                Problem(
                    f"--var {_shown(name)}",
                    f"invalid variable name '{_shown(name)}'",
                    hint="use letters, digits and '_' (not starting with a digit)",
                )
            )
        elif name in BUILTIN_VARIABLES:
            problems.append(Problem(f"--var {name}", f"'{name}' is built in and cannot be set"))
    script_at = {s.id: _shell_script_index(s) for _, s in indexed}
    for path, sid, template, step in _templates(plan, indexed):
        try:
            names = list(subst.references(template))
        except subst.SubstError as exc:
            problems.append(Problem(path, str(exc), sid))
            continue
        for name in dict.fromkeys(names):
            if name not in defined:
                problems.append(
                    Problem(
                        path,
                        f"variable '{name}' is not defined",
                        sid,
                        f'pass --var {name}=... or declare it under "variables" (or "secrets")',
                    )
                )
        index = script_at.get(sid) if step is not None and sid is not None else None
        if names and index is not None and path.endswith(f".args[{index}]"):
            first = names[0]
            problems.append(
                Problem(
                    path,
                    f"'${{{first}}}' is spliced into a shell script: a value with quotes or "
                    "';' would run as code",
                    sid,
                    f'use "${first}" instead (every variable is in the step\'s environment)',
                    warning=True,
                )
            )
        in_argv = ".args[" in path or path.endswith(".command")
        secret = next((n for n in names if n in plan.secrets or n in secrets), None)
        if in_argv and secret is not None:
            problems.append(
                Problem(
                    path,
                    f"secret '{secret}' is put on a command line, which other local users "
                    "can read (ps, /proc)",
                    sid,
                    f'read it from the environment instead ("${secret}" in a script)',
                    warning=True,
                )
            )
    return problems + _check_shadowed_env(plan, indexed, defined)


def _bad_value(name: str, value: Any) -> str | None:
    """Why a variable's value cannot be passed to a program or stored, if it cannot.

    Plan values were checked by :func:`_check_document`; this is for ``--var`` and
    ``run_plan(variables=...)``, whose undecodable bytes come as lone surrogates.
    """
    if not isinstance(value, str):
        return f"variable '{_shown(name)}' is a {type(value).__name__}, not a string"
    if "\0" in value:
        return f"variable '{_shown(name)}' contains a NUL byte"
    if not _encodable(value):
        return f"variable '{_shown(name)}' is not valid UTF-8 (it holds a lone surrogate)"
    return None


def _check_shadowed_env(plan: Plan, indexed: Indexed, defined: Collection[str]) -> list[Problem]:
    """Warn about env entries a variable or secret of the same name overrides (they
    come last in a step's environment), unless the entry is just ``${NAME}``."""
    envs: list[tuple[str, str | None, dict[str, str]]] = [("$.globals.env", None, plan.globals.env)]
    envs += [(f"$.steps[{i}].env", s.id, s.env) for i, s in indexed]
    return [
        Problem(
            f"{base}.{key}",
            f"env '{key}' has no effect: the variable '{key}' overrides it "
            "(variables and secrets come last in a step's environment)",
            sid,
            "rename the env entry or the variable",
            warning=True,
        )
        for base, sid, env in envs
        for key, value in env.items()
        if key in defined and value != f"${{{key}}}"
    ]


def _check_step_refs(plan: Plan, indexed: Indexed) -> list[Problem]:
    """``${steps.ID...}``: only in a step's args/env/cwd, naming an ancestor."""
    problems: list[Problem] = []
    deps = {s.id: s.depends_on for _, s in indexed}
    ids = list(deps)
    for path, sid, template, _ in _templates(plan, indexed):
        try:
            refs = list(dict.fromkeys(subst.step_references(template)))
        except subst.SubstError:
            continue  # reported by _check_variables
        if not refs:
            continue
        if sid is None or path.endswith(".command"):
            problems.append(
                Problem(
                    path,
                    f"'{refs[0].text}': a step's results can be used only in the args, env "
                    "and cwd of a later step",
                    sid,
                )
            )
            continue
        above = graph.ancestors(deps, sid)
        for ref in refs:
            if ref.step_id in above:
                continue
            if ref.step_id == sid:
                message, hint = f"'{ref.text}' refers to the step itself", None
            elif ref.step_id not in deps:
                close = difflib.get_close_matches(ref.step_id, ids, n=1)
                message = f"'{ref.text}' names an unknown step '{ref.step_id}'"
                hint = f"did you mean '{close[0]}'?" if close else "check the step ids"
            else:
                message = f"'{ref.text}': step '{ref.step_id}' is not an ancestor of '{sid}'"
                hint = f"add '{ref.step_id}' to depends_on, so it finishes first"
            problems.append(Problem(path, message, sid, hint))
    return problems


# --- public entry points ------------------------------------------------------------


@dataclass(frozen=True)
class Validation:
    """The outcome of validating a plan: the plan (None if unusable) and every problem."""

    plan: Plan | None
    problems: tuple[Problem, ...]
    source: str | None = None
    base_dir: Path | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if not p.warning)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.warning)

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.errors

    def raise_for_errors(self) -> Plan:
        """The plan, or :class:`PlanError` listing every problem (warnings included)."""
        if self.plan is None or self.errors:
            raise PlanError(self.problems, self.source)
        return self.plan


def validate(
    plan: Plan | Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> Validation:
    """Validate a plan (a :class:`Plan`, parsed data, or a file path) in one pass.

    ``secrets`` names secrets given besides the plan's own ``secrets`` list (the CLI's
    ``--secret``); their values are not needed here.

    Syntax errors and an unreadable file raise :class:`PlanError` (nothing else can be
    checked then); every other problem is collected into the returned
    :class:`Validation`.
    """
    given = dict(variables or {})
    source: str | None = None
    base_dir: Path | None = None
    if isinstance(plan, Plan):
        doc: Any = msgspec.to_builtins(plan)
    elif isinstance(plan, (str, os.PathLike)):
        doc = read_document(plan)  # first: it reports a path that cannot be resolved
        source = str(plan)
        base_dir = Path(plan).resolve().parent
    else:
        doc = plan
    decoded, problems = decode_plan(doc, given, secrets)
    return Validation(decoded, tuple(sorted(problems, key=_step_order)), source, base_dir)


def _step_order(problem: Problem) -> int:
    """Sort key: top-level problems first, then by step position (stable otherwise)."""
    found = re.match(r"\$\.steps\[(\d+)\]", problem.path)
    return int(found[1]) if found else -1


def load_plan(
    plan: Mapping[str, Any] | str | os.PathLike[str],
    variables: Mapping[str, str] | None = None,
) -> Plan:
    """Read and validate a plan; raise :class:`PlanError` listing every problem."""
    return validate(plan, variables).raise_for_errors()


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


Pieces = tuple[str | subst.StepRef, ...]


@dataclass(frozen=True, slots=True)
class ResolvedStep:
    """A step with every variable substituted: what the executor is given.

    ``env`` holds only what the plan adds (``globals.env``, step ``env``, variables);
    the executor lays it over the caller's environment. Fields that use another step's
    results (``${steps.ID...}``) are in ``late`` and filled in by :meth:`bind` when the
    step starts; ``argv``/``env``/``cwd`` hold them unbound until then.
    """

    step: Step
    index: int
    argv: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    cwd: str | None
    timeout: float | None
    #: (kind, key, pieces): kind "argv" (key: index), "env" (key: name) or "cwd".
    late: tuple[tuple[str, int | str | None, Pieces], ...] = ()
    base_dir: Path | None = None
    #: The step's ``max_log_bytes``, else the global one (None: logs are not capped).
    max_log_bytes: int | None = None

    @property
    def step_refs(self) -> list[subst.StepRef]:
        """The step references this step uses, once each, in order."""
        refs = (p for _, _, pieces in self.late for p in pieces if isinstance(p, subst.StepRef))
        return list(dict.fromkeys(refs))

    def bind(
        self, lookup: Callable[[subst.StepRef], str]
    ) -> tuple[tuple[str, ...], dict[str, str], str | None]:
        """argv, env and cwd with step references filled in by ``lookup`` (whose
        errors propagate: a missing output must fail the step, not become "")."""
        if not self.late:
            return self.argv, self.env, self.cwd
        argv, env, cwd = list(self.argv), dict(self.env), self.cwd
        for kind, key, pieces in self.late:
            value = subst.render(pieces, lookup)
            if kind == "argv" and isinstance(key, int):
                argv[key] = value
            elif kind == "env" and isinstance(key, str):
                env[key] = value
            else:
                cwd = str((self.base_dir or Path.cwd()) / value)
        return tuple(argv), env, cwd


def _split(pieces: Pieces) -> str | None:
    """The finished string, or None when ``pieces`` still holds step references."""
    if len(pieces) == 1 and isinstance(pieces[0], str):
        return pieces[0]
    return None


def _placeholder(pieces: Pieces) -> str:
    """How an unbound field reads until the step starts (``--dry-run`` shows it)."""
    return subst.render(pieces, lambda ref: ref.text)


def resolve_steps(
    plan: Plan, values: Mapping[str, str], plan_dir: Path | None
) -> list[ResolvedStep]:
    """Substitute variables into every step (validate first: unknown names raise).

    ``values`` are the variables and secrets; every one is also put in the step's
    environment.
    """
    base = plan_dir or Path.cwd()
    global_env = {k: subst.substitute(v, values) for k, v in plan.globals.env.items()}
    resolved = []
    for index, step in enumerate(plan.steps):
        late: list[tuple[str, int | str | None, Pieces]] = []
        env = dict(global_env)
        for key, template in step.env.items():
            pieces = subst.partial(template, values)
            text = _split(pieces)
            if text is None:
                if key not in values:  # a variable of that name wins, as below
                    late.append(("env", key, pieces))
                text = _placeholder(pieces)
            env[key] = text
        env.update(values)
        cwd_template = step.cwd if step.cwd is not None else plan.globals.cwd
        cwd = None
        if cwd_template is not None:
            pieces = subst.partial(cwd_template, values)
            text = _split(pieces)
            if text is None:
                late.append(("cwd", None, pieces))
            else:
                cwd = str(base / text)
        argv = []
        for i, template in enumerate((step.command, *step.args)):
            pieces = subst.partial(template, values)
            text = _split(pieces)
            if text is None:
                late.append(("argv", i, pieces))
                text = _placeholder(pieces)
            argv.append(text)
        resolved.append(
            ResolvedStep(
                step=step,
                index=index,
                argv=tuple(argv),
                env=env,
                cwd=cwd,
                timeout=step.timeout_sec
                if step.timeout_sec is not None
                else plan.globals.default_timeout_sec,
                late=tuple(late),
                base_dir=base,
                max_log_bytes=step.max_log_bytes
                if step.max_log_bytes is not None
                else plan.globals.max_log_bytes,
            )
        )
    return resolved
