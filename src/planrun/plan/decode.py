"""Decoding parsed plan data into a :class:`~planrun.model.Plan`, every problem located.

msgspec stops at the first bad field and words it its own way; :func:`decode_plan`
retries without each bad field so that one pass reports them all, in planrun's words
and at a JSON path (``$.steps[3].retries``), then runs every check of
:mod:`.checks` and :mod:`.variables`. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

import msgspec

from ..errors import Problem
from ..model import Globals, Handlers, Plan, Step
from .checks import (
    BUILTIN_VARIABLES,
    Indexed,
    check_conditions,
    check_graph,
    check_instance_names,
    check_step_refs,
    check_values,
    condition_uses,
    parsed_templates,
)
from .expand import check_matrices
from .fanout_checks import check_for_each, without_item_names
from .handlers import check_handlers, check_view, decode_handlers, relocate
from .read import check_limits, duplicate_keys, quick_scan
from .rules import check_rules
from .text import shown
from .uses import check_uses_fields
from .variables import STRICT, GivenRules, check_variables

__all__ = ["decode_plan"]

T = TypeVar("T", bound=msgspec.Struct)

_MSGSPEC_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>\$[^`]*)`)?$", re.S)
_FIELD_OF_PATH = re.compile(r"^\$\.(?P<field>[A-Za-z_$][A-Za-z0-9_$]*)")
_UNKNOWN_FIELD = re.compile(r"unknown field `(?P<field>[^`]*)`")
_MISSING_FIELD = re.compile(r"missing required field `(?P<field>[^`]*)`")
_STEP_PATH = re.compile(r"\$\.steps\[(\d+)\]")


def decode_plan(
    doc: Any,
    given: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
    rules: GivenRules = STRICT,
) -> tuple[Plan | None, list[Problem]]:
    """Turn parsed plan data into a :class:`Plan`, collecting every structural problem.

    Returns the plan (None if it could not be built) and the problems found, which
    include type, value, unknown-field and duplicate-key errors for every step.
    ``rules`` says how the ``given`` variables are checked (see :class:`GivenRules`).
    """
    fits, dups = quick_scan(doc)
    problems = [] if fits else check_limits(doc)
    if problems:  # nothing below may recurse into, convert or print such data
        return None, problems
    problems = _duplicate_key_problems(doc) if dups else []
    if not isinstance(doc, dict):
        kind = type(doc).__name__ if doc is not None else "nothing"
        problems.append(Problem("$", f"a plan must be an object, got {kind}"))
        return None, problems
    # Top-level ``x-*`` keys are extension fields (YAML anchors live there, as in
    # docker compose files): ignored, in every format.
    doc = {k: v for k, v in doc.items() if not (isinstance(k, str) and k.startswith("x-"))}
    raw_steps = doc.get("steps")
    whole = _convert_whole(doc) if not problems else None
    shell: Plan | None
    if whole is not None:  # the common case: one msgspec call for the whole plan
        globals_, steps = whole.globals, list[Step | None](whole.steps)
        # The top level alone, as below: the handlers are checked on their own.
        shell = msgspec.structs.replace(whole, steps=[], handlers=Handlers())
    else:  # locate every problem: each part, each step on its own
        top = {k: v for k, v in doc.items() if k not in ("steps", "globals", "handlers")}
        top["steps"] = []
        shell = _convert(top, Plan, "$", problems)
        globals_ = _decode_globals(doc, problems)
        steps = _decode_steps(raw_steps, problems)
    handlers, entries = decode_handlers(doc.get("handlers"), problems, _convert)
    indexed = [(i, s) for i, s in enumerate(steps) if s is not None]
    raw_ids = _raw_ids(raw_steps)
    mine, replaced = check_handlers(entries, raw_ids, steps)
    problems += [p for p in check_graph(raw_ids, steps) if p.path not in replaced]
    problems += mine
    # Without a usable top level, check the steps against a stand-in so that their
    # problems are still reported in this pass.
    base = shell if shell is not None else _stand_in(doc.get("variables"))
    partial = msgspec.structs.replace(base, steps=[s for _, s in indexed], globals=globals_)
    combined, at = check_view(entries, indexed, len(steps))
    checked = _check(partial, combined, given or {}, secrets, rules)
    problems += relocate(checked, at, {e.raw_id for e in entries if e.raw_id})
    partial = msgspec.structs.replace(partial, handlers=handlers)
    if shell is None or len(indexed) != len(steps) or raw_steps is None:
        return None, problems
    if any(e.step is None for e in entries):
        return None, problems
    return partial, problems


def _convert_whole(doc: Mapping[str, Any]) -> Plan | None:
    """The plan in one conversion, or None when any part of it does not convert (then
    the part-by-part path finds and locates each problem). A plan without steps takes
    that path too: it reports them missing or empty in its own words."""
    if not isinstance(doc.get("steps"), list) or not doc["steps"]:
        return None
    try:
        return msgspec.convert(doc, Plan, str_keys=True)
    except msgspec.ValidationError:
        return None


def _check(
    plan: Plan,
    indexed: Indexed,
    given: Mapping[str, str],
    secrets: Collection[str],
    rules: GivenRules,
) -> list[Problem]:
    """Every check of a decoded (maybe partial) plan, in the order they are reported."""
    parsed = parsed_templates(plan, indexed)
    named = without_item_names(plan, indexed, parsed)
    defined = {*plan.variables, *given, *BUILTIN_VARIABLES, *plan.secrets, *secrets}
    return [
        *check_values(plan, indexed),
        *check_matrices(indexed),
        *check_variables(plan, indexed, named, given, secrets, rules, condition_uses(indexed)),
        *check_instance_names(indexed, parsed),
        *check_step_refs(indexed, parsed),
        *check_uses_fields(plan, indexed, parsed, secrets),
        *check_for_each(plan, indexed, parsed, given),
        *check_rules(plan, indexed),
        *check_conditions(indexed, defined),
        *_check_triggers(plan),
    ]


def _check_triggers(plan: Plan) -> list[Problem]:
    """The ``triggers`` checks; imported only for a plan that has triggers (start-up
    time of ``validate`` and ``run`` is measured)."""
    if not plan.triggers:
        return []
    from .trigger_checks import check_triggers

    return check_triggers(plan)


def _duplicate_key_problems(doc: Any) -> list[Problem]:
    ids = _raw_ids(doc.get("steps") if isinstance(doc, dict) else None)
    problems: list[Problem] = []
    for path, key in duplicate_keys(doc):
        at = _STEP_PATH.match(path)
        sid = ids[int(at[1])] if at and int(at[1]) < len(ids) else None
        sid = shown(sid, 200) if sid is not None else None
        problems.append(
            Problem(path, f"key '{key}' appears more than once", sid, hint="keep one of them")
        )
    return problems


def _decode_globals(doc: Mapping[str, Any], problems: list[Problem]) -> Globals:
    if "globals" not in doc:
        return Globals()
    if not isinstance(doc["globals"], dict):
        problems.append(Problem("$.globals", "expected an object"))
        return Globals()
    return _convert(doc["globals"], Globals, "$.globals", problems) or Globals()


def _decode_steps(raw_steps: Any, problems: list[Problem]) -> list[Step | None]:
    """The steps by position (None where one did not decode)."""
    steps: list[Step | None] = []
    if raw_steps is None:
        problems.append(Problem("$", "missing required field 'steps'", hint="add 'steps'"))
        return steps
    if not isinstance(raw_steps, list):
        problems.append(Problem("$.steps", "expected an array of steps"))
        return steps
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            problems.append(Problem(f"$.steps[{i}]", "expected an object (a step)"))
            steps.append(None)
            continue
        # Escaped: a bad id ("abc\n") must not break its message's line.
        sid = shown(raw["id"], 200) if isinstance(raw.get("id"), str) else None
        steps.append(_convert(raw, Step, f"$.steps[{i}]", problems, sid))
    if not raw_steps:
        problems.append(Problem("$.steps", "a plan needs at least one step"))
    return steps


def _stand_in(variables: Any) -> Plan:
    """A placeholder top level carrying the plan's variables if they are usable."""
    try:
        return msgspec.convert({"plan_id": "?", "steps": [], "variables": variables or {}}, Plan)
    except msgspec.ValidationError:
        return Plan(plan_id="?", steps=[])


def _raw_ids(raw_steps: Any) -> list[str | None]:
    if not isinstance(raw_steps, list):
        return []
    return [
        s.get("id") if isinstance(s, dict) and isinstance(s.get("id"), str) else None
        for s in raw_steps
    ]


# --- msgspec's errors in planrun's words ----------------------------------------------


class _Failure(msgspec.Struct, frozen=True):
    """One msgspec validation error, translated."""

    where: str
    message: str
    hint: str | None
    #: The top-level field to drop before retrying (None: nothing can be dropped).
    field: str | None
    #: The required field msgspec says is missing, if that is the error.
    missing: str | None


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
            failure = _translate(str(exc), typ, prefix, work)
        if failure.missing is not None and failure.missing in dropped:
            return None  # reported when it was dropped
        problems.append(Problem(failure.where, failure.message, step_id, failure.hint))
        if failure.field is None or failure.field not in work:
            return None
        del work[failure.field]
        dropped.add(failure.field)
    return None


def _translate(
    text: str, typ: type[msgspec.Struct], prefix: str, work: Mapping[str, Any]
) -> _Failure:
    """Where (under ``prefix``) msgspec's error ``text`` is, what it says, and what to do."""
    parts = _MSGSPEC_AT.match(text)
    assert parts is not None
    message, path = parts["msg"], parts["path"] or "$"
    missing = _MISSING_FIELD.search(message)
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
    return _Failure(where, _readable(message), hint, fld, missing["field"] if missing else None)


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
