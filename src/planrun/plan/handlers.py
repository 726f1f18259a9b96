"""Run handlers (``handlers.on_success`` / ``on_failure`` / ``on_cancel`` / ``on_exit``):
decoding them with every problem located, their own rules, and resolving them.

A handler is an ordinary step that runs after the main DAG has ended in that outcome.
Its ``depends_on`` may name only handlers of the same list (each list is a small DAG of
its own); it may use any main step's results (``${steps.X...}``: every main step has
ended when it starts); a main step can never depend on a handler, nor use its results.

The checks every step gets (variables, secrets, step references, commands, ...) run on
the handlers too: :func:`check_view` lists them after the main steps, as extra steps
that depend on every main step, and :func:`relocate` moves the problems found there
to the handler's own path (``$.handlers.on_failure[0].command``). Pure: no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from .. import graph
from ..errors import Problem
from ..model import Handlers, OnFailure, Plan, Step
from .resolve import ResolvedStep, resolve_step
from .text import shown

__all__ = [
    "HANDLER_KINDS",
    "HandlerEntry",
    "check_handlers",
    "check_view",
    "decode_handlers",
    "handler_steps",
    "relocate",
    "resolve_handlers",
]

#: The lists, in the order they are reported and shown.
HANDLER_KINDS = ("on_success", "on_failure", "on_cancel", "on_exit")

#: Step fields a handler cannot use (their expansion is for the main DAG).
_NOT_IN_HANDLERS = ("matrix", "for_each")

_STEPS_AT = re.compile(r"\$\.steps\[(\d+)\]")
_NOT_AN_ANCESTOR = re.compile(r"^'(?P<ref>[^']*)': step '(?P<id>[^']*)' is not an ancestor of")

#: Converts one object to a struct, reporting its problems (``decode._convert``).
Convert = Callable[[Mapping[str, Any], type[Step], str, list[Problem], str | None], Step | None]


class HandlerEntry(msgspec.Struct, frozen=True):
    """One handler as written: its list, its path, its raw id, the step (None: it did
    not decode)."""

    kind: str
    path: str
    raw_id: str | None
    step: Step | None


def handler_steps(handlers: Handlers) -> list[tuple[str, Step]]:
    """Every handler with its list, in :data:`HANDLER_KINDS` order."""
    return [(kind, step) for kind in HANDLER_KINDS for step in getattr(handlers, kind)]


# --- decoding ------------------------------------------------------------------------


def decode_handlers(
    raw: Any, problems: list[Problem], convert: Convert
) -> tuple[Handlers, list[HandlerEntry]]:
    """The ``handlers`` object (its decodable steps) and every entry, problems located."""
    entries: list[HandlerEntry] = []
    if raw is None:
        return Handlers(), entries
    if not isinstance(raw, dict):
        problems.append(
            Problem("$.handlers", "expected an object", hint="give lists: on_failure: [...]")
        )
        return Handlers(), entries
    for key in raw:
        if key not in HANDLER_KINDS:
            close = difflib.get_close_matches(str(key), HANDLER_KINDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "use " + ", ".join(HANDLER_KINDS)
            problems.append(Problem(f"$.handlers.{shown(key)}", "unknown handler list", hint=hint))
    for kind in HANDLER_KINDS:
        entries += _decode_list(kind, raw.get(kind), problems, convert)
    lists = {
        k: [e.step for e in entries if e.kind == k and e.step is not None] for k in HANDLER_KINDS
    }
    return Handlers(**lists), entries


def _decode_list(
    kind: str, raw: Any, problems: list[Problem], convert: Convert
) -> list[HandlerEntry]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(Problem(f"$.handlers.{kind}", "expected an array of steps"))
        return []
    entries = []
    for j, item in enumerate(raw):
        path = f"$.handlers.{kind}[{j}]"
        if not isinstance(item, dict):
            problems.append(Problem(path, "expected an object (a step)"))
            entries.append(HandlerEntry(kind, path, None, None))
            continue
        raw_id = item.get("id") if isinstance(item.get("id"), str) else None
        sid = shown(raw_id, 200) if raw_id is not None else None
        step = convert(item, Step, path, problems, sid)
        for name in _NOT_IN_HANDLERS:
            if name in item:
                problems.append(
                    Problem(
                        f"{path}.{name}",
                        f"a run handler cannot use '{name}'",
                        sid,
                        "write the handler out, or move the fan-out into the steps",
                    )
                )
        entries.append(HandlerEntry(kind, path, raw_id, step))
    return entries


# --- their own rules -----------------------------------------------------------------


def check_handlers(
    entries: Sequence[HandlerEntry], raw_ids: Sequence[str | None], steps: Sequence[Step | None]
) -> tuple[list[Problem], set[str]]:
    """Ids unique across steps and handlers, handler dependencies within their list
    (no cycle), and no main step depending on a handler.

    Returns the problems and the paths of main-step problems they replace (the generic
    "unknown dependency" of a main step naming a handler).
    """
    problems: list[Problem] = []
    if not entries:  # the common case, kept linear and cheap
        return problems, set()
    # Where each id is first used: a step's position, or a handler's path.
    first: dict[str, int | str] = {sid: i for i, sid in reversed(list(enumerate(raw_ids))) if sid}
    main_ids = set(first)
    kind_of: dict[str, str] = {}
    for e in entries:
        if e.raw_id is None:
            continue
        if e.raw_id in first:
            at = first[e.raw_id]
            at = f"$.steps[{at}]" if isinstance(at, int) else at
            problems.append(
                Problem(
                    f"{e.path}.id",
                    f"duplicate step id '{shown(e.raw_id)}' (first used at {at})",
                    shown(e.raw_id),
                    "give every step and handler a unique id",
                )
            )
        else:
            first[e.raw_id] = e.path
            kind_of[e.raw_id] = e.kind
    for e in entries:
        if e.step is not None:
            problems += _check_handler_deps(e, e.step, kind_of, main_ids)
    for kind in HANDLER_KINDS:
        problems += _handler_cycles(kind, entries, kind_of)
    replaced: set[str] = set()
    for i, step in enumerate(steps):
        for j, dep in enumerate(step.depends_on if step is not None else ()):
            if step is not None and dep in kind_of:
                where = f"$.steps[{i}].depends_on[{j}]"
                replaced.add(where)
                problems.append(
                    Problem(
                        where,
                        f"'{dep}' is a run handler ({kind_of[dep]}); a step cannot depend on one",
                        step.id,
                        "handlers run after every step; remove the dependency",
                    )
                )
    return problems, replaced


def _check_handler_deps(
    e: HandlerEntry, step: Step, kind_of: Mapping[str, str], raw_ids: Collection[str | None]
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    own = [sid for sid, kind in kind_of.items() if kind == e.kind]
    for j, dep in enumerate(step.depends_on):
        where = f"{e.path}.depends_on[{j}]"
        if dep == step.id:
            problems.append(Problem(where, "a step cannot depend on itself", step.id, "remove it"))
        elif dep in raw_ids:
            problems.append(
                Problem(
                    where,
                    f"a handler cannot depend on step '{dep}': handlers run after every step",
                    step.id,
                    f"remove it; read its results with ${{steps.{dep}.exit_code}} or its outputs",
                )
            )
        elif dep in kind_of and kind_of[dep] != e.kind:
            problems.append(
                Problem(
                    where,
                    f"'{dep}' is a handler of {kind_of[dep]}; a handler can depend only on "
                    f"handlers of its own list ({e.kind})",
                    step.id,
                    "remove it",
                )
            )
        elif dep not in kind_of:
            close = difflib.get_close_matches(dep, own, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"name a handler of {e.kind}"
            problems.append(Problem(where, f"unknown dependency '{dep}'", step.id, hint))
        elif dep in seen:
            problems.append(Problem(where, f"'{dep}' is listed twice", step.id, "remove one", True))
        seen.add(dep)
    return problems


def _handler_cycles(
    kind: str, entries: Sequence[HandlerEntry], kind_of: Mapping[str, str]
) -> list[Problem]:
    deps: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for e in entries:
        if e.kind == kind and e.step is not None and kind_of.get(e.step.id) == kind:
            deps.setdefault(e.step.id, [d for d in e.step.depends_on if kind_of.get(d) == kind])
            where.setdefault(e.step.id, e.path)
    problems = []
    for cycle in graph.find_cycles(deps):
        if len(cycle) == 2 and cycle[0] == cycle[1]:
            continue  # a self-dependency, reported on its own
        problems.append(
            Problem(
                f"{where[cycle[0]]}.depends_on",
                "dependency cycle: " + " -> ".join(cycle),
                cycle[0],
                "remove one of these dependencies",
            )
        )
    return problems


# --- the checks every step gets ------------------------------------------------------


def check_view(
    entries: Sequence[HandlerEntry], indexed: Sequence[tuple[int, Step]], first: int
) -> tuple[list[tuple[int, Step]], dict[int, str]]:
    """The main steps followed by the handlers as extra steps (positions from ``first``
    on) that depend on every main step (so they may use any main step's results), and
    where each extra position really is."""
    main_ids = [s.id for _, s in indexed]
    main = set(main_ids)
    combined = list(indexed)
    at: dict[int, str] = {}
    for k, e in enumerate(x for x in entries if x.step is not None):
        assert e.step is not None
        own = [d for d in e.step.depends_on if d not in main]
        combined.append((first + k, msgspec.structs.replace(e.step, depends_on=own + main_ids)))
        at[first + k] = e.path
    return combined, at


def relocate(
    problems: Sequence[Problem], at: Mapping[int, str], handler_ids: Collection[str]
) -> list[Problem]:
    """``problems`` with the extra positions of :func:`check_view` turned into the
    handlers' paths, and a main step's use of a handler's results said plainly."""
    out = []
    for problem in problems:
        p = problem
        found = _STEPS_AT.match(p.path)
        if found and int(found[1]) in at:
            p = msgspec.structs.replace(p, path=at[int(found[1])] + p.path[found.end() :])
        elif found and (ref := _NOT_AN_ANCESTOR.match(p.message)) and ref["id"] in handler_ids:
            p = msgspec.structs.replace(
                p,
                message=f"'{ref['ref']}': '{ref['id']}' is a run handler; a step cannot use "
                "its results",
                hint="handlers run after every step",
            )
        out.append(p)
    return out


# --- resolving -----------------------------------------------------------------------


def resolve_handlers(
    plan: Plan, values: Mapping[str, str], plan_dir: Path | None
) -> list[tuple[str, ResolvedStep]]:
    """Every handler resolved like a step (positions after the steps'), with its list.

    A handler never aborts anything: ``on_failure: abort`` acts as ``skip_dependents``
    (its dependents in its list are skipped; the run's outcome is already decided).
    """
    found = handler_steps(plan.handlers)
    steps = [
        msgspec.structs.replace(s, on_failure=OnFailure.SKIP_DEPENDENTS)
        if s.on_failure is OnFailure.ABORT
        else s
        for _, s in found
    ]
    first = len(plan.steps)
    return [
        (kind, resolve_step(plan, step, values, plan_dir, index=first + k))
        for k, ((kind, _), step) in enumerate(zip(found, steps, strict=True))
    ]
